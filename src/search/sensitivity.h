// Per-layer sensitivity table: for every unpinned quantizable layer and candidate weight bit-width,
// the measured effect of quantizing that layer alone to those bits while every other layer stays
// at the reference precision (the plan's defaults with weights at ref_bits, activations at the
// plan's bits). See METHODS.md "Sensitivity signals and allocators".
//
// Candidates: every weight bit-width in `bits` at the plan's granularity; optionally the same bits
// per group of `group_sizes` consecutive input elements (granularity candidates); and for every
// activation tensor whose readers are all unpinned, each bit-width of `act_bits` below the plan's
// activation bits (activation candidates, one entry per tensor: every layer reading it shares its
// quantizer).
//
// Signals per candidate, each an *increase* over the reference model (0 at the reference):
//   mse    sum over the weight of (W - DQ(Q_b(W)))^2 with the layer's range method (data-free)
//   noise  ||z - z_float||^2 / ||z_float||^2 of the network logits z on calibration data (the
//          inverse of the output SQNR; noise powers of independent layers add)
//   sqnr   output SQNR in dB (reported, not additive; allocators use `noise`)
//   kl     mean KL(softmax(z_float) || softmax(z)) per sample
//   dl     mean cross-entropy increase on the calibration samples (needs labels; else = kl)
//   dacc   calibration top-1 drop in points
//   fisher 0.5 * sum F (.) (dW_b^2 - dW_ref^2), F the diagonal empirical Fisher of the calibration
//          loss w.r.t. the float weights (search/curvature.h)
//   hessian 0.5 * Tr(H_l) / n_l * (||dW_b||^2 - ||dW_ref||^2), Hutchinson trace (HAWQ-V2)
// Activation candidates have the data signals only (noise, sqnr, kl, dl, dacc; mse, fisher and
// hessian are 0: they are weight-roundoff measures).
// How: the reference model is quantized once (quant/quantize.h) and run as its QDQ graph; for each
// (layer, candidate) an executor hook replaces that one layer's dequantized weight, and the
// calibration subset (all of it in one or a few batches) runs again; for each (tensor, bits) the
// QDQ graph is rebuilt with that one activation quantizer at those bits (search/probe.h). The table is written (atomically) after every layer to `cache_path`, keyed by the model
// file's hash, the calibration spec and every setting; a run finding a cache with the same key
// reuses its finished layers, so a killed run resumes.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "graph/ir.h"
#include "quant/plan.h"

namespace mixq {

class SensitivityProbe;

struct SensEntry {
  double mse = 0, noise = 0, sqnr_db = 0, kl = 0, dl = 0, dacc = 0, fisher = 0, hessian = 0;
};

struct LayerSens {
  std::string name;
  int64_t params = 0;
  std::map<int, SensEntry> bits;  // measured candidates (ref_bits included, all zeros)
  // Granularity candidates: group size -> bits -> entry (per group along the reduction axis; a
  // group size reaching the whole reduction length is the plan's per-channel and is not listed).
  std::map<int64_t, std::map<int, SensEntry>> groups;
};

// One activation tensor's candidates: the tensor every layer in `layers` quantizes as its input.
struct ActSens {
  std::string tensor;
  std::vector<std::string> layers;
  int ref_bits = 8;               // the plan's bits for this tensor (entry all zeros)
  std::map<int, SensEntry> bits;  // measured candidates, ref_bits included
};

struct SensitivityTable {
  static constexpr int kVersion = 2;  // 2: granularity and activation candidates (1 still reads)
  nlohmann::json key;             // what the numbers depend on (model hash, calib, settings)
  int ref_bits = 8;
  int64_t samples = 0;
  double float_top1 = 0, float_loss = 0, ref_top1 = 0, ref_loss = 0, ref_kl = 0, ref_noise = 0;
  std::vector<LayerSens> layers;  // unpinned layers, plan order
  std::vector<ActSens> acts;      // activation candidates, plan order of their first reader
  nlohmann::json plan;            // the reference plan (plan_to_json), for `mixq plan --from-table`
  std::string model;              // model path as given
  double seconds = 0;             // measuring time (this run plus resumed parts)
  bool has_labels = false;  // measured on labelled class scores (dl is a cross-entropy increase)
  bool has_fisher = false, has_hessian = false;  // curvature signals present (need labels; the
                                                 // Hessian also needs double backward)

