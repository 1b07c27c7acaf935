#include "exec/fidelity.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "mixq/error.h"

namespace mixq {

FidelityAccumulator::FidelityAccumulator(std::vector<std::string> output_names)
    : names_(std::move(output_names)), acc_(names_.size()) {}

void FidelityAccumulator::add(const std::vector<at::Tensor>& ref, const std::vector<at::Tensor>& test) {
  MIXQ_CHECK(ref.size() == names_.size() && test.size() == names_.size(), ErrorKind::kInvalidData,
             "fidelity: expected ", names_.size(), " outputs, got ", ref.size(), " reference and ", test.size(),
             " tested");
  int64_t n = 0;
  for (size_t i = 0; i < names_.size(); ++i) {
    const at::Tensor& r0 = ref[i];
    const at::Tensor& t0 = test[i];
    MIXQ_CHECK(r0.sizes() == t0.sizes(), ErrorKind::kInvalidData, "output '", names_[i], "': reference shape ",
               r0.sizes(), " but the tested model gives ", t0.sizes());
    Acc& a = acc_[i];
    const bool is_float = at::isFloatingType(r0.scalar_type());
    at::Tensor r = r0.detach().to(at::kDouble), t = t0.detach().to(at::kDouble);
    if (r.dim() == 0) r = r.reshape({1}), t = t.reshape({1});
    const int64_t rows = r.size(0);
    if (a.shape.empty() && r.dim() >= 1) a.shape = r.sizes().vec(), a.shape.erase(a.shape.begin());
    at::Tensor d = t - r;
    a.sig += r.pow(2).sum().item<double>();
    a.noise += d.pow(2).sum().item<double>();
    if (d.numel()) {
      a.max_abs = std::max(a.max_abs, d.abs().max().item<double>());
      a.max_ref = std::max(a.max_ref, r.abs().max().item<double>());
    }
    at::Tensor rf = r.reshape({rows, -1}), tf = t.reshape({rows, -1});
    at::Tensor num = (rf * tf).sum(1);
    at::Tensor den = rf.norm(2, 1) * tf.norm(2, 1);
    // Two all-zero samples are identical: cosine 1.
    at::Tensor cos = at::where(den > 0, num / den.clamp_min(1e-300), at::where(rf.eq(tf).all(1), 1.0, 0.0));
    a.cos_sum += cos.sum().item<double>();
    if (is_float && r.dim() >= 1 && r.size(-1) >= 2) {
      at::Tensor lr = at::log_softmax(r, -1), lt = at::log_softmax(t, -1);
      at::Tensor kl = (lr.exp() * (lr - lt)).sum(-1);
      a.kl_sum += kl.sum().item<double>();
      a.kl_rows += kl.numel();
      a.has_kl = true;
    }
    if (is_float && (r.dim() == 2 || r.dim() == 3) && r.size(-1) >= 2) {
      a.classes = true;
      a.agree += r.argmax(-1).eq(t.argmax(-1)).sum().item<int64_t>();
      a.rows += r.numel() / r.size(-1);
    }
    n = std::max(n, rows);
  }
  samples_ += n;
}

std::vector<OutputFidelity> FidelityAccumulator::result() const {
  std::vector<OutputFidelity> out;
  for (size_t i = 0; i < names_.size(); ++i) {
    const Acc& a = acc_[i];
    OutputFidelity f;
    f.name = names_[i];
    f.sample_shape = a.shape;
    f.samples = samples_;
    f.sqnr_db = a.noise == 0 ? std::numeric_limits<double>::infinity()
                             : 10.0 * std::log10(std::max(a.sig, 1e-300) / a.noise);
    f.cosine = samples_ ? a.cos_sum / static_cast<double>(samples_) : 0.0;
    f.max_abs_err = a.max_abs;
    f.rel_err = a.max_abs / std::max(a.max_ref, 1e-6);
    if (a.has_kl && a.kl_rows) f.kl = a.kl_sum / static_cast<double>(a.kl_rows);
    if (a.classes && a.rows) f.top1_agree = 100.0 * static_cast<double>(a.agree) / static_cast<double>(a.rows);
    out.push_back(std::move(f));
  }
  return out;
}

Metric parse_metric(const std::string& s) {
  static const std::pair<const char*, Metric> rows[] = {{"auto", Metric::kAuto}, {"top1", Metric::kTop1},
                                                        {"sqnr", Metric::kSqnr}, {"cos", Metric::kCosine},
                                                        {"kl", Metric::kKl},     {"maxabs", Metric::kMaxAbs}};
  for (const auto& [name, m] : rows)
    if (s == name) return m;
  throw Error(ErrorKind::kInvalidArgument, "--metric '" + s + "': expected auto, top1, sqnr, cos, kl or maxabs");
}

const char* metric_name(Metric m) {
  switch (m) {
    case Metric::kAuto: return "auto";
    case Metric::kTop1: return "top1";
    case Metric::kSqnr: return "sqnr";
    case Metric::kCosine: return "cos";
    case Metric::kKl: return "kl";
    case Metric::kMaxAbs: return "maxabs";
  }
  return "?";
}

Metric resolve_metric(Metric m, bool has_top1) {
  if (m != Metric::kAuto) return m;
  return has_top1 ? Metric::kTop1 : Metric::kSqnr;
}

bool higher_is_better(Metric m) { return m == Metric::kTop1 || m == Metric::kSqnr || m == Metric::kCosine; }

std::optional<double> summary_value(Metric m, const std::vector<OutputFidelity>& f) {
  if (f.empty()) return std::nullopt;
  if (m == Metric::kTop1) return f.front().top1_agree;
  double sum = 0;
  int n = 0;
  for (const auto& o : f) {
    switch (m) {
      case Metric::kSqnr: sum += o.sqnr_db, ++n; break;
      case Metric::kCosine: sum += o.cosine, ++n; break;
      case Metric::kKl:
        if (o.kl) sum += *o.kl, ++n;
        break;
      case Metric::kMaxAbs: sum = n ? std::max(sum, o.max_abs_err) : o.max_abs_err, n = 1; break;
      default: break;
    }
  }
  if (!n) return std::nullopt;
  return m == Metric::kMaxAbs ? sum : sum / n;
}

nlohmann::json fidelity_json(const std::vector<OutputFidelity>& f) {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  auto opt = [&](const std::optional<double>& v) { return v ? num(*v) : nlohmann::json(nullptr); };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& o : f)
    out.push_back({{"name", o.name}, {"shape", o.sample_shape}, {"samples", o.samples}, {"sqnr_db", num(o.sqnr_db)},
                   {"cosine", num(o.cosine)}, {"max_abs_err", num(o.max_abs_err)}, {"rel_err", num(o.rel_err)},
                   {"kl", opt(o.kl)}, {"top1_agreement", opt(o.top1_agree)}});
  return out;
}

std::string fidelity_text(const std::vector<OutputFidelity>& f) {
  std::string s;
  char buf[512];
  for (const auto& o : f) {
    std::string shape;
    for (size_t i = 0; i < o.sample_shape.size(); ++i) shape += (i ? "," : "") + std::to_string(o.sample_shape[i]);
    std::snprintf(buf, sizeof buf, "  output '%s' [%s]: SQNR %s dB, cosine %.6f, max |err| %.4g (rel %.3g)",
                  o.name.c_str(), shape.c_str(),
                  std::isfinite(o.sqnr_db) ? std::to_string(std::round(o.sqnr_db * 100) / 100).substr(0, 6).c_str()
                                           : "inf",
                  o.cosine, o.max_abs_err, o.rel_err);
    s += buf;
    if (o.kl) std::snprintf(buf, sizeof buf, ", KL %.4g", *o.kl), s += buf;
    if (o.top1_agree) std::snprintf(buf, sizeof buf, ", top-1 agreement %.2f%%", *o.top1_agree), s += buf;
    s += "\n";
  }
  return s;
}

}  // namespace mixq
