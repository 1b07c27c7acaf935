#include "exec/executor.h"

#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <sstream>

#include "core/log.h"

namespace mixq {

struct Executor::CompiledNode {
  std::unique_ptr<OpKernel> kernel;
  std::vector<int> in;   // slot per input, -1 for omitted optional inputs
  std::vector<int> out;  // slot per output, -1 for omitted outputs
};

// A fusion group compiled to slots. Used in place of `members` when none of `guard` is hooked.
struct Executor::FusedNode {
  std::string label;                    // "Fused:LayerNorm" (profile and messages)
  std::unique_ptr<FusedKernel> kernel;
  std::vector<int> in;                  // slots of FusionGroup::inputs
  int out = -1;
  std::vector<int> members;             // node indices, ascending
  std::vector<int> interior;            // slots produced and consumed inside the group
  std::vector<int> guard;               // interior + baked-in constant slots: a hook disables
};

namespace {

std::string shape_str(const at::Tensor& t) {
  if (!t.defined()) return "<none>";
  std::ostringstream os;
  os << dtype_name(dtype_of(t.scalar_type())) << t.sizes();
  return os.str();
}

// Unsupported-op message for the first offending node, with a count of the others.
void check_ops_supported(const Graph& g) {
  std::vector<const Node*> bad;
  for (const auto& n : g.nodes) {
    bool ok = (n.domain.empty() && find_op(n.op_type, g.opset()) != nullptr);
    if (!ok) bad.push_back(&n);
  }
  if (bad.empty()) return;
  const Node& n = *bad.front();
  std::ostringstream os;
  os << g.source_path << ": " << g.describe(n) << ": ";
  if (!n.domain.empty()) {
    os << "operators of domain '" << n.domain << "' are not supported (mixq runs the default "
       << "ONNX domain only; export without custom ops)";
  } else if (op_known(n.op_type)) {
    os << n.op_type << " is supported by mixq only for opsets";
    for (const auto& r : op_table())
      if (n.op_type == r.op_type) os << " " << r.since << "-" << r.until;
    os << "; re-export the model with an opset in that range";
  } else {
    os << "operator " << n.op_type << " is not supported by mixq (`mixq info --ops` lists the "
       << "supported ones); replace it in the exporter or open an issue with the model";
  }
  if (bad.size() > 1) {
    std::map<std::string, int> others;
    for (size_t i = 1; i < bad.size(); ++i) others[bad[i]->op_type]++;
    os << " (" << bad.size() - 1 << " more unsupported node" << (bad.size() > 2 ? "s" : "")
       << ":";
    for (const auto& kv : others) os << " " << kv.first << " x" << kv.second;
    os << ")";
  }
  throw Error(n.domain.empty() && !op_known(n.op_type) ? ErrorKind::kUnsupported
                                                        : ErrorKind::kUnsupported,
              os.str());
}

// Runs one kernel (timed into *profile when profiling) and turns whatever it throws into a
// mixq::Error whose message is describe(what): the node or fused group and its input shapes.
void invoke_kernel(OpKernel& kernel, const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out,
                   std::pair<double, int64_t>* profile,
                   const std::function<std::string(const std::string&)>& describe) {
  try {
    if (profile) {
      auto t0 = std::chrono::steady_clock::now();
      kernel.compute(in, out);
      profile->first += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      profile->second++;
    } else {
      kernel.compute(in, out);
    }
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kInternal) throw;
    throw Error(e.kind(), describe(e.what()));
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw Error(ErrorKind::kRuntime, describe(msg.substr(0, msg.find('\n'))));
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kRuntime, describe(e.what()));
  }
}

}  // namespace

