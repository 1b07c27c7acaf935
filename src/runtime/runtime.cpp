#include "runtime/runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>

#include "mixq/error.h"
#include "runtime/buffer_pool.h"
#include "runtime/forms.h"
#include "runtime/fuse_chains.h"

namespace mixq::rt {

namespace {

bool env_set(const char* name) {  // set to anything but "" or "0"
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}

}  // namespace

Model Model::load(const std::string& path, ModelOptions opts) { return Model(pack::load_mxq(path), opts); }

Model::Model(pack::PackedModel m, ModelOptions opts)
    : pm_(std::make_unique<pack::PackedModel>(std::move(m))), isa_(opts.isa), threads_(std::max(1, opts.threads)) {
  const pack::PackedModel& pm = *pm_;
  // The fast forms (runtime/forms.h) unless the reference is asked for; oneDNN's float
  // convolutions only with them (the reference mode and the scalar ISA keep our own float path).
  const bool fused = opts.fuse && !env_set("MIXQ_RT_UNFUSED");
  const char* dn = std::getenv("MIXQ_RT_DNNL");
  const bool use_dnnl = fused && opts.dnnl && isa_ != kernels::Isa::kRef && !(dn && std::string(dn) == "0");
  const char* ge = std::getenv("MIXQ_RT_GEMM_EPI");
  const bool gemm_epi = opts.gemm_epilogue && !(ge && std::string(ge) == "0");
  std::map<std::string, int> slot;
  std::map<std::string, const pack::Tensor*> consts;
  auto new_slot = [&](const std::string& name) {
    const int s = static_cast<int>(slots_.size());
    slots_.emplace_back();
    is_const_.push_back(false);
    slot[name] = s;
    return s;
  };
  for (const auto& t : pm.tensors) {
    MIXQ_CHECK(!slot.count(t.name), ErrorKind::kInvalidModel, "tensor '", t.name, "' is stored twice");
    const int s = new_slot(t.name);
    slots_[s].dtype = t.dtype;
    slots_[s].shape = t.dims;
    slots_[s].f = t.f;
    slots_[s].i = t.i;
    is_const_[s] = true;
    consts[t.name] = &t;
  }
  for (const auto& in : pm.inputs) {
    MIXQ_CHECK(!slot.count(in.name), ErrorKind::kInvalidModel, "graph input '", in.name, "' is defined twice");
    input_slots_.push_back(new_slot(in.name));
  }
  std::map<std::string, const pack::QWeight*> qw_by_node;
  std::set<std::string> qweight_names;
  for (const auto& w : pm.weights) {
    MIXQ_CHECK(!qw_by_node.count(w.node), ErrorKind::kInvalidModel, "layer '", w.node, "' has two quantized weights");
    qw_by_node[w.node] = &w;
    qweight_names.insert(w.tensor);
  }
  std::map<std::string, const pack::QAct*> act_by_tensor;
  for (const auto& a : pm.acts) act_by_tensor[a.tensor] = &a;
  std::set<std::string> attached;
  for (const auto& n : pm.nodes) {
    const std::string desc = "node '" + n.name + "' (" + n.op + ")";
    const OpRow* row = find_op(n.op);
    if (!row) {
      std::string list;
      for (const auto& s : supported_ops()) list += (list.empty() ? "" : ", ") + s;
      throw Error(ErrorKind::kUnsupported, desc + ": the runtime has no '" + n.op + "' operator (it has: " + list + ")");
    }
    // Structural checks the ops rely on (a hand-made or buggy file must fail here, not crash).
    // Some output must be named; not always the first (a recurrent layer may keep only Y_h).
    MIXQ_CHECK(std::any_of(n.outputs.begin(), n.outputs.end(), [](const std::string& o) { return !o.empty(); }),
               ErrorKind::kInvalidModel, desc, " has no output");
    MIXQ_CHECK(static_cast<int>(n.inputs.size()) >= row->min_inputs, ErrorKind::kInvalidModel, desc, " has ",
               n.inputs.size(), " inputs, ", n.op, " needs at least ", row->min_inputs);
    for (int k = 0; k < row->min_inputs; ++k)
      MIXQ_CHECK(!n.inputs[k].empty(), ErrorKind::kInvalidModel, desc, ": required input ", k, " is missing");
    auto qit = qw_by_node.find(n.name);
    const pack::QWeight* qw = qit == qw_by_node.end() ? nullptr : qit->second;
    if (qw) {
      const bool gather = n.op == "Gather";
      // Recurrent layers hold their input weight W (input 1), dequantized at load (ops_rnn.cpp).
      const bool recurrent = n.op == "LSTM" || n.op == "GRU" || n.op == "RNN";
      MIXQ_CHECK(gather || recurrent || n.op == "Conv" || n.op == "Gemm" || n.op == "MatMul" ||
                     n.op == "ConvTranspose",
                 ErrorKind::kInvalidModel, desc,
                 " has a quantized weight, but only Conv, ConvTranspose, Gemm, MatMul, Gather, LSTM, GRU and RNN "
                 "layers can");
      MIXQ_CHECK(gather || qw->form == 0, ErrorKind::kInvalidModel, desc, " has a row-wise table weight (form ",
                 int(qw->form), "), which only a Gather reads");
      MIXQ_CHECK(n.inputs[gather ? 0 : 1] == qw->tensor, ErrorKind::kInvalidModel, desc, ": its quantized weight '",
                 qw->tensor, "' must be input ", gather ? 0 : 1);
      for (size_t k = 0; k < n.inputs.size(); ++k)
        MIXQ_CHECK(k == size_t(gather ? 0 : 1) || n.inputs[k] != qw->tensor, ErrorKind::kInvalidModel, desc,
                   " reads its quantized weight twice");
    }
    const pack::QAct* qa = nullptr;
    if (qw) {
      attached.insert(n.name);
      // The layer's data input: the first input that is not its weight (Gather reads indices).
      for (const auto& in : n.inputs)
        if (in != qw->tensor && !in.empty()) {
          auto a = act_by_tensor.find(in);
          if (a != act_by_tensor.end() && n.op != "Gather") qa = a->second;
          break;
        }
    }
    BuildCtx ctx{n, desc, consts, qw, qa, isa_, opts.lowbit, use_dnnl, gemm_epi};
    std::unique_ptr<Op> op;
    op = row->make(ctx);
    op->desc = desc;
    std::vector<int> ins, outs;
    for (const auto& in : n.inputs) {
      if (in.empty() || (qw && in == qw->tensor)) {
        ins.push_back(-1);
        continue;
      }
      auto it = slot.find(in);
      MIXQ_CHECK(it != slot.end(), ErrorKind::kInvalidModel, desc, " reads '", in, "', which no earlier node, input ",
                 "or stored tensor defines", qweight_names.count(in) ? " (it is a quantized weight of another layer)" : "");
      ins.push_back(it->second);
    }
    for (const auto& o : n.outputs) {
      MIXQ_CHECK(o.empty() || !slot.count(o), ErrorKind::kInvalidModel, desc, " redefines value '", o, "'");
      outs.push_back(o.empty() ? -1 : new_slot(o));
    }
    if (qw) {
      LayerPath p{n.name, n.op, false, "", "", 0};
      p.int_path = op->int_path(&p.why_float);
      op->weight_info(&p.kernel, &p.weight_bytes);
      paths_.push_back(p);
    }
    ops_.push_back(std::move(op));
    op_in_.push_back(std::move(ins));
    op_out_.push_back(std::move(outs));
  }
  for (const auto& w : pm.weights)
    MIXQ_CHECK(attached.count(w.node), ErrorKind::kInvalidModel, "quantized weight '", w.tensor, "' names layer '",
               w.node, "', which is not a node of the graph");
  for (const auto& o : pm.outputs) {
    auto it = slot.find(o.name);
    MIXQ_CHECK(it != slot.end(), ErrorKind::kInvalidModel, "graph output '", o.name, "' is never computed");
    output_slots_.push_back(it->second);
  }
  if (fused) {
    std::vector<bool> ln_skip(ops_.size(), false);
    const int biases = fuse_linear_biases(pm, ops_, op_in_, op_out_, ln_skip, slots_, is_const_, output_slots_);
    const int ln = fuse_layernorms(pm, ops_, op_in_, op_out_, ln_skip, slots_, is_const_, output_slots_);
    const int gelu = fuse_gelus(pm, ops_, op_in_, op_out_, ln_skip, slots_, is_const_, output_slots_, isa_);
    const int bags = fuse_embedding_bags(pm, ops_, op_in_, op_out_, ln_skip, slots_, is_const_, output_slots_);
    const char* fa = std::getenv("MIXQ_RT_ATTENTION");
    const bool want_attn = fa && *fa ? std::string(fa) != "0" : opts.fuse_attention;
    const int attn = want_attn
                         ? fuse_attention(pm, ops_, op_in_, op_out_, ln_skip, slots_, is_const_, output_slots_, isa_)
                         : 0;
    const FormStats st = plan_forms(ops_, op_in_, op_out_, skip_, output_slots_, slots_.size());
    for (size_t i = 0; i < ops_.size(); ++i) skip_[i] = skip_[i] || ln_skip[i];
    forms_ = Forms{st.fused_acts, st.fused_adds, st.codes_outputs, st.nhwc_outputs, st.dual_outputs, ln, gelu, attn, biases, bags};
  } else {
    skip_.assign(ops_.size(), false);
  }
  // Release each computed value after its last reader (graph outputs are kept).
  std::vector<int> last(slots_.size(), -1);
  for (size_t i = 0; i < ops_.size(); ++i)
    for (int s : op_in_[i])
      if (s >= 0) last[s] = static_cast<int>(i);
  std::set<int> keep(output_slots_.begin(), output_slots_.end());
  frees_.resize(ops_.size());
  pool_ = std::make_unique<BufferPool>();
  for (size_t s = 0; s < slots_.size(); ++s)
    if (!is_const_[s] && last[s] >= 0 && !keep.count(static_cast<int>(s))) frees_[last[s]].push_back(static_cast<int>(s));
  seconds_.assign(ops_.size(), 0.0);
  // Input 0 may be donated when this op is its last reader and it is computed here (not stored,
  // not a graph input the caller handed us, not read twice by this op).
  std::set<int> inputs(input_slots_.begin(), input_slots_.end());
  donate_.assign(ops_.size(), false);
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (op_in_[i].empty() || op_in_[i][0] < 0) continue;
    const int s0 = op_in_[i][0];
    int uses = 0;
    for (int s : op_in_[i]) uses += s == s0;
    donate_[i] = !is_const_[s0] && !inputs.count(s0) && !keep.count(s0) && last[s0] == static_cast<int>(i) && uses == 1;
  }
}

