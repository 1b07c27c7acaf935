// kernels::attention_f32 (fused scaled-dot-product attention) against its scalar reference on
// every ISA path this CPU has: odd sizes (tiles and 16-float blocks not filled), strided views as
// the graph's Transposes give them, Mul and Div scaling, large scores (the max subtraction), and
// several threads.
#include <cmath>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/isa.h"
#include "test_util.h"

namespace mixq::test {
namespace {

using kernels::AttnArgs;
using kernels::Isa;

struct Case {
  int64_t batch, heads, lq, lk, d, dv;
  bool divide;
  float scale, spread;
};

// Q, K, V stored [batch, tokens, heads, dim] (a Reshape of a projection) and viewed as the
// attention operands through the permutations transformer exports use.
// out_bthd: the output written as [batch, lq, heads, dv] (the Transpose after attention folded in).
void check(const Case& c, Isa isa, int threads, bool out_bthd) {
  std::mt19937 g(7);
  std::normal_distribution<float> nd(0.0f, c.spread);
  std::vector<float> q(c.batch * c.lq * c.heads * c.d), k(c.batch * c.lk * c.heads * c.d),
      v(c.batch * c.lk * c.heads * c.dv);
  for (auto* t : {&q, &k, &v})
    for (auto& x : *t) x = nd(g);
  std::vector<float> got(c.batch * c.heads * c.lq * c.dv, -1.0f), want(got.size());
  AttnArgs a;
  a.batch = c.batch, a.heads = c.heads, a.lq = c.lq, a.lk = c.lk, a.d = c.d, a.dv = c.dv;
  a.q = {q.data(), c.lq * c.heads * c.d, c.d, c.heads * c.d, 1};
  a.k = {k.data(), c.lk * c.heads * c.d, c.d, 1, c.heads * c.d};  // K transposed: [b, h, d, lk]
  a.v = {v.data(), c.lk * c.heads * c.dv, c.dv, c.heads * c.dv, 1};
  a.scale = c.scale;
  a.divide = c.divide;
  if (out_bthd) {
    a.o_sb = c.lq * c.heads * c.dv;
    a.o_sh = c.dv;
    a.o_sr = c.heads * c.dv;
  }
  a.o = want.data();
  kernels::attention_f32_ref(a);
  a.o = got.data();
  kernels::attention_f32(a, threads, isa);
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << i;
    worst = std::max(worst, std::fabs(double(got[i]) - want[i]) / (1.0 + std::fabs(want[i])));
  }
  EXPECT_LE(worst, 2e-6) << kernels::isa_name(isa) << " threads " << threads << " b" << c.batch << " h" << c.heads
                         << " lq" << c.lq << " lk" << c.lk << " d" << c.d << " dv" << c.dv << " bthd " << out_bthd;
}

TEST(Attention, EveryPathMatchesReference) {
  const std::vector<Case> cases = {
      {2, 4, 49, 49, 16, 16, false, 0.25f, 1.0f},   // the ViT fixture's heads
      {1, 3, 5, 7, 3, 5, false, 0.5f, 1.0f},        // nothing fills a tile or a block
      {3, 2, 17, 33, 8, 20, true, 2.828f, 1.0f},    // Div, dv past one block
      {1, 1, 1, 1, 1, 1, false, 1.0f, 1.0f},        // one key: softmax is 1
      {2, 2, 9, 65, 12, 7, false, 1.0f, 30.0f},     // scores in the hundreds: max subtraction
  };
  for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512}) {
    if (!kernels::isa_supported(isa)) continue;
    for (const Case& c : cases) {
      check(c, isa, 1, false);
      check(c, isa, 2, false);
      check(c, isa, 1, true);
    }
  }
}

TEST(Attention, RowsSumToOneThroughTheValues) {
  // With V = 1 everywhere every output is 1 (the softmax rows sum to 1), whatever the scores.
  const int64_t lq = 6, lk = 19, d = 4;
  std::vector<float> q(lq * d), k(d * lk), v(lk, 1.0f), o(lq);
  for (size_t i = 0; i < q.size(); ++i) q[i] = float(i % 5) - 2.0f;
  for (size_t i = 0; i < k.size(); ++i) k[i] = float(i % 7) - 3.0f;
  AttnArgs a;
  a.lq = lq, a.lk = lk, a.d = d, a.dv = 1;
  a.q = {q.data(), 0, 0, d, 1};
  a.k = {k.data(), 0, 0, lk, 1};
  a.v = {v.data(), 0, 0, 1, 1};
  a.o = o.data();
  kernels::attention_f32(a, 1, kernels::default_isa());
  for (float x : o) EXPECT_NEAR(x, 1.0f, 1e-6f);
}

}  // namespace
}  // namespace mixq::test