Executor::Executor(Graph graph) : graph_(std::move(graph)) {
  check_ops_supported(graph_);
  auto add_slot = [&](const std::string& name) {
    auto it = slot_of_.find(name);
    if (it != slot_of_.end()) return it->second;
    int s = static_cast<int>(slot_name_.size());
    slot_of_[name] = s;
    slot_name_.push_back(name);
    return s;
  };
  for (const auto& vi : graph_.inputs) input_slots_.push_back(add_slot(vi.name));
  for (const auto& kv : graph_.initializers) {
    init_slot_.push_back(add_slot(kv.first));
    init_value_.push_back(kv.second);
  }
  nodes_.reserve(graph_.nodes.size());
  for (const auto& n : graph_.nodes) {
    CompiledNode cn;
    for (const auto& i : n.inputs) cn.in.push_back(i.empty() ? -1 : slot(i));
    for (const auto& o : n.outputs) cn.out.push_back(o.empty() ? -1 : add_slot(o));
    NodeInfo info(graph_, n, graph_.opset());
    cn.kernel = find_op(n.op_type, graph_.opset())->make(info);
    nodes_.push_back(std::move(cn));
  }
  for (const auto& vi : graph_.outputs) output_slots_.push_back(slot(vi.name));
  hooked_.assign(slot_name_.size(), 0);
  const char* prof = std::getenv("MIXQ_PROFILE");
  profile_ = prof && *prof && std::string(prof) != "0";
  if (!fusion_disabled_by_env()) {
    for (auto& grp : find_fusions(graph_)) {
      FusedNode f;
      f.label = std::string("Fused:") + fusion_kind_name(grp.kind);
      f.kernel = std::move(grp.kernel);
      for (const auto& v : grp.inputs) f.in.push_back(slot(v));
      f.out = slot(grp.output);
      f.members = grp.nodes;
      for (const auto& v : grp.interior) f.interior.push_back(slot(v));
      f.guard = f.interior;
      for (const auto& v : grp.constants) f.guard.push_back(slot(v));
      fused_.push_back(std::move(f));
    }
  }
  num_fused_ = fused_.size();
}

