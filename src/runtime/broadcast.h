// numpy broadcasting for the runtime's elementwise ops (ops_elementwise.cpp, ops_select.cpp):
// the output shape, per-operand strides and loops over the broadcast. No libtorch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "runtime/ops.h"

namespace mixq::rt {

// Output shape of a numpy broadcast, or a kRuntime error naming both shapes.
inline std::vector<int64_t> broadcast_shape(const Op* op, const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const size_t r = std::max(a.size(), b.size());
  std::vector<int64_t> out(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    const int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    RT_CHECK(da == db || da == 1 || db == 1, op, "shapes ", shape_str(a), " and ", shape_str(b),
             " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Element strides of `s` seen through a broadcast to rank r (0 on broadcast dims).
inline std::vector<int64_t> bstrides(const std::vector<int64_t>& s, const std::vector<int64_t>& out) {
  const size_t r = out.size();
  std::vector<int64_t> st(r, 0);
  int64_t acc = 1;
  for (size_t k = s.size(); k-- > 0;) {
    const size_t i = k + r - s.size();
    st[i] = s[k] == 1 ? 0 : acc;
    acc *= s[k];
  }
  return st;
}

// Calls f(out_offset, a_offset, b_offset, len, a_step, b_step) once per row of the last dim
// (steps are 0 or 1: broadcast or not).
template <typename F>
void for_rows(const std::vector<int64_t>& out, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb, F f) {
  int64_t n = 1;
  for (int64_t d : out) n *= d;
  if (n == 0) return;
  const size_t r = out.size();
  const int64_t inner = out[r - 1], ia = sa[r - 1], ib = sb[r - 1];
  std::vector<int64_t> idx(r, 0);
  int64_t oa = 0, ob = 0;
  for (int64_t o = 0; o < n; o += inner) {
    f(o, oa, ob, inner, ia, ib);
    for (size_t d = r - 1; d-- > 0;) {
      ++idx[d];
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < out[d]) break;
      oa -= sa[d] * out[d];
      ob -= sb[d] * out[d];
      idx[d] = 0;
    }
  }
}

// Calls f(out_index, a_index, b_index) over the broadcast, element by element.
template <typename F>
void for_broadcast(const std::vector<int64_t>& out, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb,
                   F f) {
  if (out.empty()) {
    f(0, 0, 0);
    return;
  }
  for_rows(out, sa, sb, [&](int64_t o, int64_t oa, int64_t ob, int64_t len, int64_t ia, int64_t ib) {
    for (int64_t j = 0; j < len; ++j) f(o + j, oa + j * ia, ob + j * ib);
  });
}

}  // namespace mixq::rt
