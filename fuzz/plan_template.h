// A small model for the plan and hardware-spec targets: plan_from_json validates a plan against
// the model's layers, so the fuzzer needs one. Four layers cover the cases the reader treats
// apart: a per-channel Conv, two layers sharing one input (Gemm, MatMul) that meet at an Add (the
// shared-precision rules), and an embedding table (Gather, no input to quantize).
// MIXQ_FUZZ_WRITE_SEED=FILE makes a target write its seed (the template as JSON) and exit.
#pragma once

#include <ATen/ops/zeros.h>

#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/layers.h"
#include "quant/plan.h"

namespace mixq::fuzz {

struct PlanModel {
  Graph g;
  QuantPlan plan;
};

inline Node make_node(const std::string& name, const std::string& op, std::vector<std::string> in,
                      std::vector<std::string> out) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

inline const PlanModel& plan_model() {
  static const PlanModel pm = [] {
    PlanModel m;
    Graph& g = m.g;
    g.source_path = "fuzz.onnx";
    g.opsets[""] = 13;
    auto init = [&](const std::string& name, std::vector<int64_t> shape) { g.initializers[name] = at::zeros(shape); };
    init("conv1.w", {8, 1, 3, 3});
    init("conv1.b", {8});
    init("fc1.w", {16, 72});
    init("fc2.w", {72, 16});
    init("emb.w", {100, 8});
    init("other", {5});
    g.nodes.push_back(make_node("conv1", "Conv", {"x", "conv1.w", "conv1.b"}, {"c1"}));
    g.nodes.push_back(make_node("flat", "Flatten", {"c1"}, {"c1f"}));
    g.nodes.push_back(make_node("fc1", "Gemm", {"c1f", "fc1.w"}, {"f1"}));
    g.nodes.push_back(make_node("fc2", "MatMul", {"c1f", "fc2.w"}, {"f2"}));
    g.nodes.push_back(make_node("add", "Add", {"f1", "f2"}, {"s"}));
    g.nodes.push_back(make_node("emb", "Gather", {"emb.w", "ids"}, {"e"}));
    auto layer = [](std::string node, std::string op, std::string w, std::string b, std::string in,
                    int64_t axis, std::vector<int64_t> shape, int64_t macs) {
      LayerInfo L;
      L.node = std::move(node);
      L.op = std::move(op);
      L.weight = std::move(w);
      L.bias = std::move(b);
      L.input = std::move(in);
      L.channel_axis = axis;
      L.weight_shape = std::move(shape);
      L.macs = macs;
      return L;
    };
    std::vector<LayerInfo> layers = {
        layer("conv1", "Conv", "conv1.w", "conv1.b", "x", 0, {8, 1, 3, 3}, 72 * 9),
        layer("fc1", "Gemm", "fc1.w", "", "c1f", 0, {16, 72}, 16 * 72),
        layer("fc2", "MatMul", "fc2.w", "", "c1f", 1, {72, 16}, 16 * 72),
        layer("emb", "Gather", "emb.w", "", "ids", 0, {100, 8}, 0),
    };
    PlanDefaults d;
    d.wbits = 4;
    m.plan = make_plan(g, layers, d);
    return m;
  }();
  return pm;
}

}  // namespace mixq::fuzz