Executor::~Executor() {
  if (!profile_ || profile_by_op_.empty()) return;
  double total = 0;
  for (const auto& kv : profile_by_op_) total += kv.second.first;
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(profile_by_op_.begin(), profile_by_op_.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::fprintf(stderr, "executor profile (%s): %.3f s in kernels\n", graph_.source_path.c_str(), total);
  for (const auto& [op, t] : rows)
    std::fprintf(stderr, "  %-24s %9.3f s %5.1f%% %8lld calls\n", op.c_str(), t.first, 100 * t.first / total,
                 (long long)t.second);
}

int Executor::slot(const std::string& name) const {
  auto it = slot_of_.find(name);
  MIXQ_CHECK(it != slot_of_.end(), ErrorKind::kInvalidArgument, graph_.source_path,
             ": no value named '", name, "' in the graph");
  return it->second;
}

int Executor::add_hook(const std::string& value, Hook hook) {
  int s = slot(value);
  hooks_.push_back({next_hook_id_, s, std::move(hook)});
  hooked_[s] = 1;
  invalidate_static();
  return next_hook_id_++;
}

void Executor::remove_hook(int id) {
  hooks_.erase(std::remove_if(hooks_.begin(), hooks_.end(),
                              [&](const HookEntry& h) { return h.id == id; }),
               hooks_.end());
  std::fill(hooked_.begin(), hooked_.end(), 0);
  for (const auto& h : hooks_) hooked_[h.slot] = 1;
  invalidate_static();
}

void Executor::clear_hooks() {
  hooks_.clear();
  std::fill(hooked_.begin(), hooked_.end(), 0);
  invalidate_static();
}

void Executor::set_grad_enabled(bool enabled) {
  if (enabled != grad_enabled_) invalidate_static();
  grad_enabled_ = enabled;
}

void Executor::invalidate_static() {
  static_valid_ = false;
  static_values_.clear();
}

void Executor::apply_hooks(int s, at::Tensor& t) const {
  if (!hooked_[s]) return;
  for (const auto& h : hooks_)
    if (h.slot == s) h.fn(slot_name_[s], t);
}

const std::vector<int>& Executor::node_inputs(int idx) const {
  return static_cast<size_t>(idx) < nodes_.size() ? nodes_[idx].in : fused_[idx - nodes_.size()].in;
}

void Executor::run_fused(const FusedNode& f, std::vector<at::Tensor>& values) const {
  std::vector<at::Tensor> in(f.in.size());
  for (size_t i = 0; i < f.in.size(); ++i) in[i] = values[f.in[i]];
  if (!f.kernel->accepts(in)) {  // dtype/shape the fused math does not cover: the original nodes
    in.clear();
    for (int m : f.members) run_node(static_cast<size_t>(m), values);
    for (int s : f.interior) values[s] = at::Tensor();
    return;
  }
  std::vector<at::Tensor> out(1);
  auto describe_failure = [&](const std::string& what) {
    std::ostringstream os;
    os << graph_.source_path << ": " << f.label << " of nodes '" << graph_.nodes[f.members.front()].name
       << "'..'" << graph_.nodes[f.members.back()].name << "' failed on inputs (";
    for (size_t i = 0; i < in.size(); ++i)
      os << (i ? ", " : "") << slot_name_[f.in[i]] << ": " << shape_str(in[i]);
    os << "): " << what << " (MIXQ_NO_FUSION=1 runs the original nodes)";
    return os.str();
  };
  invoke_kernel(*f.kernel, in, out, profile_ ? &profile_by_op_[f.label] : nullptr, describe_failure);
  MIXQ_ASSERT(out[0].defined(), f.label, " left its output undefined");
  apply_hooks(f.out, out[0]);
  values[f.out] = std::move(out[0]);
}

void Executor::run_node(size_t idx, std::vector<at::Tensor>& values) const {
  if (idx >= nodes_.size()) {
    run_fused(fused_[idx - nodes_.size()], values);
    return;
  }
  const CompiledNode& cn = nodes_[idx];
  std::vector<at::Tensor> in(cn.in.size());
  for (size_t i = 0; i < cn.in.size(); ++i)
    if (cn.in[i] >= 0) in[i] = values[cn.in[i]];
  std::vector<at::Tensor> out(cn.out.size());
  const Node& node = graph_.nodes[idx];
  auto describe_failure = [&](const std::string& what) {
    std::ostringstream os;
    os << graph_.source_path << ": " << graph_.describe(node) << " failed on inputs (";
    for (size_t i = 0; i < in.size(); ++i)
      os << (i ? ", " : "") << (node.inputs[i].empty() ? "<omitted>" : node.inputs[i]) << ": "
         << shape_str(in[i]);
    os << "): " << what;
    return os.str();
  };
  invoke_kernel(*cn.kernel, in, out, profile_ ? &profile_by_op_[node.op_type] : nullptr, describe_failure);
  for (size_t o = 0; o < cn.out.size(); ++o) {
    if (cn.out[o] < 0) continue;
    MIXQ_ASSERT(out[o].defined(), "kernel ", node.op_type, " left output ", o, " undefined");
    apply_hooks(cn.out[o], out[o]);
    values[cn.out[o]] = std::move(out[o]);
  }
}

void Executor::execute(const std::vector<int>& order, std::vector<at::Tensor>& values,
                       const std::vector<char>& keep) const {
  std::vector<int> last_use(values.size(), -1);
  for (size_t p = 0; p < order.size(); ++p)
    for (int s : node_inputs(order[p]))
      if (s >= 0) last_use[s] = static_cast<int>(p);
  for (size_t p = 0; p < order.size(); ++p) {
    run_node(order[p], values);
    for (int s : node_inputs(order[p]))
      if (s >= 0 && last_use[s] == static_cast<int>(p) && !keep[s]) values[s] = at::Tensor();
  }
}

void Executor::ensure_static() {
  if (static_valid_) return;
  const size_t n = slot_name_.size();
  is_static_.assign(n, 0);
  static_values_.assign(n, at::Tensor());
  for (size_t i = 0; i < init_slot_.size(); ++i) {
    int s = init_slot_[i];
    if (!hooked_[s]) {
      is_static_[s] = 1;
      static_values_[s] = init_value_[i];
    }
  }
  dynamic_order_.clear();
  std::vector<int> static_order;
  std::vector<char> node_static(nodes_.size(), 0);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const auto& cn = nodes_[i];
    bool st = std::all_of(cn.in.begin(), cn.in.end(), [&](int s) { return s < 0 || is_static_[s]; });
    st = st && std::none_of(cn.out.begin(), cn.out.end(), [&](int s) { return s >= 0 && hooked_[s]; });
    if (st) {
      for (int s : cn.out)
        if (s >= 0) is_static_[s] = 1;
      static_order.push_back(static_cast<int>(i));
      node_static[i] = 1;
    } else {
      dynamic_order_.push_back(static_cast<int>(i));
    }
  }
  // Fusion: a group whose nodes are all dynamic and none of whose interior values or baked-in
  // constants is hooked runs as one fused node at its last member's position (its inputs are all
  // produced before some member, its interior values are read by members only).
  active_fused_ = 0;
  fused_active_.assign(fused_.size(), 0);
  if (!fused_.empty()) {
    std::vector<int> replace(nodes_.size(), -1);  // -1 keep, -2 drop, else the fused index
    for (size_t k = 0; k < fused_.size(); ++k) {
      const FusedNode& f = fused_[k];
      bool ok = std::none_of(f.members.begin(), f.members.end(), [&](int m) { return node_static[m]; }) &&
                std::none_of(f.guard.begin(), f.guard.end(), [&](int s) { return hooked_[s]; });
      if (!ok) continue;
      for (int m : f.members) replace[m] = -2;
      replace[f.members.back()] = static_cast<int>(nodes_.size() + k);
      fused_active_[k] = 1;
      ++active_fused_;
    }
    std::vector<int> order;
    order.reserve(dynamic_order_.size());
    for (int i : dynamic_order_) {
      if (replace[i] == -1) order.push_back(i);
      else if (replace[i] >= 0) order.push_back(replace[i]);
    }
    dynamic_order_ = std::move(order);
  }
  // Compute static values once, keeping all of them (the dynamic part reads them every run).
  std::vector<char> keep_all(n, 1);
  execute(static_order, static_values_, keep_all);
  static_valid_ = true;
}

