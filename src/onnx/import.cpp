#include "onnx/import.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>

#include "core/log.h"
#include "core/malloc_tuning.h"
#include "mixq/error.h"
#include "onnx/tensor_proto.h"

namespace mixq {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxOpset = 18;
// The newest opset libonnx 1.12 (Debian 12) has schemas for: its checker and shape inference
// run up to here; opset-18 models are validated by mixq's own checks and the op registry only.
constexpr int64_t kMaxCheckedOpset = 17;

// `path` opened for reading, or an error saying why not (missing, a directory, unreadable).
std::ifstream open_input(const std::string& path) {
  std::error_code ec;
  MIXQ_CHECK(fs::exists(path, ec), ErrorKind::kIO, "cannot open '", path,
             "': no such file");
  MIXQ_CHECK(!fs::is_directory(path, ec), ErrorKind::kIO, "'", path,
             "' is a directory, expected an .onnx file");
  std::ifstream f(path, std::ios::binary);
  MIXQ_CHECK(f.good(), ErrorKind::kIO, "cannot open '", path, "' for reading");
  return f;
}

std::string read_file(const std::string& path) {
  std::ifstream f = open_input(path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ValueInfo value_info_from_proto(const onnx::ValueInfoProto& vi) {
  ValueInfo out;
  out.name = vi.name();
  if (vi.has_type() && vi.type().has_tensor_type()) {
    const auto& tt = vi.type().tensor_type();
    out.dtype = static_cast<DType>(tt.elem_type());
    if (tt.has_shape()) {
      out.has_shape = true;
      for (const auto& d : tt.shape().dim()) {
        out.dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
        out.dim_names.push_back(d.has_dim_param() ? d.dim_param() : "");
      }
    }
  }
  return out;
}

Attribute attribute_from_proto(const onnx::AttributeProto& a, const std::string& base_dir,
                               const std::string& what) {
  Attribute out;
  auto t = a.type();
  if (t == onnx::AttributeProto::UNDEFINED) {  // pre-IR-3 models: infer from the filled field
    if (a.has_f()) t = onnx::AttributeProto::FLOAT;
    else if (a.has_i()) t = onnx::AttributeProto::INT;
    else if (a.has_s()) t = onnx::AttributeProto::STRING;
    else if (a.has_t()) t = onnx::AttributeProto::TENSOR;
    else if (a.floats_size()) t = onnx::AttributeProto::FLOATS;
    else if (a.ints_size()) t = onnx::AttributeProto::INTS;
    else if (a.strings_size()) t = onnx::AttributeProto::STRINGS;
  }
  switch (t) {
    case onnx::AttributeProto::FLOAT: out.type = AttrType::kFloat; out.f = a.f(); break;
    case onnx::AttributeProto::INT: out.type = AttrType::kInt; out.i = a.i(); break;
    case onnx::AttributeProto::STRING: out.type = AttrType::kString; out.s = a.s(); break;
    case onnx::AttributeProto::TENSOR:
      out.type = AttrType::kTensor;
      out.t = tensor_from_proto(a.t(), base_dir, what + " attribute '" + a.name() + "'");
      break;
    case onnx::AttributeProto::FLOATS:
      out.type = AttrType::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      out.type = AttrType::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.type = AttrType::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case onnx::AttributeProto::GRAPH: out.type = AttrType::kGraph; break;
    default: out.type = AttrType::kOther; break;
  }
  return out;
}

// Structural checks with messages that name the node: duplicate outputs, dangling inputs,
// topological order, graph outputs that nothing produces.
void check_structure(const Graph& g, const std::string& file) {
  std::set<std::string> defined;
  for (const auto& vi : g.inputs) defined.insert(vi.name);
  for (const auto& kv : g.initializers) defined.insert(kv.first);
  std::set<std::string> produced_later;
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs)
      if (!o.empty()) produced_later.insert(o);
  for (const auto& n : g.nodes) {
    for (const auto& in : n.inputs) {
      if (in.empty() || defined.count(in)) continue;
      if (produced_later.count(in))
        throw Error(ErrorKind::kInvalidModel,
                    detail::concat(file, ": ", g.describe(n), " reads '", in,
                                   "' before the node that produces it: the nodes are not in "
                                   "topological order (re-save the model with onnx's tools)"));
      throw Error(ErrorKind::kInvalidModel,
                  detail::concat(file, ": ", g.describe(n), " input '", in,
                                 "' is not produced by any node, graph input or initializer "
                                 "(dangling input: is an initializer missing?)"));
    }
    for (const auto& o : n.outputs) {
      if (o.empty()) continue;
      MIXQ_CHECK(defined.insert(o).second, ErrorKind::kInvalidModel, file, ": ", g.describe(n),
                 " output '", o, "' is already defined by another node, input or initializer");
    }
  }
  for (const auto& o : g.outputs)
    MIXQ_CHECK(defined.count(o.name), ErrorKind::kInvalidModel, file, ": graph output '", o.name,
               "' is not produced by any node");
  MIXQ_CHECK(!g.outputs.empty(), ErrorKind::kInvalidModel, file, ": the graph has no outputs");
}

// libonnx 1.12's shape-inference functions trust ranks and attribute lengths that only later ONNX
// releases check: a ConvTranspose or QLinearConv whose input is 2-D, or whose weight has another
// rank than its input (a valid model as far as the checker goes), makes convTransposeShapeInference
// / convPoolShapeInference index past a vector and crash the process, and a stride of 0 divides by
// zero (SIGFPE) (all found by fuzzing). Shape
// inference runs on every import, so the schemas it uses come through this registry: for the ops
// in kInferenceGuards it returns a copy of the schema whose inference function first runs mixq's
// check, then ONNX's own. A failed check is an onnx::InferenceError: like any inference failure it
// only leaves that node's output shapes to be found when the model runs (the model is not refused
// here; the executor reports what it cannot run).
using InferenceCheck = void (*)(onnx::InferenceContext&);

// Rank of input `i` when its shape is known, else -1.
int known_rank(onnx::InferenceContext& ctx, size_t i) {
  if (i >= ctx.getNumInputs()) return -1;
  const onnx::TypeProto* t = ctx.getInputType(i);
  if (t == nullptr || !t->has_tensor_type() || !t->tensor_type().has_shape()) return -1;
  return t->tensor_type().shape().dim_size();
}

void check_attr_length(onnx::InferenceContext& ctx, const char* name, int expected) {
  const onnx::AttributeProto* a = ctx.getAttribute(name);
  if (a != nullptr && a->ints_size() != expected)
    fail_shape_inference("attribute ", name, " has ", a->ints_size(), " values; the input's spatial rank needs ",
                         expected);
}

// Convolutions and pools: the input is N x C x D1..Dn (n >= 1), a weight (when the op has one) has
// the input's rank, and every per-axis attribute has one value per spatial axis (pads: two).
void check_conv_pool(onnx::InferenceContext& ctx, int weight_input) {
  const int r = known_rank(ctx, 0);
  if (r < 0) return;
  if (r < 3) fail_shape_inference("the input must have at least 3 dimensions (N x C x D1...Dn); got ", r);
  const int spatial = r - 2;
  if (weight_input >= 0) {
    const int w = known_rank(ctx, static_cast<size_t>(weight_input));
    if (w >= 0 && w != r) fail_shape_inference("the weight has rank ", w, " but the input has rank ", r);
  }
  for (const char* a : {"kernel_shape", "strides", "dilations", "output_padding", "output_shape"})
    check_attr_length(ctx, a, spatial);
  // ONNX divides by these (a stride of 0 was a SIGFPE in convPoolShapeInference).
  for (const char* a : {"strides", "dilations"})
    if (const onnx::AttributeProto* p = ctx.getAttribute(a))
      for (int64_t v : p->ints())
        if (v < 1) fail_shape_inference("attribute ", a, " has value ", v, "; every value must be >= 1");
  check_attr_length(ctx, "pads", 2 * spatial);
}

struct InferenceGuard {
  const char* op;  // default-domain op type
  InferenceCheck check;
};
const InferenceGuard kInferenceGuards[] = {
    {"Conv", [](onnx::InferenceContext& c) { check_conv_pool(c, 1); }},
    {"ConvInteger", [](onnx::InferenceContext& c) { check_conv_pool(c, 1); }},
    {"ConvTranspose", [](onnx::InferenceContext& c) { check_conv_pool(c, 1); }},
    {"QLinearConv", [](onnx::InferenceContext& c) { check_conv_pool(c, 3); }},
    {"MaxPool", [](onnx::InferenceContext& c) { check_conv_pool(c, -1); }},
    {"AveragePool", [](onnx::InferenceContext& c) { check_conv_pool(c, -1); }},
    {"LpPool", [](onnx::InferenceContext& c) { check_conv_pool(c, -1); }},
};

class GuardedSchemaRegistry : public onnx::ISchemaRegistry {
 public:
  const onnx::OpSchema* GetSchema(const std::string& key, const int max_version,
                                  const std::string& domain) const override {
    const onnx::OpSchema* s = onnx::OpSchemaRegistry::Schema(key, max_version, domain);
    if (s == nullptr || !(domain.empty() || domain == "ai.onnx")) return s;
    for (const auto& g : kInferenceGuards) {
      if (key != g.op) continue;
      std::lock_guard<std::mutex> lock(mu_);
      auto& copy = guarded_[s];
      if (!copy) {
        copy = std::make_unique<onnx::OpSchema>(*s);
        auto inner = s->GetTypeAndShapeInferenceFunction();
        InferenceCheck check = g.check;
        copy->TypeAndShapeInferenceFunction([check, inner](onnx::InferenceContext& ctx) {
          check(ctx);
          if (inner) inner(ctx);
        });
      }
      return copy.get();
    }
    return s;
  }

 private:
  mutable std::mutex mu_;
  mutable std::map<const onnx::OpSchema*, std::unique_ptr<onnx::OpSchema>> guarded_;
};

// The model without its large initializers: those become typed graph inputs of their shape (what
// the checker and shape inference need of them), small ones (Reshape targets and the like) stay
// whole. The import frees each initializer's bytes once it is a tensor, so the checker and
// inference run on this copy: a ResNet-50 is not held twice (once as protobuf, once as tensors).
onnx::ModelProto light_model(const onnx::ModelProto& model, const std::set<std::string>& large) {
  onnx::ModelProto copy;
  copy.mutable_graph()->set_name(model.graph().name());
  copy.mutable_graph()->mutable_node()->CopyFrom(model.graph().node());
  copy.mutable_graph()->mutable_input()->CopyFrom(model.graph().input());
  copy.mutable_graph()->mutable_output()->CopyFrom(model.graph().output());
  copy.mutable_graph()->mutable_value_info()->CopyFrom(model.graph().value_info());
  copy.mutable_opset_import()->CopyFrom(model.opset_import());
  copy.set_ir_version(model.ir_version());
  std::set<std::string> declared;
  for (const auto& in : model.graph().input()) declared.insert(in.name());
  for (const auto& init : model.graph().initializer()) {
    if (!large.count(init.name())) {
      *copy.mutable_graph()->add_initializer() = init;
      continue;
    }
    if (declared.count(init.name())) continue;
    auto* vi = copy.mutable_graph()->add_input();
    vi->set_name(init.name());
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(init.data_type());
    auto* shape = tt->mutable_shape();
    for (auto d : init.dims()) shape->add_dim()->set_dim_value(d);
  }
  return copy;
}

// Initializers whose values neither the checker nor shape inference reads: more than 64 elements
// (shape-like inputs are smaller) or stored externally.
bool is_large_initializer(const onnx::TensorProto& init) {
  int64_t numel = 1;
  for (auto d : init.dims()) numel *= d;
  return numel > 64 || init.data_location() == onnx::TensorProto::EXTERNAL;
}

// ONNX's shape inference (as ORT runs it at load) adds the types of intermediate values that the
// file does not declare; symbolic dims stay symbolic (-1 with their name). Used for folding Shape
// of statically shaped values and for messages. A model inference cannot handle is not an error
// here: the executor finds real shapes when it runs. `copy` is the light model (it is changed).
void infer_value_info(onnx::ModelProto& copy, Graph& g) {
  try {
    static GuardedSchemaRegistry registry;
    onnx::shape_inference::InferShapes(copy, &registry);
  } catch (const std::exception& e) {
    log::verbose(g.source_path + ": ONNX shape inference stopped (" +
                 std::string(e.what()).substr(0, 200) + "); shapes come from running the model");
  }
  for (const auto& vi : copy.graph().value_info())
    if (!g.value_info.count(vi.name()) && !g.is_initializer(vi.name()))
      g.value_info[vi.name()] = value_info_from_proto(vi);
}

void check_model_size(size_t n, const std::string& display_name) {
  MIXQ_CHECK(n > 0, ErrorKind::kInvalidModel, display_name, ": the file is empty (expected an ONNX model)");
  MIXQ_CHECK(n < (size_t(2) << 30), ErrorKind::kInvalidModel, display_name,
             ": protobuf files over 2 GiB cannot be parsed; store weights as external data");
}

void check_parsed(bool ok, const std::string& display_name) {
  MIXQ_CHECK(ok, ErrorKind::kInvalidModel, display_name,
             ": not a valid ONNX model (protobuf parsing failed: the file is corrupt, truncated or "
             "not an .onnx file)");
}

// The graph of a parsed model. Each initializer's bytes are freed as soon as it is a tensor.
Graph graph_from_model(onnx::ModelProto& model, const std::string& display_name, const std::string& base_dir,
                       const ImportOptions& opts) {
  MIXQ_CHECK(model.has_graph(), ErrorKind::kInvalidModel, display_name,
             ": the file parses but holds no graph (is it an ONNX model?)");

  Graph g;
  g.source_path = display_name;
  g.ir_version = model.ir_version();
  g.producer = model.producer_name() + (model.producer_version().empty() ? "" : " " + model.producer_version());
  for (const auto& op : model.opset_import()) {
    std::string dom = op.domain() == "ai.onnx" ? "" : op.domain();
    g.opsets[dom] = op.version();
  }
  if (model.opset_import_size() == 0) g.opsets[""] = 1;  // IR < 3 default
  for (const auto& kv : model.metadata_props()) g.metadata[kv.key()] = kv.value();

  const int64_t opset = g.opset();
  MIXQ_CHECK(opset <= kMaxOpset, ErrorKind::kUnsupported, display_name, ": the model uses opset ",
             opset, "; mixq supports opsets up to ", kMaxOpset,
             " (re-export with opset_version between 11 and ", kMaxOpset, ")");

  auto& gp = *model.mutable_graph();
  g.name = gp.name();
  MIXQ_CHECK(gp.sparse_initializer_size() == 0, ErrorKind::kUnsupported, display_name,
             ": sparse initializers are not supported (densify them before quantizing)");
  std::set<std::string> large;
  for (auto& init : *gp.mutable_initializer()) {
    MIXQ_CHECK(!init.name().empty(), ErrorKind::kInvalidModel, display_name,
               ": an initializer has no name");
    g.initializers[init.name()] = tensor_from_proto(
        init, base_dir, "initializer '" + init.name() + "' in " + display_name);
    if (is_large_initializer(init)) {
      large.insert(init.name());
      delete init.release_raw_data();  // the tensor holds the values now (release frees capacity)
    }
  }
  // mixq runs tensors only: sequence, map and optional values are refused up front.
  auto require_tensor = [&](const onnx::ValueInfoProto& vi, const char* kind) {
    MIXQ_CHECK(!vi.has_type() || vi.type().has_tensor_type(), ErrorKind::kUnsupported, display_name,
               ": graph ", kind, " '", vi.name(), "' is not a tensor (sequence, map and optional ",
               "values are not supported by mixq)");
  };
  for (const auto& in : gp.input()) {
    if (g.is_initializer(in.name())) continue;
    require_tensor(in, "input");
    g.inputs.push_back(value_info_from_proto(in));
  }
  for (const auto& out : gp.output()) {
    require_tensor(out, "output");
    g.outputs.push_back(value_info_from_proto(out));
  }
  for (const auto& vi : gp.value_info()) g.value_info[vi.name()] = value_info_from_proto(vi);

  std::set<std::string> names;
  g.nodes.reserve(gp.node_size());
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node n;
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    if (!names.insert(n.name).second) {  // keep names unique: hooks and messages rely on them
      n.name += "#" + std::to_string(i);
      names.insert(n.name);
    }
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute())
      n.attrs[a.name()] = attribute_from_proto(a, base_dir, "node '" + n.name + "'");
    g.nodes.push_back(std::move(n));
  }
  check_structure(g, display_name);
  // Our own checks first (their messages name the node); then ONNX's checker for the rest.
  const bool schemas_known = opset <= kMaxCheckedOpset;
  if (opts.run_checker && !schemas_known)
    log::verbose(display_name + ": opset " + std::to_string(opset) +
                 " is newer than libonnx's schemas (17): the ONNX checker is skipped");
  onnx::ModelProto light;
  if ((opts.run_checker || opts.infer_shapes) && schemas_known) light = light_model(model, large);
  if (opts.run_checker && schemas_known) {
    try {
      onnx::checker::CheckerContext ctx;
      ctx.set_ir_version(static_cast<int>(model.ir_version()));
      std::unordered_map<std::string, int> versions;
      for (const auto& kv : g.opsets) versions[kv.first] = static_cast<int>(kv.second);
      ctx.set_opset_imports(versions);
      ctx.set_model_dir(base_dir);
      onnx::checker::LexicalScopeContext lex;
      onnx::checker::check_graph(light.graph(), ctx, lex);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      // The checker appends a long context dump; the first paragraph is the useful part.
      auto cut = msg.find("\n\n==> Context:");
      std::string ctx = cut == std::string::npos ? "" : msg.substr(cut + 14);
      if (cut != std::string::npos) msg = msg.substr(0, cut);
      throw Error(ErrorKind::kInvalidModel,
                  detail::concat(display_name, ": the ONNX checker rejects the model: ", msg,
                                 ctx.empty() ? "" : " [" + ctx.substr(0, ctx.find('\n')) + "]",
                                 " (fix the exporter's output; `python3 -c \"import onnx; "
                                 "onnx.checker.check_model('model.onnx')\"` shows the same)"));
    }
  }
  // Shape inference last: it runs libonnx's per-op functions on the model, which should see only
  // what mixq's checks and the checker accepted.
  if (opts.infer_shapes && schemas_known) infer_value_info(light, g);

