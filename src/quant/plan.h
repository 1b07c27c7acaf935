// QuantPlan: the central artifact. For every quantizable layer, the weight scheme and the
// input-activation scheme; plus the search that produced it, the budget and the predicted cost.
// Every allocator produces one, every quantization method consumes one, users can read, diff and
// edit it (`mixq quantize --plan FILE`). JSON schema: docs/quantplan.md (version 1).
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "graph/layers.h"
#include "quant/embed_scheme.h"
#include "quant/quantizer.h"
#include "quant/scheme.h"
#include "quant/sparq_ref.h"

namespace mixq {

struct LayerPlan {
  std::string name;        // layer node name (the key users edit plans by)
  std::string op;
  std::string weight;      // initializer quantized
  std::vector<int64_t> weight_shape;
  int64_t params = 0;      // weight elements (bias excluded; biases stay float32)
  int64_t bias_params = 0;
  int64_t macs = 0;        // per sample
  QScheme weight_scheme;
  RangeMethod weight_range = RangeMethod::kMinMax;
  EmbedScheme embed = EmbedScheme::kNone;  // embedding tables only: a row-wise scheme at
                                           // weight_scheme.bits (plan JSON: weight_quant.embed_scheme)
  bool quantize_input = true;   // Gather (embedding lookup) has no activation to quantize
  std::string input;            // activation tensor quantized (shared by every layer reading it)
  QScheme input_scheme;         // per tensor
  RangeMethod input_range = RangeMethod::kMinMax;
  SparqScheme input_sparq;      // SPARQ on the 8-bit input (quant/sparq_ref.h); plan JSON:
                                // input_quant.act_scheme ("uniform" when absent)
  bool pinned = false;          // first/last layer kept at 8 bits by default (never an
                                // embedding table: see is_embedding_table)
  // Multipoint (quant/multipoint.h): extra points the method added (each one channel's weights at
  // the layer's bits plus a scale) and the weight values they hold; 0 for every other method.
  // Written by quantization (record_extra_points), counted by layer_size_bits / layer_bops.
  int64_t extra_points = 0, extra_params = 0;
  // Kernel-wise bits (FracBits --fracbits-granularity channel): one weight bit-width per output
  // channel (index of weight_scheme.axis), each 2-8; empty = every channel at weight_scheme.bits.
  // When set, weight_scheme.bits is their maximum: the grid the codes, the QDQ export and the
  // .mxq pack share (a b-bit channel's codes and zero point lie inside the max-bit grid, so one
  // per-channel quantizer at the max bits dequantizes every channel exactly; quant/channel_bits.h).
  // The cost model counts each channel at its own bits. Plan JSON: weight_quant.channel_bits.
  std::vector<int> channel_bits;
};

// Sets a layer's per-channel weight bits: `bits` uniform clears channel_bits (a plain layer at
// that width), otherwise weight_scheme.bits becomes the maximum.
void set_channel_bits(LayerPlan& L, const std::vector<int>& bits);
// Output channels of the layer's weight (weight_shape[axis]; 1 for a 0-d weight).
int64_t weight_channels(const LayerPlan& L);
// Params-weighted mean weight bits of the layer (weight_scheme.bits without channel_bits).
double mean_weight_bits(const LayerPlan& L);

struct PlanCost {
  int64_t size_bytes = 0;   // every stored bit: weights at their bits + scales (fp32) + zero
                            // points (one byte each, asymmetric only) + everything kept float32
                            // + the file's structure (QuantPlan::structure_bytes)
  int64_t float_bytes = 0;  // the float32 model counted the same way
  double size_ratio = 0;    // size_bytes / float_bytes
  double avg_wbits = 0;     // params-weighted mean weight bits over quantized layers (multipoint's
                            // extra points count as the bits they store)
  double bops = 0;          // sum MACs * w_bits * a_bits (float32 layers count 32 x 32)
  double gbops() const { return bops / 1e9; }
};

// Where activation quantizers sit (--act-placement; quant/act_placement.h).
//   kInputs: on the inputs of quantized layers, seen by those layers only (residual paths stay
//            float, as the packed runtime runs them); the model's input at the first layer's bits.
//   kOutputs: as BRECQ's reference code places them: a quantized value is quantized for every
//            reader (residual Adds included), and the first layer's output is held at its pinned
//            bits (the reference's quantizer on the first layer's output is 8-bit).
enum class ActPlacement { kInputs, kOutputs };

struct QuantPlan {
  static constexpr int kVersion = 1;
  std::string model;                // model path as given
  std::string search = "uniform";   // allocator that produced the plan ("user" when edited)
  nlohmann::json search_params = nlohmann::json::object();
  std::string method = "minmax";    // quantization method the plan was made for
  nlohmann::json budget = nlohmann::json::object();  // e.g. {"avg_wbits": 4}
  ActPlacement act_placement = ActPlacement::kInputs;  // plan JSON "act_placement" (absent: inputs)
  std::vector<LayerPlan> layers;
  int64_t other_bytes = 0;          // initializers that are not layer weights/biases, at their dtype size
  // The rest of the stored model, the same for every bit choice: the .mxq header, the compressed
  // graph section (ops, attributes, shapes, names, quantizer declarations) and Constant-node
  // tensors. Measured by writing the plan's skeleton pack (pack/from_qmodel.h
  // count_file_structure); 0 until then. `float_structure_bytes`: the same for the float pack.
  int64_t structure_bytes = 0, float_structure_bytes = 0;
  PlanCost cost;