void Executor::check_input(size_t i, const at::Tensor& t) const {
  const ValueInfo& vi = graph_.inputs[i];
  const std::string where = graph_.source_path + ": input '" + vi.name + "'";
  MIXQ_CHECK(t.defined(), ErrorKind::kInvalidData, where, " was not given");
  if (vi.dtype != DType::kUndefined) {
    DType got = dtype_of(t.scalar_type());
    at::ScalarType want = scalar_type_for(vi.dtype, where);
    MIXQ_CHECK(t.scalar_type() == want, ErrorKind::kInvalidData, where, " expects ", vi.str(),
               ", got ", dtype_name(got), t.sizes(), " (wrong element type)");
  }
  if (vi.has_shape) {
    bool ok = static_cast<size_t>(t.dim()) == vi.dims.size();
    for (size_t d = 0; ok && d < vi.dims.size(); ++d)
      ok = vi.dims[d] < 0 || vi.dims[d] == t.size(static_cast<int64_t>(d));
    MIXQ_CHECK(ok, ErrorKind::kInvalidData, where, " expects ", vi.str(), ", got ",
               dtype_name(dtype_of(t.scalar_type())), t.sizes(),
               " (check the data's layout and preprocessing against the model)");
  }
}

std::vector<at::Tensor> Executor::run(const std::vector<at::Tensor>& inputs) {
  MIXQ_CHECK(inputs.size() == graph_.inputs.size(), ErrorKind::kInvalidData, graph_.source_path,
             ": the model has ", graph_.inputs.size(), " input(s) but ", inputs.size(),
             " were given");
  for (size_t i = 0; i < inputs.size(); ++i) check_input(i, inputs[i]);
  std::optional<c10::InferenceMode> inference;
  std::optional<at::AutoGradMode> grad;
  if (grad_enabled_) grad.emplace(true); else inference.emplace();
  ensure_static();
  std::vector<at::Tensor> values = static_values_;
  for (size_t i = 0; i < inputs.size(); ++i) {
    values[input_slots_[i]] = inputs[i];
    apply_hooks(input_slots_[i], values[input_slots_[i]]);
  }
  for (size_t i = 0; i < init_slot_.size(); ++i)
    if (!is_static_[init_slot_[i]]) {
      values[init_slot_[i]] = init_value_[i];
      apply_hooks(init_slot_[i], values[init_slot_[i]]);
    }
  std::vector<char> keep(values.size(), 0);
  for (int s : output_slots_) keep[s] = 1;
  execute(dynamic_order_, values, keep);
  std::vector<at::Tensor> out;
  out.reserve(output_slots_.size());
  for (int s : output_slots_) out.push_back(values[s]);
  return out;
}