  return g;
}

}  // namespace

Graph load_onnx_bytes(const std::string& bytes, const std::string& display_name,
                      const std::string& base_dir, const ImportOptions& opts) {
  check_model_size(bytes.size(), display_name);
  MappedTensorScope mapped_blocks;  // core/malloc_tuning.h
  onnx::ModelProto model;
  check_parsed(model.ParseFromString(bytes), display_name);
  return graph_from_model(model, display_name, base_dir, opts);
}

Graph load_onnx(const std::string& path, const ImportOptions& opts) {
  // Parsed from the file through protobuf's buffered stream: the file's bytes are never all in
  // memory beside the parsed model.
  std::ifstream f = open_input(path);
  std::error_code ec;
  check_model_size(static_cast<size_t>(fs::file_size(path, ec)), path);
  MappedTensorScope mapped_blocks;  // the file's bytes go back as their tensors are made (core/malloc_tuning.h)
  onnx::ModelProto model;
  check_parsed(model.ParseFromIstream(&f), path);
  return graph_from_model(model, path, fs::path(path).parent_path().string(), opts);
}

at::Tensor load_tensor_pb(const std::string& path, std::string* name_out) {
  std::string bytes = read_file(path);
  onnx::TensorProto tp;
  MIXQ_CHECK(tp.ParseFromString(bytes), ErrorKind::kInvalidData, path,
             ": not a serialized onnx.TensorProto (protobuf parsing failed)");
  if (name_out) *name_out = tp.name();
  return tensor_from_proto(tp, fs::path(path).parent_path().string(), "tensor file '" + path + "'");
}

}  // namespace mixq
