#include "quant/qmodel.h"

#include <ATen/ATen.h>

namespace mixq {

namespace {

// The smallest integer dtype holding [lo, hi], or Undefined.
at::ScalarType dtype_for(int64_t lo, int64_t hi) {
  if (lo >= 0 && hi <= 255) return at::kByte;
  if (lo >= -128 && hi <= 127) return at::kChar;
  if (lo >= -32768 && hi <= 32767) return at::kShort;
  return at::ScalarType::Undefined;
}

void compact(at::Tensor& codes, int64_t lo, int64_t hi) {
  if (!codes.defined() || codes.numel() == 0 || !at::isFloatingType(codes.scalar_type())) return;
  const at::ScalarType t = dtype_for(lo, hi);
  if (t == at::ScalarType::Undefined) return;
  // Only exact integers inside the grid convert: anything else stays as it is for the checks
  // downstream (the QDQ export and the packer name such a code) to report.
  const auto [mn, mx] = at::aminmax(codes);  // (one pass)
  if (mn.item<double>() < double(lo) || mx.item<double>() > double(hi)) return;
  if (!at::equal(codes, codes.round())) return;
  codes = codes.to(t);
}

}  // namespace

void compact_codes(QuantizedWeight& qw) {
  const int64_t lo = qw.embed == EmbedScheme::kNone ? qw.scheme.qmin() : 0;
  const int64_t hi = qw.embed == EmbedScheme::kNone ? qw.scheme.qmax() : (int64_t(1) << qw.scheme.bits) - 1;
  compact(qw.codes, lo, hi);
  for (auto& L : qw.extra) compact(L.codes, qw.scheme.qmin(), qw.scheme.qmax());
}

void compact_codes(QuantizedModel& qm) {
  for (auto& w : qm.weights) compact_codes(w);
}

}  // namespace mixq