  const LayerPlan* find(const std::string& name) const;
};

// Defaults for a fresh plan: every layer at the same precision, first and last layer pinned
// unless they are embedding tables or dominant (is_dominant).
struct PlanDefaults {
  int wbits = 8, abits = 8;
  bool wsymmetric = false, asymmetric_act = true;
  Granularity granularity = Granularity::kPerChannel;
  int64_t group_size = 0;
  Rounding rounding = Rounding::kNearest;
  RangeMethod weight_range = RangeMethod::kMinMax;
  RangeMethod input_range = RangeMethod::kMinMax;
  SparqScheme act_sparq;     // --act-scheme: SPARQ on every unpinned layer's 8-bit input
  int pin_bits = 8;          // first/last layer weight and input bits; 0 = do not pin
  EmbedScheme embed_scheme = EmbedScheme::kNone;  // --embed-scheme: every embedding table's scheme
  ActPlacement act_placement = ActPlacement::kInputs;  // --act-placement
  // --pin-first-output: the layers reading the pinned first layer's output (through its activation)
  // get the pinned bits too, as under kOutputs, with inputs placement (packable). Implied by kOutputs.
  bool pin_first_output = false;
};

// An embedding table: a Gather on a constant table (graph/layers.h). Pinning is by role, not
// position: the "first and last layer at 8 bits" rule protects the layer that sees the raw input
// and the classifier, which are small; a table is a lookup with no input to protect, and in
// recommendation / text models it holds nearly every weight (the embedding-bag fixture: 99%), so
// pinning it would turn any low-bit request into ~8 bits. make_plan never pins one.
bool is_embedding_table(const LayerPlan& L);

// A layer holding more than half of the quantizable weights. The first/last-layer pin protects
// small, sensitive layers; one that dominates the model (the MLP fixture's first layer: 85%) is
// not pinned by default, or no low-bit request could be met (a 4-bit request on the MLP gave 7.2
// bits). It is listed in the allocation summary (`unpinned_dominant`).
bool is_dominant(double params, double total_params);

// Pinned layers holding more than `max_share` of the model's weights (params-weighted, the way
// avg_wbits counts): one message each naming the layer, its share, the average weight bits its
// pinning costs against a `target_bits` request (share x (pinned bits - target)) and how to unpin
// it. Empty when no pinned layer is that large or no layer is above the target.
std::vector<std::string> pinned_share_warnings(const QuantPlan& plan, double target_bits, double max_share = 0.05);

// A plan covering every quantizable layer of the (prepared) graph. `layers` must carry MACs
// (exec/shapes.h annotate_macs).
QuantPlan make_plan(const Graph& g, const std::vector<LayerInfo>& layers, const PlanDefaults& d);

// Sets a layer's weight bits (and keeps the shared-input rule: layers reading the same tensor get
// the same activation scheme, the highest bits among them; SPARQ only where every reader asks for
// it and the bits are 8).
void unify_shared_inputs(QuantPlan& plan);

// One layer's share of PlanCost: stored bits (weights at their bits + scales + zero points + the
// float32 bias; a row-wise table: codes + fp16 scale and offset per row, or its fp16 centroids) and BOPs (MACs x weight bits x input bits, 32 for an unquantized input; a SPARQ
// input counts 4 bits: each MAC multiplies a 4-bit window, vSPARQ's 8-bit values use the free
// 4-bit slot of their zero partner). The
// allocators' cost model; update_cost sums exactly these.
double layer_size_bits(const LayerPlan& L);
double layer_bops(const LayerPlan& L);

// Recomputes plan.cost from the layers (call after any change to bit-widths).
void update_cost(QuantPlan& plan);

nlohmann::json plan_to_json(const QuantPlan& plan);
// Parses and validates a plan against the model's layers: unknown or missing layers, bits outside
// 2-8/16, unknown granularity/rounding/range names, group sizes that do not fit, and layers that
// read the same tensor with different activation schemes are kInvalidArgument errors naming the
// layer and the field. `where` names the plan file in messages.
QuantPlan plan_from_json(const nlohmann::json& j, const QuantPlan& model_template, const std::string& where);

QuantPlan load_plan(const std::string& path, const QuantPlan& model_template);
void save_plan(const QuantPlan& plan, const std::string& path);  // atomic

// Checks the invariants every consumer relies on (same as plan_from_json's checks).
void validate_plan(const QuantPlan& plan, const std::string& where);

}  // namespace mixq
