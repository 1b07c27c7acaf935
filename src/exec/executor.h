// Runs a Graph on libtorch, node by node, through the op registry.
//
// - Compilation (constructor): every node gets a kernel from the registry; unsupported ops,
//   opsets and bad attributes fail here with the node named.
// - Values live in integer slots; a value is freed after its last reader unless it is fetched.
// - Static values (initializers and everything computed only from them, e.g. shape arithmetic on
//   constants) are computed once and cached until hooks or the grad mode change.
// - Hooks observe or replace any value by name (graph input, initializer or node output). This is
//   how calibration observers, fake quantization and activation caching attach.
// - run(feeds, fetches) runs only the nodes needed to compute `fetches` from `feeds`: a layer or a
//   block can be run alone by feeding its inputs.
// - By default runs under c10::InferenceMode; set_grad_enabled(true) records autograd instead.
// - run(inputs) runs fused kernels for decomposed LayerNorm / GELU / Linear chains (exec/fusion.h)
//   in place of their nodes while no hook is attached to a value inside the chain (hooks on the
//   chain's inputs and output still fire). run(feeds, fetches) runs the original nodes unless
//   asked to fuse; then a group is used where run(inputs) would use it and the partial run needs
//   all of its nodes with no interior value fed or fetched, so whole and partial fused runs (e.g.
//   from a cut that splits no group) do the same arithmetic. MIXQ_NO_FUSION=1 (read by the
//   constructor) turns fusion off.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "exec/fusion.h"
#include "exec/kernel.h"
#include "graph/ir.h"

namespace mixq {

class Executor {
 public:
  // value: the tensor; the hook may replace it (e.g. with a fake-quantized copy) but must never
  // modify it in place: values can be views of inputs, initializers or other values (Reshape,
  // Identity, Slice... return views to keep batch-1 latency low).
  using Hook = std::function<void(const std::string& name, at::Tensor& value)>;

  explicit Executor(Graph graph);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const Graph& graph() const { return graph_; }

  // Runs the whole graph. `inputs` follow graph().inputs order; returns graph().outputs order.
  // Inputs are checked against the declared dtype/rank/static dims (kInvalidData on mismatch).
  std::vector<at::Tensor> run(const std::vector<at::Tensor>& inputs);

  // Runs the part of the graph needed to compute `fetches` from `feeds` (names of any values).
  // Feeding an intermediate value cuts the graph there. Throws kInvalidArgument when a fetch
  // depends on a graph input that is not fed, or names an unknown value. `fused`: use the fusion
  // groups (see above) instead of always running the original nodes.
  std::map<std::string, at::Tensor> run(const std::map<std::string, at::Tensor>& feeds,
                                        const std::vector<std::string>& fetches, bool fused = false);

  // Hooks: called in the order added, each time the value is produced. Returns an id.
  int add_hook(const std::string& value, Hook hook);
  void remove_hook(int id);
  void clear_hooks();

  void set_grad_enabled(bool enabled);
  bool grad_enabled() const { return grad_enabled_; }

  bool has_value(const std::string& name) const { return slot_of_.count(name) != 0; }
  // Every value name (inputs, initializers, node outputs), in slot order.
  const std::vector<std::string>& value_names() const { return slot_name_; }

  // Diagnostics: the fusion groups found at construction (none with MIXQ_NO_FUSION=1), and how
  // many of them the last run(inputs) used (-1 before the first run or after a hook change).
  size_t fusion_groups() const { return num_fused_; }
  int active_fusion_groups() const { return static_valid_ ? active_fused_ : -1; }
  // The [first, last] node indices of every fusion group run(inputs) would use with the hooks
  // attached now (a run(feeds, fetches, true) from values crossing a point inside one of these
  // spans runs that group's nodes unfused).
  std::vector<std::pair<int, int>> active_fusion_spans();

 private:
  struct CompiledNode;
  struct FusedNode;
  struct HookEntry {
    int id;
    int slot;
    Hook fn;
  };

  int slot(const std::string& name) const;
  void check_input(size_t i, const at::Tensor& t) const;
  void invalidate_static();
  void ensure_static();
  void apply_hooks(int slot, at::Tensor& t) const;
  // idx < nodes_.size(): a graph node; otherwise fused_[idx - nodes_.size()].
  void run_node(size_t idx, std::vector<at::Tensor>& values) const;
  void run_fused(const FusedNode& f, std::vector<at::Tensor>& values) const;
  const std::vector<int>& node_inputs(int idx) const;
  // Executes `order` (node indices) with `values` pre-filled; frees values after last use unless
  // keep[slot] is set.
  void execute(const std::vector<int>& order, std::vector<at::Tensor>& values,
               const std::vector<char>& keep) const;

  Graph graph_;
  std::vector<CompiledNode> nodes_;
  std::vector<FusedNode> fused_;
  size_t num_fused_ = 0;
  int active_fused_ = 0;
  std::unordered_map<std::string, int> slot_of_;
  std::vector<std::string> slot_name_;
  std::vector<int> input_slots_, output_slots_;
  std::vector<int> init_slot_;             // slots holding initializers
  std::vector<at::Tensor> init_value_;     // their tensors
  std::vector<HookEntry> hooks_;
  std::vector<char> hooked_;               // per slot: any hook attached
  int next_hook_id_ = 1;
  bool grad_enabled_ = false;

  // MIXQ_PROFILE=1: wall time per op type, printed to stderr when the executor is destroyed.
  bool profile_ = false;
  mutable std::map<std::string, std::pair<double, int64_t>> profile_by_op_;

  // Static cache.
  bool static_valid_ = false;
  std::vector<char> is_static_;            // per slot
  std::vector<at::Tensor> static_values_;  // per slot (defined where is_static_)
  std::vector<int> dynamic_order_;         // nodes to run per full inference
  std::vector<char> fused_active_;         // per fusion group: used by run(inputs)
  std::vector<int> full_last_use_;
};

}  // namespace mixq
