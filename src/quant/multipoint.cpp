#include "quant/multipoint.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

#include "mixq/error.h"
#include "quant/multipoint_ref.h"

namespace mixq {

int64_t multipoint_zero_point(const QScheme& s) { return ref::multipoint_grid(s.bits, s.symmetric).zero; }

at::Tensor channel_rows(const at::Tensor& w, int64_t axis) {
  const int64_t a = axis < 0 ? axis + w.dim() : axis;
  return w.to(at::kFloat).movedim(a, 0).reshape({w.size(a), -1}).contiguous();
}

at::Tensor from_channel_rows(const at::Tensor& rows, at::IntArrayRef shape, int64_t axis) {
  const int64_t rank = static_cast<int64_t>(shape.size());
  const int64_t a = axis < 0 ? axis + rank : axis;
  std::vector<int64_t> moved{shape[static_cast<size_t>(a)]};
  for (int64_t d = 0; d < rank; ++d)
    if (d != a) moved.push_back(shape[static_cast<size_t>(d)]);
  return rows.reshape(moved).movedim(0, a).contiguous();
}

PointFit fit_points(const at::Tensor& rows, const QScheme& s, int steps) {
  MIXQ_CHECK(s.bits >= 2 && s.bits <= 8, ErrorKind::kInvalidArgument, "multipoint: extra points take 2..8 bits (got ",
             s.bits, ")");
  const at::Tensor r = rows.to(at::kFloat).contiguous();
  const int64_t C = r.size(0), K = r.size(1);
  const ref::PointGrid g = ref::multipoint_grid(s.bits, s.symmetric);
  PointFit f;
  f.scale = at::empty({C}, at::kFloat);
  f.codes = at::empty({C, K}, at::kFloat);
  f.err = at::empty({C}, at::kDouble);
  const float* src = r.data_ptr<float>();
  float* sc = f.scale.data_ptr<float>();
  float* q = f.codes.data_ptr<float>();
  double* e = f.err.data_ptr<double>();
  at::parallel_for(0, C, 16, [&](int64_t b, int64_t end) {
    for (int64_t c = b; c < end; ++c) sc[c] = ref::fit_point_row(src + c * K, K, g, steps, q + c * K, &e[c]);
  });
  return f;
}

at::Tensor point_rows(const PointFit& fit, const QScheme& s) {
  return (fit.codes - static_cast<float>(multipoint_zero_point(s))) * fit.scale.unsqueeze(1);
}

void add_points(QuantizedWeight& qw, const PointFit& fit, const at::Tensor& take) {
  const std::vector<int64_t> have = extra_points_per_channel(qw);
  const at::Tensor t = take.to(at::kBool).contiguous();
  const bool* tk = t.data_ptr<bool>();
  const int64_t C = fit.codes.size(0);
  const float z = static_cast<float>(multipoint_zero_point(qw.scheme));
  const at::IntArrayRef shape = qw.codes.sizes();
  // Rows of every level, edited in place, written back weight-shaped at the end.
  std::vector<at::Tensor> rows;
  for (auto& L : qw.extra) rows.push_back(channel_rows(L.codes, qw.extra_axis));
  for (int64_t c = 0; c < C; ++c) {
    if (!tk[c]) continue;
    const size_t m = have.empty() ? 0 : static_cast<size_t>(have[static_cast<size_t>(c)]);
    if (m == qw.extra.size()) {
      QuantizedWeight::ExtraLevel L;
      L.scale = at::ones({C}, at::kFloat);
      L.used = at::zeros({C}, at::kBool);
      qw.extra.push_back(L);
      rows.push_back(at::full({C, fit.codes.size(1)}, z, at::kFloat));
    }
    rows[m][c].copy_(fit.codes[c]);
    qw.extra[m].scale[c] = fit.scale[c];
    qw.extra[m].used[c] = true;
  }
  for (size_t m = 0; m < qw.extra.size(); ++m) qw.extra[m].codes = from_channel_rows(rows[m], shape, qw.extra_axis);
}

at::Tensor extra_level_values(const QuantizedWeight& qw, size_t m) {
  const auto& L = qw.extra.at(m);
  const float z = static_cast<float>(multipoint_zero_point(qw.scheme));
  return from_channel_rows((channel_rows(L.codes, qw.extra_axis) - z) * L.scale.unsqueeze(1), qw.codes.sizes(),
                           qw.extra_axis);
}

int64_t extra_point_count(const QuantizedWeight& qw) {
  int64_t n = 0;
  for (const auto& L : qw.extra) n += L.used.to(at::kLong).sum().item<int64_t>();
  return n;
}

std::vector<int64_t> extra_points_per_channel(const QuantizedWeight& qw) {
  if (qw.extra.empty()) return {};
  at::Tensor n = at::zeros({qw.extra[0].used.size(0)}, at::kLong);
  for (const auto& L : qw.extra) n += L.used.to(at::kLong);
  return std::vector<int64_t>(n.data_ptr<int64_t>(), n.data_ptr<int64_t>() + n.numel());
}

void record_extra_points(const QuantizedModel& qm, QuantPlan& plan) {
  for (auto& L : plan.layers) L.extra_points = L.extra_params = 0;
  for (const auto& qw : qm.weights) {
    if (qw.extra.empty()) continue;
    for (auto& L : plan.layers) {
      if (L.name != qw.node) continue;
      const int64_t C = qw.codes.size(qw.extra_axis < 0 ? qw.extra_axis + qw.codes.dim() : qw.extra_axis);
      L.extra_points = extra_point_count(qw);
      L.extra_params = L.extra_points * (qw.codes.numel() / std::max<int64_t>(C, 1));
    }
  }
  update_cost(plan);
}

}  // namespace mixq