std::vector<std::pair<int, int>> Executor::active_fusion_spans() {
  ensure_static();
  std::vector<std::pair<int, int>> spans;
  for (size_t k = 0; k < fused_.size(); ++k)
    if (fused_active_[k]) spans.emplace_back(fused_[k].members.front(), fused_[k].members.back());
  return spans;
}

std::map<std::string, at::Tensor> Executor::run(const std::map<std::string, at::Tensor>& feeds,
                                                const std::vector<std::string>& fetches, bool fused) {
  std::optional<c10::InferenceMode> inference;
  std::optional<at::AutoGradMode> grad;
  if (grad_enabled_) grad.emplace(true); else inference.emplace();
  ensure_static();
  const size_t n = slot_name_.size();
  std::vector<at::Tensor> values(n);
  std::vector<char> avail(n, 0), keep(n, 0);
  for (const auto& kv : feeds) {
    int s = slot(kv.first);
    values[s] = kv.second;
    apply_hooks(s, values[s]);
    avail[s] = 1;
  }
  for (size_t i = 0; i < init_slot_.size(); ++i) {
    int s = init_slot_[i];
    if (avail[s]) continue;
    values[s] = is_static_[s] ? static_values_[s] : init_value_[i];
    if (!is_static_[s]) apply_hooks(s, values[s]);
    avail[s] = 1;
  }
  // Walk back from the fetches to find the nodes needed, stopping at available values.
  std::vector<int> producer(n, -1);
  for (size_t i = 0; i < nodes_.size(); ++i)
    for (int s : nodes_[i].out)
      if (s >= 0) producer[s] = static_cast<int>(i);
  std::vector<char> need_node(nodes_.size(), 0), visited(n, 0);
  std::vector<int> stack;
  for (const auto& f : fetches) {
    int s = slot(f);
    keep[s] = 1;
    stack.push_back(s);
  }
  while (!stack.empty()) {
    int s = stack.back();
    stack.pop_back();
    if (visited[s]) continue;
    visited[s] = 1;
    if (avail[s]) continue;
    if (is_static_[s] && static_values_[s].defined()) {  // cached static value
      values[s] = static_values_[s];
      avail[s] = 1;
      continue;
    }
    int p = producer[s];
    MIXQ_CHECK(p >= 0, ErrorKind::kInvalidArgument, graph_.source_path, ": computing the fetched ",
               "values needs '", slot_name_[s], "', a graph input that was not fed");
    need_node[p] = 1;
    for (int in : nodes_[p].in)
      if (in >= 0) stack.push_back(in);
  }
  // Fusion: a group run(inputs) uses, all of whose nodes are needed and none of whose interior
  // values is fed or fetched, runs as its fused node at its last member's position (as there).
  std::vector<int> replace(nodes_.size(), -1);  // -1 keep, -2 drop, else the fused index
  if (fused)
    for (size_t k = 0; k < fused_.size(); ++k) {
      const FusedNode& f = fused_[k];
      if (!fused_active_[k] || !std::all_of(f.members.begin(), f.members.end(), [&](int m) { return need_node[m]; }) ||
          std::any_of(f.interior.begin(), f.interior.end(), [&](int s) { return avail[s] || keep[s]; }))
        continue;
      for (int m : f.members) replace[m] = -2;
      replace[f.members.back()] = static_cast<int>(nodes_.size() + k);
    }
  std::vector<int> order;
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (need_node[i] && replace[i] != -2) order.push_back(replace[i] >= 0 ? replace[i] : static_cast<int>(i));
  execute(order, values, keep);
  std::map<std::string, at::Tensor> out;
  for (const auto& f : fetches) out[f] = values[slot(f)];
  return out;
}

}  // namespace mixq
