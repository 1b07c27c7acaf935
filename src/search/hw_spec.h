// Hardware spec (HAGO-style): what a target can execute. Per op kind the allowed weight and
// activation bit-widths, weight granularities and symmetry; and groups of layers that must share
// one weight precision (explicit names, or every layer feeding the same Add / Concat through
// elementwise ops: the operands of a residual add or a concat must arrive at one precision on
// integer-only targets). Format: docs/hwspec.md; examples: hw/*.json.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "quant/plan.h"

namespace mixq {

struct OpRule {
  std::vector<int> weight_bits;          // allowed weight bits (2-8, 16)
  std::vector<int> act_bits;             // allowed input-activation bits
  std::vector<std::string> granularity;  // per_tensor / per_channel / per_group
  std::vector<std::string> symmetry;     // "symmetric" / "asymmetric" (weights)
};

struct HwSpec {
  std::string name, path;
  std::map<std::string, OpRule> ops;     // by ONNX op type; "default" for the rest
  std::vector<std::vector<std::string>> groups;  // explicit shared-precision layer groups
  bool share_add_concat = false;         // also group layers feeding the same Add/Concat

  const OpRule& rule(const std::string& op) const;  // throws when neither op nor default is listed
};

// Throws kInvalidArgument naming the file and the field for malformed specs.
HwSpec load_hw_spec(const std::string& path);
HwSpec hw_spec_from_json(const nlohmann::json& j, const std::string& where);

// Allowed weight bits of one layer (sorted ascending).
std::vector<int> allowed_wbits(const HwSpec& hw, const LayerPlan& L);

// Shared-precision groups as sets of plan layer indices (union of explicit groups and, with
// share_add_concat, layers meeting at an Add/Concat of `g`). Unknown layer names in explicit
// groups are kInvalidArgument errors naming the spec file.
std::vector<std::vector<int>> shared_groups(const HwSpec& hw, const Graph& g, const QuantPlan& plan);

// Throws kInvalidArgument naming the layer, the field, what the spec allows and the spec file when
// the plan uses something the spec forbids (or breaks a shared group).
void check_plan_against_spec(const QuantPlan& plan, const HwSpec& hw, const Graph& g);

// Moves the plan's defaults inside the spec where that is unambiguous: activation bits and pinned
// weight bits not allowed become the nearest allowed above (else the highest allowed). Called
// before allocation so every allocator starts from a legal plan.
void fit_plan_to_spec(QuantPlan& plan, const HwSpec& hw);

}  // namespace mixq
