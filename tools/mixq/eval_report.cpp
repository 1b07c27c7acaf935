#include "eval_report.h"

#include <cstdio>
#include <filesystem>

#include "common.h"
#include "data/npy.h"
#include "exec/fold_constants.h"

namespace mixq::cli {

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

void print_eval(const EvalResult& r, const std::string& model, const Dataset& data, const std::string& reference,
                const std::string& suffix) {
  if (r.has_top1)
    std::printf("%s on %s: top-1 %.2f%% (%lld/%lld), loss %.4f, %.2f s (%.0f samples/s)%s\n", model.c_str(),
                data.describe().c_str(), r.top1, (long long)r.correct, (long long)r.samples, r.loss, r.seconds,
                r.samples / r.seconds, suffix.c_str());
  else
    std::printf("%s on %s: %lld samples, %.2f s (%.0f samples/s)%s%s\n", model.c_str(), data.describe().c_str(),
                (long long)r.samples, r.seconds, r.samples / r.seconds, suffix.c_str(),
                data.has_labels() ? " (no top-1: the first output is not [batch, classes] scores)" : "");
  if (r.reference_score) std::printf("reference %s: top-1 %.2f%%\n", reference.c_str(), r.reference_score->top1);
  if (!r.fidelity.empty()) std::printf("fidelity to %s:\n%s", reference.c_str(), fidelity_text(r.fidelity).c_str());
}

}  // namespace mixq::cli
