// The op graph as the load-time chain fusions (fuse_chains.cpp, fuse_attention.cpp) see it: who
// reads each slot, which slots are constants or graph outputs, and how a matched chain is replaced
// by one op. Internal to those files. No libtorch.
#pragma once

#include <cmath>
#include <initializer_list>
#include <memory>
#include <set>
#include <vector>

#include "pack/mxq_format.h"
#include "runtime/ops.h"

namespace mixq::rt {

struct ChainGraph {
  const pack::PackedModel& pm;
  std::vector<std::vector<int>>& op_in;
  std::vector<std::vector<int>>& op_out;
  std::vector<bool>& skip;
  const std::vector<Tensor>& slots;
  const std::vector<bool>& is_const;
  std::set<int> outputs;
  std::vector<std::vector<int>> readers;  // slot -> reading ops

  ChainGraph(const pack::PackedModel& pm_, std::vector<std::vector<int>>& op_in_, std::vector<std::vector<int>>& op_out_,
        std::vector<bool>& skip_, const std::vector<Tensor>& slots_, const std::vector<bool>& is_const_,
        const std::vector<int>& output_slots)
      : pm(pm_), op_in(op_in_), op_out(op_out_), skip(skip_), slots(slots_), is_const(is_const_),
        outputs(output_slots.begin(), output_slots.end()), readers(slots_.size()) {
    for (size_t i = 0; i < op_in.size(); ++i)
      for (int s : op_in[i])
        if (s >= 0) readers[static_cast<size_t>(s)].push_back(static_cast<int>(i));
  }

  // The single op reading slot s (not a graph output), if it is `op`; else -1.
  int only_reader(int s, const char* op) const {
    if (s < 0 || outputs.count(s) || readers[static_cast<size_t>(s)].size() != 1) return -1;
    const int r = readers[static_cast<size_t>(s)][0];
    return !skip[r] && pm.nodes[static_cast<size_t>(r)].op == op ? r : -1;
  }
  int out0(int i) const { return op_out[i].size() == 1 ? op_out[i][0] : -1; }
  // The chain's ops `gone` are skipped; its last op `last` becomes `op`, reading slot x (slots xs).
  void replace(std::initializer_list<int> gone, int last, int x, std::unique_ptr<Op> op,
               std::vector<std::unique_ptr<Op>>& ops) {
    replace(gone, last, std::vector<int>{x}, std::move(op), ops);
  }
  void replace(std::initializer_list<int> gone, int last, std::vector<int> xs, std::unique_ptr<Op> op,
               std::vector<std::unique_ptr<Op>>& ops) {
    replace(std::vector<int>(gone), last, std::move(xs), std::move(op), ops);
  }
  void replace(const std::vector<int>& gone, int last, std::vector<int> xs, std::unique_ptr<Op> op,
               std::vector<std::unique_ptr<Op>>& ops) {
    for (int j : gone) {
      skip[j] = true;
      op_in[j].clear();
      op_out[j].clear();
    }
    op_in[last] = std::move(xs);
    ops[last] = std::move(op);
  }
  // The scalar value of a constant operand, or NaN.
  static float scalar(const Tensor* t) { return t && t->f.size() == 1 ? t->f[0] : NAN; }
  // The constant float operand of binary op i other than slot s, or null.
  const Tensor* const_other(int i, int s) const {
    if (op_in[i].size() != 2) return nullptr;
    const int o = op_in[i][0] == s ? op_in[i][1] : (op_in[i][1] == s ? op_in[i][0] : -1);
    if (o < 0 || !is_const[static_cast<size_t>(o)]) return nullptr;
    const Tensor& t = slots[static_cast<size_t>(o)];
    return t.dtype == ElemType::kFloat32 ? &t : nullptr;
  }
  bool last_axis_mean(int i) const {
    const pack::Node& n = pm.nodes[static_cast<size_t>(i)];
    if (n.op != "ReduceMean" || op_in[i].size() != 1) return false;  // (axes as an input: not matched)
    const pack::Attr* ax = n.attr("axes");
    const pack::Attr* kd = n.attr("keepdims");
    return ax && ax->ints.size() == 1 && ax->ints[0] == -1 && (!kd || kd->i == 1);
  }
};


}  // namespace mixq::rt
