// The operator kernel interface and the op registry.
//
// Each ONNX op is one row in a table: op type, the opset range whose semantics the kernel
// implements, and a factory. The factory runs once per node when the Executor compiles a graph:
// it parses and validates attributes (bad attributes fail there, with the node named), and
// returns a kernel whose compute() only does tensor math. This is ONNX Runtime's split between
// kernel construction and Compute, and it keeps per-call overhead low for batch-1 inference.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "mixq/error.h"

namespace mixq {

// What a kernel factory sees of its node at compile time.
class NodeInfo {
 public:
  NodeInfo(const Graph& graph, const Node& node, int64_t opset)
      : graph_(graph), node_(node), opset_(opset) {}

  const Node& node() const { return node_; }
  const Graph& graph() const { return graph_; }
  int64_t opset() const { return opset_; }

  size_t num_inputs() const { return node_.inputs.size(); }
  size_t num_outputs() const { return node_.outputs.size(); }
  bool has_input(size_t i) const { return i < node_.inputs.size() && !node_.inputs[i].empty(); }
  bool has_output(size_t i) const { return i < node_.outputs.size() && !node_.outputs[i].empty(); }
  // The value of input i when it is an initializer (known at compile time), else nullptr.
  const at::Tensor* constant_input(size_t i) const;

  bool has_attr(const std::string& name) const { return node_.attr(name) != nullptr; }
  int64_t get_int(const std::string& name, int64_t dflt) const;
  int64_t req_int(const std::string& name) const;
  float get_float(const std::string& name, float dflt) const;
  std::string get_string(const std::string& name, const std::string& dflt) const;
  std::vector<int64_t> get_ints(const std::string& name, std::vector<int64_t> dflt = {}) const;
  std::vector<float> get_floats(const std::string& name, std::vector<float> dflt = {}) const;
  at::Tensor get_tensor(const std::string& name) const;  // undefined if absent

  // Throws Error(kind, "<file>: node 'n' (Op, opset k): <msg>").
  [[noreturn]] void fail(const std::string& msg, ErrorKind kind = ErrorKind::kInvalidModel) const;
  [[noreturn]] void unsupported(const std::string& msg) const { fail(msg, ErrorKind::kUnsupported); }
  std::string where() const;

 private:
  const Attribute& typed_attr(const std::string& name, AttrType type) const;
  const Graph& graph_;
  const Node& node_;
  int64_t opset_;
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  // in: one tensor per node input, undefined for omitted optional inputs.
  // out: sized to the node's output count; the kernel fills every output that is not omitted.
  // Kernels throw mixq::Error(kRuntime, ...) (or let libtorch throw) for data-dependent failures;
  // the executor adds the node and input shapes to the message.
  virtual void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) = 0;
  // compute() followed by y = min(max(y, lo), hi) (a Relu or Clip) in the same pass, for kernels
  // that can (Conv on oneDNN: a post-op while the output tile is in registers). Returns false, having
  // computed nothing, where the kernel cannot; the caller then runs compute() and the clamp itself.
  virtual bool compute_clamped(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out, float lo, float hi) {
    return false;
  }
};

using KernelFactory = std::unique_ptr<OpKernel> (*)(const NodeInfo&);

// One registry row. [since, until] is the default-domain opset range the kernel implements.
struct OpRow {
  const char* op_type;
  int since;
  int until;
  KernelFactory make;
};

template <typename K>
std::unique_ptr<OpKernel> make_kernel(const NodeInfo& info) {
  return std::make_unique<K>(info);
}

// The row for (op_type, opset) in the default ONNX domain, or nullptr.
const OpRow* find_op(const std::string& op_type, int64_t opset);
// Every row, for documentation and `mixq info --ops`.
const std::vector<OpRow>& op_table();
// True if any row exists for op_type (at some opset).
bool op_known(const std::string& op_type);

}  // namespace mixq
