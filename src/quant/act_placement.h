// Activation-quantizer placement (ActPlacement in quant/plan.h; `--act-placement`).
//
// mixq quantizes the inputs of quantized layers (kInputs). BRECQ's reference code quantizes
// the outputs of its layers and blocks instead (kOutputs), which differs in two visible ways:
// a value is quantized for every reader, so the identity path of a residual block adds the
// quantized value; and the first layer, pinned at 8 bits, has an 8-bit quantizer on its output,
// so the layers reading it get 8-bit inputs. kOutputs reproduces both within mixq's plan (the
// model's input stays quantized at the first layer's bits, and the last layer's input is its own
// quantized value, where the reference averages quantized values). Issue 23 measures the two side by side.
#pragma once

#include <string>

#include "graph/ir.h"
#include "quant/plan.h"

namespace mixq {

const char* act_placement_name(ActPlacement p);           // "inputs" | "outputs"
ActPlacement parse_act_placement(const std::string& s);   // kInvalidArgument naming both

// The layers reading a pinned layer's output (through activation functions) get that layer's input
// bits, as the reference's 8-bit first-layer output quantizer gives them. make_plan calls it under
// kOutputs or with PlanDefaults::pin_first_output, before its shared-input rule and cost.
void pin_pinned_outputs(const Graph& g, QuantPlan& plan);

}  // namespace mixq
