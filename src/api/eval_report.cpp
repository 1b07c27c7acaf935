#include "api/eval_report.h"

#include <filesystem>

#include "data/npy.h"
#include "exec/fidelity.h"
#include "exec/fold_constants.h"
#include "mixq/error.h"

namespace mixq {

void set_reference(const std::string& reference, const std::vector<ValueInfo>& outputs, int64_t samples,
                   EvalOptions& opts, std::unique_ptr<Executor>& holder) {
  if (reference.empty()) return;
  if (std::filesystem::path(reference).extension() == ".npz") {
    opts.reference = reference_arrays(load_npz(reference), outputs, samples, reference);
    return;
  }
  Graph rg = load_model(reference);
  MIXQ_CHECK(rg.outputs.size() == outputs.size(), ErrorKind::kInvalidArgument, "--reference ", reference, " has ",
             rg.outputs.size(), " outputs but the model has ", outputs.size());
  holder = std::make_unique<Executor>(std::move(rg));
  opts.reference = reference_executor(*holder);
  opts.reference_top1 = true;
}

nlohmann::json eval_json(const EvalResult& r, Metric metric, const std::string& model, const std::string& data,
                         const std::string& reference) {
  const LeadMetric lm = lead_metric(metric, r);
  auto opt = [](bool has, double v) { return has ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j = {{"model", model}, {"data", data}, {"top1", opt(r.has_top1, r.top1)},
                      {"correct", opt(r.has_top1, double(r.correct))}, {"samples", r.samples},
                      {"loss", opt(r.has_top1, r.loss)}, {"seconds", r.seconds},
                      {"images_per_second", r.samples / r.seconds}, {"metric", metric_name(lm.metric)},
                      {"metric_value", lm.value ? nlohmann::json(*lm.value) : nlohmann::json(nullptr)}};
  if (!reference.empty()) {
    j["reference"] = reference;
    j["fidelity"] = fidelity_json(r.fidelity);
    j["top1_reference"] = r.reference_score ? nlohmann::json(r.reference_score->top1) : nlohmann::json(nullptr);
  }
  return j;
}

}  // namespace mixq
