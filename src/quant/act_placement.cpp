#include "quant/act_placement.h"

#include <algorithm>
#include <set>

#include "mixq/error.h"

namespace mixq {

namespace {
// One-input functions a layer's output passes through before the next layer reads it (BRECQ's
// QuantModule applies its activation function before its output quantizer).
bool is_activation(const std::string& op) {
  static const std::set<std::string> kOps = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish",
                                             "Tanh", "Elu", "Selu", "Gelu", "Softplus", "Mish"};
  return kOps.count(op) > 0;
}
}  // namespace

const char* act_placement_name(ActPlacement p) { return p == ActPlacement::kOutputs ? "outputs" : "inputs"; }

ActPlacement parse_act_placement(const std::string& s) {
  if (s == "inputs") return ActPlacement::kInputs;
  if (s == "outputs") return ActPlacement::kOutputs;
  throw Error(ErrorKind::kInvalidArgument, "act placement '" + s +
                                               "' is unknown; use inputs (mixq: layer inputs, residual paths float) "
                                               "or outputs (BRECQ's reference: every reader, first layer's output pinned)");
}

void pin_pinned_outputs(const Graph& g, QuantPlan& plan) {
  for (const LayerPlan& P : plan.layers) {
    if (!P.pinned || !P.quantize_input) continue;
    auto node = std::find_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.name == P.name; });
    if (node == g.nodes.end() || node->outputs.empty()) continue;
    // The values the pinned layer's output becomes before a layer reads it.
    std::set<std::string> reach = {node->outputs[0]};
    for (bool grew = true; grew;) {
      grew = false;
      for (const Node& n : g.nodes)
        if (is_activation(n.op_type) && !n.inputs.empty() && reach.count(n.inputs[0]) && !n.outputs.empty())
          grew = reach.insert(n.outputs[0]).second || grew;
    }
    const int bits = P.input_scheme.bits;
    for (LayerPlan& L : plan.layers)
      if (L.quantize_input && reach.count(L.input) && L.input_scheme.bits < bits) {
        L.input_scheme.bits = bits;
        L.input_sparq = SparqScheme{};  // a pinned-width input, like the pinned layers' own
      }
  }
}

}  // namespace mixq
