#include "kernels/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/attention_impl.h"

namespace mixq::kernels {

MIXQ_ATTENTION_BODY(base, 4)

int64_t attention_scratch_floats(const AttnArgs& a) {
  const int64_t lkp = attn_detail::pad16(a.lk), dvp = attn_detail::pad16(a.dv);
  return a.d * lkp + a.lk * dvp + attn_detail::kRows * lkp;
}

void attention_f32(const AttnArgs& a, int threads, Isa isa) {
  const int64_t pairs = a.batch * a.heads;
  if (pairs <= 0 || a.lq <= 0 || a.dv <= 0) return;
  auto body = isa == Isa::kAvx512 ? attention_pairs_avx512 : isa == Isa::kAvx2 ? attention_pairs_avx2 : attention_pairs_base;
  const int64_t scratch = attention_scratch_floats(a);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, pairs)));
  if (nt == 1 || omp_in_parallel()) {
    std::vector<float> buf(scratch);
    body(a, 0, pairs, buf.data());
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> buf(scratch);
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t p0 = pairs * t / n, p1 = pairs * (t + 1) / n;
    body(a, p0, p1, buf.data());
  }
}

void attention_f32_ref(const AttnArgs& a) {
  std::vector<double> s(a.lk);
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t h = 0; h < a.heads; ++h)
      for (int64_t i = 0; i < a.lq; ++i) {
        auto at = [&](const AttnView& t, int64_t r, int64_t c) {
          return static_cast<double>(t.p[b * t.sb + h * t.sh + r * t.sr + c * t.sc]);
        };
        double mx = -INFINITY;
        for (int64_t j = 0; j < a.lk; ++j) {
          double acc = 0;
          for (int64_t c = 0; c < a.d; ++c) acc += at(a.q, i, c) * at(a.k, c, j);
          s[j] = a.divide ? acc / a.scale : acc * a.scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < a.lk; ++j) sum += (s[j] = std::exp(s[j] - mx));
        float* o = a.o_sr < 0 ? a.o + ((b * a.heads + h) * a.lq + i) * a.dv
                              : a.o + b * a.o_sb + h * a.o_sh + i * a.o_sr;
        for (int64_t e = 0; e < a.dv; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < a.lk; ++j) acc += s[j] / sum * at(a.v, j, e);
          o[e] = static_cast<float>(acc);
        }
      }
}

}  // namespace mixq::kernels