std::vector<Tensor> Model::run(const std::vector<Tensor>& inputs) {
  const pack::PackedModel& pm = *pm_;
  MIXQ_CHECK(inputs.size() == input_slots_.size(), ErrorKind::kInvalidData, "the model has ", input_slots_.size(),
             " inputs, got ", inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const pack::ValueDecl& d = pm.inputs[i];
    const Tensor& x = inputs[i];
    bool ok = x.dtype == d.dtype && x.shape.size() == d.dims.size();
    for (size_t k = 0; ok && k < d.dims.size(); ++k) ok = d.dims[k] < 0 || d.dims[k] == x.shape[k];
    MIXQ_CHECK(ok, ErrorKind::kInvalidData, "input '", d.name, "' is ", pack::elem_type_name(x.dtype),
               shape_str(x.shape), " but the model declares ", pack::elem_type_name(d.dtype), shape_str(d.dims));
    slots_[input_slots_[i]] = x;
  }
  RunCtx ctx{threads_, nullptr, pool_.get()};
  std::vector<const Tensor*> in;
  std::vector<Tensor> out;
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (skip_[i]) continue;
    in.clear();
    for (int s : op_in_[i]) in.push_back(s >= 0 ? &slots_[s] : nullptr);
    // Values in another form go to readers that cannot take it as NCHW float (converted in place:
    // later readers see the same value).
    for (size_t k = 0; k < in.size(); ++k) {
      Tensor* t = op_in_[i][k] >= 0 ? &slots_[op_in_[i][k]] : nullptr;
      if (!t || (!t->nhwc && !t->is_codes())) continue;
      if (t->is_codes() ? ops_[i]->codes_quant(k) != nullptr : ops_[i]->takes_nhwc(k, in)) continue;
      to_nchw(*t);
    }
    out.assign(op_out_[i].size(), Tensor{});
    ctx.donor = nullptr;
    if (!op_in_[i].empty() && op_in_[i][0] >= 0 && donate_[i]) ctx.donor = &slots_[op_in_[i][0]];
    const auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    ops_[i]->run(in, out, ctx);
    if (profile_) seconds_[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t k = 0; k < out.size(); ++k)
      if (op_out_[i][k] >= 0) slots_[op_out_[i][k]] = std::move(out[k]);
    for (int s : frees_[i]) pool_->give(std::move(slots_[s]));
  }
  std::vector<Tensor> res;
  for (int s : output_slots_) {
    res.push_back(slots_[s]);
    to_nchw(res.back());
  }
  for (int s : input_slots_) slots_[s] = Tensor{};
  return res;
}

std::vector<Model::OpProfile> Model::op_profile() const {
  std::vector<OpProfile> v;
  for (size_t i = 0; i < ops_.size(); ++i)
    v.push_back({pm_->nodes[i].name, pm_->nodes[i].op, seconds_[i], ops_[i]->last_macs, ops_[i]->ran_int(), skip_[i]});
  return v;
}

std::vector<std::pair<std::string, double>> Model::profile() const {
  std::vector<std::pair<std::string, double>> v;
  for (size_t i = 0; i < ops_.size(); ++i) v.emplace_back(pm_->nodes[i].name, seconds_[i]);
  return v;
}

}  // namespace mixq::rt