  const LayerSens* find(const std::string& layer) const;
  const ActSens* find_act(const std::string& tensor) const;
};

// The signal names allocators accept: dl, kl, noise (alias sqnr), mse, dacc, fisher, hessian, and
// auto (the default): kl when the table was measured on labelled class scores, else noise (the
// relative output noise: the one signal that means the same for embeddings, detectors and
// classifiers alike; KL of a softmax over an embedding says almost nothing).
const std::vector<std::string>& signal_names();
std::string resolve_signal(const std::string& signal, const SensitivityTable* t);
// Whether the signal is measured on calibration data (kl, dl, noise/sqnr, dacc): the ones that
// activation candidates and the additivity check have.
bool is_data_signal(const std::string& signal);
// The additive value of `signal` in an entry; throws kInvalidArgument for unknown names.
double signal_value(const SensEntry& e, const std::string& signal);

// The table with only the candidates an allocation may use: activation entries at bits listed in
// `act_bits` (the reference bits always stay), group sizes listed in `group_sizes`. So a table
// measured with candidates serves a run that asks for fewer (`--act-candidates none`).
SensitivityTable with_candidates(const SensitivityTable& t, const std::vector<int>& act_bits,
                                 const std::vector<int64_t>& group_sizes);

// The layer's weight scheme at `bits`, per group of `group` elements when group > 0.
QScheme candidate_scheme(const LayerPlan& L, int bits, int64_t group);

// The table's prediction of `signal` for a plan: the sum over its layers' weight candidates (bits
// at the plan's granularity, or per group) and its activation tensors' candidates; schemes the
// table did not measure count 0.
double predicted_signal(const SensitivityTable& t, const QuantPlan& plan, const std::string& signal);

struct SensitivityOptions {
  std::vector<int> bits = {2, 3, 4, 5, 6, 7, 8};
  int ref_bits = 8;
  // Activation candidates: bit-widths below the plan's activation bits are measured per tensor
  // (needs calibration data; empty: none).
  std::vector<int> act_bits = {4, 8};
  // Granularity candidates: group sizes measured at every bit-width of `bits` (empty: none).
  std::vector<int64_t> group_sizes;
  int64_t samples = 256;     // first N calibration samples (0: all)
  int64_t batch_size = 0;    // probe batches; 0: automatic (search/probe.h, probe_batch_size)
  std::string calib_spec;    // recorded in the key
  std::string model_path;    // hashed for the key ("" : no hash)
  std::string cache_path;    // "" : no cache
  bool resume = true;        // reuse the finished units of an existing cache_path (else remeasure)
  int64_t max_memory_mb = 0; // --max-memory: the probe's samples stay resident (refused above it), its
                             // cached activations spill past what the samples leave (0: kProbeCutBudget)
  std::string spill_dir;     // --cache-dir: where they spill ("" = $TMPDIR or /tmp)
  bool data_free = false;    // only `mse` (no calibration data needed)
  bool progress = true;
  bool curvature = false;    // also the fisher and hessian signals (an autograd pass with
                             // double backward: several times the cost of the rest on convnets)
};

// Throws kInvalidArgument when `t` lacks `signal` (curvature signals of a table made without them).
void require_signal(const SensitivityTable& t, const std::string& signal, const std::string& where);

// `plan` is the job's plan before allocation (defaults, pinned layers); its unpinned layers are
// measured. `calib` may be null when opts.data_free. `keep_probe`: when given, receives the probe
// the table was measured with (null when none was built: data-free, or every unit cached), so the
// additivity check (search/additivity.h) measures with the same instrument without rebuilding it.
SensitivityTable measure_sensitivity(const Graph& prepared, const QuantPlan& plan, const Dataset* calib,
                                     const SensitivityOptions& opts,
                                     std::unique_ptr<SensitivityProbe>* keep_probe = nullptr);

nlohmann::json table_to_json(const SensitivityTable& t);
// Throws kInvalidArgument naming `where` and the field for malformed tables.
SensitivityTable table_from_json(const nlohmann::json& j, const std::string& where);
// The same from a table's JSON text (`where` names its source in errors).
SensitivityTable table_from_text(const std::string& text, const std::string& where);
SensitivityTable load_table(const std::string& path);
void save_table(const SensitivityTable& t, const std::string& path);  // atomic

// FNV-1a 64 of a file's bytes, as 16 hex digits (the cache key's model identity).
std::string file_hash(const std::string& path);

}  // namespace mixq
