// Quantizer math: the vectorised path against the scalar reference (bit for bit, every scheme x
// granularity x bit-width x rounding on odd shapes), quantizer properties, range estimators
// (weights: min-max / percentile / MSE; activations: histogram percentile / MSE / KL).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cfloat>
#include <cmath>
#include <cstring>

#include "quant/observer.h"
#include "quant/quantizer.h"
#include "quant/reference.h"
#include "test_util.h"

namespace mixq {
namespace {

const std::vector<int> kAllBits = {2, 3, 4, 5, 6, 7, 8, 16};
const std::vector<Rounding> kAllRoundings = {Rounding::kNearest, Rounding::kFloor, Rounding::kCeil,
                                             Rounding::kStochastic};

// Float slack where float32 results are compared with exact arithmetic: x / s and s * q are each
// rounded once, so a code can sit 2^-24 relative away from the exact boundary.
constexpr float kFloatSlack = 4 * FLT_EPSILON;
// Relative slack when comparing Lp errors: the search takes |d|^p in float (2^-24 relative per
// term), the test in double.
constexpr double kSumSlack = 1e-6;

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

std::vector<float> to_vec(const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

QScheme make_scheme(int bits, bool sym, Granularity g, int64_t axis, int64_t gs, Rounding r) {
  QScheme s;
  s.bits = bits;
  s.symmetric = sym;
  s.granularity = g;
  s.axis = axis;
  s.group_size = gs;
  s.rounding = r;
  return s;
}

// Bitwise-equal float arrays (-0 == +0 allowed); reports the first mismatch.
void expect_same(const std::vector<float>& fast, const std::vector<float>& ref, const char* what) {
  ASSERT_EQ(fast.size(), ref.size()) << what;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < fast.size(); ++i)
    if (!(fast[i] == ref[i])) {
      if (bad++ == 0) first = i;
    }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << fast.size() << " differ; first at " << first << ": fast "
                     << fast[first] << " vs ref " << ref[first];
}

// ---------------------------------------------------------------------------------------------
// Reference vs fast, every scheme on odd shapes.

struct LayoutCase {
  std::string name;
  std::vector<int64_t> shape;
  Granularity granularity;
  int64_t axis;
  int64_t group_size;
};

class RefVsFast : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(RefVsFast, EveryBitsSymmetryRounding) {
  const LayoutCase& c = GetParam();
  auto gen = seeded(1234);
  at::Tensor x = at::randn(c.shape, gen) * 3.0 + 0.5;
  at::Tensor noise = at::rand(c.shape, gen);
  const std::vector<float> xv = to_vec(x), uv = to_vec(noise);
  const int64_t n = x.numel();
  for (int bits : kAllBits)
    for (bool sym : {false, true})
      for (Rounding r : kAllRoundings) {
        QScheme s = make_scheme(bits, sym, c.granularity, c.axis, c.group_size, r);
        SCOPED_TRACE(s.str());
        const QLayout L = q_layout(s, c.shape);
        const size_t np = static_cast<size_t>(L.num_params());

        // Min-max parameters: fast (weight_minmax + params_from_range) == reference.
        at::Tensor mn, mx;
        weight_minmax(x, s, mn, mx);
        ASSERT_EQ(mn.sizes().vec(), param_shape(s, c.shape));
        std::vector<float> rmn(np), rmx(np), rs(np), rz(np);
        ref::minmax(xv.data(), c.shape, s, rmn.data(), rmx.data());
        expect_same(to_vec(mn), rmn, "min");
        expect_same(to_vec(mx), rmx, "max");
        ref::params_from_range(rmn.data(), rmx.data(), L.num_params(), s, rs.data(), rz.data());
        QParams p = params_from_range(mn, mx, s);
        expect_same(to_vec(p.scale), rs, "scale");
        expect_same(to_vec(p.zero_point), rz, "zero point");
        QParams pw = weight_params(x, s, RangeOptions{});
        expect_same(to_vec(pw.scale), rs, "weight_params scale");
        expect_same(to_vec(pw.zero_point), rz, "weight_params zero point");

        // Codes, dequantized values and fake-quantized values, with min-max parameters and with
        // a tighter (percentile 80) range whose clamping saturates many codes.
        RangeOptions tight;
        tight.method = RangeMethod::kPercentile;
        tight.percentile = 80;
        for (const QParams& pp : {p, weight_params(x, s, tight)}) {
          std::vector<float> ps = to_vec(pp.scale), pz = to_vec(pp.zero_point);
          std::vector<float> rq(n), rdq(n), rfq(n);
          ref::quantize(xv.data(), c.shape, s, ps.data(), pz.data(), uv.data(), rq.data());
          ref::dequantize(rq.data(), c.shape, s, ps.data(), pz.data(), rdq.data());
          ref::fake_quantize(xv.data(), c.shape, s, ps.data(), pz.data(), uv.data(), rfq.data());
          at::Tensor q = quantize(x, pp, s, noise);
          ASSERT_EQ(q.sizes(), x.sizes());
          expect_same(to_vec(q), rq, "codes");
          expect_same(to_vec(dequantize(q, pp, s)), rdq, "dequantized");
          expect_same(to_vec(fake_quantize(x, pp, s, noise)), rfq, "fake-quantized");
          expect_same(rfq, rdq, "reference fake_quantize == dequantize(quantize)");
          for (int64_t i = 0; i < n; ++i) {
            ASSERT_EQ(rq[i], std::nearbyint(rq[i])) << "code " << i << " is not an integer";
            ASSERT_GE(rq[i], s.qmin());
            ASSERT_LE(rq[i], s.qmax());
          }
        }
      }
}

std::vector<LayoutCase> layout_cases() {
  using G = Granularity;
  return {
      {"t7x13", {7, 13}, G::kPerTensor, 0, 0},
      {"c7x13_axis0", {7, 13}, G::kPerChannel, 0, 0},
      {"c7x13_axis1", {7, 13}, G::kPerChannel, 1, 0},  // MatMul [K, N] weight: channels are columns
      {"c7x13_axis_neg1", {7, 13}, G::kPerChannel, -1, 0},
      {"g7x13_gs1", {7, 13}, G::kPerGroup, 0, 1},      // divides K = 13
      {"g7x13_gs4", {7, 13}, G::kPerGroup, 0, 4},      // 4 + 4 + 4 + 1
      {"g7x13_gs13", {7, 13}, G::kPerGroup, 0, 13},    // one group = per channel
      {"g7x13_gs20", {7, 13}, G::kPerGroup, 0, 20},    // larger than K
      {"g7x13_axis1_gs3", {7, 13}, G::kPerGroup, 1, 3},  // K = 7: 3 + 3 + 1
      {"t5x3x3x3", {5, 3, 3, 3}, G::kPerTensor, 0, 0},
      {"c5x3x3x3", {5, 3, 3, 3}, G::kPerChannel, 0, 0},
      {"c5x3x3x3_axis1", {5, 3, 3, 3}, G::kPerChannel, 1, 0},
      {"g5x3x3x3_gs9", {5, 3, 3, 3}, G::kPerGroup, 0, 9},   // divides K = 27
      {"g5x3x3x3_gs4", {5, 3, 3, 3}, G::kPerGroup, 0, 4},   // 6 x 4 + 3
      {"g5x3x3x3_axis1_gs4", {5, 3, 3, 3}, G::kPerGroup, 1, 4},  // outer 5, inner 9: K = 45
      {"g5x3x3x3_axis3_gs7", {5, 3, 3, 3}, G::kPerGroup, 3, 7},  // inner 1: K = 45
      {"t1x1", {1, 1}, G::kPerTensor, 0, 0},
      {"c1x1", {1, 1}, G::kPerChannel, 0, 0},
      {"g1x1_gs1", {1, 1}, G::kPerGroup, 0, 1},
      {"g1x1_gs2", {1, 1}, G::kPerGroup, 1, 2},
      {"t11", {11}, G::kPerTensor, 0, 0},
      {"c11", {11}, G::kPerChannel, 0, 0},
      {"g11_gs1", {11}, G::kPerGroup, 0, 1},
      {"t_scalar", {}, G::kPerTensor, 0, 0},
      {"g3x257_gs64", {3, 257}, G::kPerGroup, 0, 64},  // prime K, longer rows (vectorised loops)
  };
}

INSTANTIATE_TEST_SUITE_P(Quant, RefVsFast, ::testing::ValuesIn(layout_cases()),
                         [](const ::testing::TestParamInfo<LayoutCase>& i) { return i.param.name; });

// ---------------------------------------------------------------------------------------------
// Layout.

TEST(QuantLayout, ParamShapesAndIndices) {
  QScheme s = make_scheme(4, false, Granularity::kPerGroup, 1, 4, Rounding::kNearest);
  QLayout L = q_layout(s, {5, 3, 3, 3});
  EXPECT_EQ(L.outer, 5);
  EXPECT_EQ(L.channels, 3);
  EXPECT_EQ(L.inner, 9);
  EXPECT_EQ(L.k, 45);
  EXPECT_EQ(L.groups, 12);
  EXPECT_EQ(param_shape(s, {5, 3, 3, 3}), (std::vector<int64_t>{3, 12}));
  // Element [o=2, c=1, y=0, x=1]: flat 2*27 + 1*9 + 1 = 64; k = 2*9 + 1 = 19, group 4.
  EXPECT_EQ(L.param_index(64), 1 * 12 + 4);
  s.granularity = Granularity::kPerChannel;
  EXPECT_EQ(param_shape(s, {5, 3, 3, 3}), (std::vector<int64_t>{1, 3, 1, 1}));
  EXPECT_EQ(q_layout(s, {5, 3, 3, 3}).param_index(64), 1);
  s.granularity = Granularity::kPerTensor;
  EXPECT_TRUE(param_shape(s, {5, 3, 3, 3}).empty());
  EXPECT_EQ(q_layout(s, {}).num_params(), 1);
}

TEST(QuantLayout, ParamsShapeOfPerGroupIsChannelsByGroups) {
  at::Tensor w = at::randn({6, 10}, seeded(3));
  QScheme s = make_scheme(4, true, Granularity::kPerGroup, 1, 4, Rounding::kNearest);  // C = 10, K = 6
  QParams p = weight_params(w, s, RangeOptions{});
  EXPECT_EQ(p.scale.sizes().vec(), (std::vector<int64_t>{10, 2}));
  EXPECT_EQ(p.zero_point.sizes().vec(), (std::vector<int64_t>{10, 2}));
  // Entry (c, g) is the range of W2[c, 4g : 4g + 4] with W2 = W^T.
  at::Tensor w2 = w.t().contiguous();
  float amax = w2[7].narrow(0, 4, 2).abs().max().item<float>();
  EXPECT_EQ(p.scale[7][1].item<float>(), amax / 7.0f);
}

// ---------------------------------------------------------------------------------------------
// Properties of the quantizer.

TEST(QuantProperties, ZeroIsExactAndRoundingRelationsHold) {
  auto gen = seeded(77);
  const std::vector<int64_t> shape = {9, 31};
  at::Tensor x = at::randn(shape, gen) * 2.0 + 0.7;
  at::Tensor noise = at::rand(shape, gen);
  for (int bits : kAllBits)
    for (bool sym : {false, true})
      for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup}) {
        QScheme s = make_scheme(bits, sym, g, 0, 8, Rounding::kNearest);
        SCOPED_TRACE(s.str());
        QParams p = weight_params(x, s, RangeOptions{});
        at::Tensor bs = broadcast_param(p.scale, s, x.sizes()).expand(shape);
        at::Tensor bz = broadcast_param(p.zero_point, s, x.sizes()).expand(shape);
        // 0.0 is exactly representable under every rounding (u < 1 keeps floor(0 + u) = 0).
        for (Rounding r : kAllRoundings) {
          s.rounding = r;
          at::Tensor z = fake_quantize(at::zeros(shape), p, s, noise);
          EXPECT_EQ(z.abs().max().item<float>(), 0.0f) << rounding_name(r);
        }
        s.rounding = Rounding::kNearest;
        at::Tensor qn = quantize(x, p, s);
        s.rounding = Rounding::kFloor;
        at::Tensor qf = quantize(x, p, s);
        at::Tensor ff = dequantize(qf, p, s);
        s.rounding = Rounding::kCeil;
        at::Tensor qc = quantize(x, p, s);
        at::Tensor fc = dequantize(qc, p, s);
        s.rounding = Rounding::kStochastic;
        at::Tensor qs = quantize(x, p, s, noise);
        s.rounding = Rounding::kNearest;
        at::Tensor fn = dequantize(qn, p, s);

        // Inside the representable range [s (qmin - z), s (qmax - z)] (min-max values may sit
        // just outside it, because z is rounded).
        at::Tensor lo = bs * (static_cast<double>(s.qmin()) - bz), hi = bs * (static_cast<double>(s.qmax()) - bz);
        at::Tensor inside = (x >= lo) & (x <= hi);
        ASSERT_GT(inside.sum().item<int64_t>(), x.numel() / 2);
        at::Tensor slack = at::maximum(x.abs(), bs) * kFloatSlack;
        EXPECT_TRUE(((fn - x).abs() <= bs * 0.5 + slack).masked_select(inside).all().item<bool>()) << "nearest";
        EXPECT_TRUE((ff <= x + slack).masked_select(inside).all().item<bool>()) << "floor <= x";
        EXPECT_TRUE((fc >= x - slack).masked_select(inside).all().item<bool>()) << "ceil >= x";
        EXPECT_TRUE((qf <= qn).all().item<bool>() && (qn <= qc).all().item<bool>()) << "floor <= nearest <= ceil";
        at::Tensor gap = qc - qf, sgap = qs - qf;
        EXPECT_TRUE(((gap == 0) | (gap == 1)).all().item<bool>()) << "ceil - floor in {0, 1}";
        EXPECT_TRUE(((sgap == 0) | (sgap == 1)).all().item<bool>()) << "stochastic in {floor, floor + 1}";
      }
}

TEST(QuantProperties, NearestRoundsHalfToEven) {
  QScheme s = make_scheme(8, true, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
  QParams p{at::scalar_tensor(0.5f), at::scalar_tensor(0.0f)};
  at::Tensor x = at::tensor({0.25f, 0.75f, 1.25f, -0.25f, -0.75f, 2.25f, 0.5f});  // x / s = .5, 1.5, 2.5, ...
  std::vector<float> want = {0, 2, 2, 0, -2, 4, 1};
  expect_same(to_vec(quantize(x, p, s)), want, "fast");
  std::vector<float> xv = to_vec(x), rq(xv.size());
  float sc = 0.5f, zp = 0.0f;
  ref::quantize(xv.data(), {7}, s, &sc, &zp, nullptr, rq.data());
  expect_same(rq, want, "reference");
}

TEST(QuantProperties, StochasticRoundingIsUnbiased) {
  QScheme s = make_scheme(4, false, Granularity::kPerTensor, 0, 0, Rounding::kStochastic);
  QParams p{at::scalar_tensor(1.0f), at::scalar_tensor(3.0f)};
  at::Tensor x = at::full({200000}, 0.3f);
  at::Tensor q = quantize(x, p, s, at::rand({200000}, seeded(5)));
  EXPECT_NEAR(q.mean().item<double>() - 3.0, 0.3, 0.01);  // 5 sigma of the mean of Bernoulli(0.3)
}

TEST(QuantProperties, StridesAndDtypesDoNotChangeCodes) {
  at::Tensor x = at::randn({13, 7}, seeded(8));
  QScheme s = make_scheme(5, false, Granularity::kPerGroup, 1, 3, Rounding::kNearest);
  at::Tensor xt = x.t();  // non-contiguous [7, 13]
  QParams p = weight_params(xt, s, RangeOptions{});
  at::Tensor q = quantize(xt, p, s);
  EXPECT_TRUE(q.is_contiguous());
  EXPECT_TRUE(at::equal(q, quantize(xt.contiguous(), p, s)));
  EXPECT_TRUE(at::equal(q, quantize(xt.to(at::kDouble), p, s)));
  QParams pc = weight_params(xt.contiguous(), s, RangeOptions{});
  EXPECT_TRUE(at::equal(p.scale, pc.scale) && at::equal(p.zero_point, pc.zero_point));
}

TEST(QuantProperties, ZeroAndConstantTensorsGiveFiniteParams) {
  for (bool sym : {false, true})
    for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup})
      for (RangeMethod m : {RangeMethod::kMinMax, RangeMethod::kPercentile, RangeMethod::kMse}) {
        QScheme s = make_scheme(4, sym, g, 0, 2, Rounding::kNearest);
        RangeOptions o;
        o.method = m;
        SCOPED_TRACE(s.str() + " " + range_method_name(m));
        at::Tensor zero = at::zeros({3, 5});
        QParams p = weight_params(zero, s, o);
        EXPECT_TRUE(at::isfinite(p.scale).all().item<bool>() && at::isfinite(p.zero_point).all().item<bool>());
        EXPECT_TRUE((p.scale == 1).all().item<bool>());
        EXPECT_TRUE((p.zero_point == 0).all().item<bool>());
        EXPECT_EQ(fake_quantize(zero, p, s).abs().max().item<float>(), 0.0f);
        EXPECT_EQ(roundtrip_mse(zero, s), 0.0);
        at::Tensor three = at::full({3, 5}, 3.0f);  // range widened to [0, 3]
        QParams p3 = weight_params(three, s, o);
        EXPECT_TRUE(at::isfinite(p3.scale).all().item<bool>() && (p3.scale > 0).all().item<bool>());
        if (m == RangeMethod::kMinMax) {  // 3 is the top of the grid, so exact up to one rounding
          EXPECT_NEAR(fake_quantize(three, p3, s).max().item<float>(), 3.0f, 3.0f * kFloatSlack);
        }
      }
}

TEST(QuantProperties, RoundtripMseFallsWithBits) {
  at::Tensor w = at::randn({32, 48}, seeded(11));
  for (bool sym : {false, true}) {
    QScheme s = make_scheme(2, sym, Granularity::kPerChannel, 0, 0, Rounding::kNearest);
    double prev = INFINITY;
    for (int bits : kAllBits) {
      s.bits = bits;
      double e = roundtrip_mse(w, s);
      EXPECT_LT(e, prev) << s.str();
      prev = e;
    }
    EXPECT_LT(prev, 1e-8);  // 16 bits
    s.rounding = Rounding::kStochastic;
    EXPECT_EQ(roundtrip_mse(w, s), roundtrip_mse(w, s));  // seeded: reproducible
  }
}

// ---------------------------------------------------------------------------------------------
// Weight range estimators.

// Per-parameter sum |fq(w) - w|^p (the reference's grouping).
std::vector<double> group_lp(const at::Tensor& w, const QParams& p, const QScheme& s, double lp) {
  std::vector<float> d = to_vec(fake_quantize(w, p, s) - w);
  QLayout L = q_layout(s, w.sizes().vec());
  std::vector<double> e(static_cast<size_t>(L.num_params()), 0.0);
  for (int64_t i = 0; i < L.numel(); ++i) e[L.param_index(i)] += std::pow(std::fabs(double(d[i])), lp);
  return e;
}

TEST(QuantWeightRange, MseSearchNeverWorseThanMinMax) {
  auto gen = seeded(21);
  at::Tensor w = at::randn({6, 3, 3, 5}, gen);
  w.view({-1}).narrow(0, 0, 4).mul_(8.0);  // a few outliers in channel 0
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {false, true})
      for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup})
        for (Rounding r : {Rounding::kNearest, Rounding::kFloor}) {
          QScheme s = make_scheme(bits, sym, g, 0, 10, r);  // K = 45: 4 x 10 + 5
          SCOPED_TRACE(s.str());
          RangeOptions mse;
          mse.method = RangeMethod::kMse;
          std::vector<double> e0 = group_lp(w, weight_params(w, s, RangeOptions{}), s, mse.lp);
          std::vector<double> e1 = group_lp(w, weight_params(w, s, mse), s, mse.lp);
          double t0 = 0, t1 = 0;
          for (size_t j = 0; j < e0.size(); ++j) {
            EXPECT_LE(e1[j], e0[j] * (1 + kSumSlack)) << "param " << j;
            t0 += e0[j], t1 += e1[j];
          }
          if (bits <= 4 && r == Rounding::kNearest) {
            EXPECT_LT(t1, t0);  // clipping pays at low bits
          }
        }
}

TEST(QuantWeightRange, MseClipsOutliersAtLowBits) {
  at::Tensor w = at::randn({4096}, seeded(22));
  w[0] = 6.0f;  // outliers at ~6 sigma; the grid can shrink to 0.21 x 6
  w[1] = -6.0f;
  QScheme s = make_scheme(4, true, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
  RangeOptions mse;
  mse.method = RangeMethod::kMse;
  float amax = weight_params(w, s, mse).scale.item<float>() * s.qmax();
  EXPECT_LT(amax, 0.8f * 6.0f);
  EXPECT_GT(amax, 1.5f);
}

TEST(QuantWeightRange, PercentileInsideMinMaxAndHundredIsMinMax) {
  at::Tensor w = at::randn({5, 3, 3, 3}, seeded(23));
  for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup}) {
    QScheme s = make_scheme(8, false, g, 0, 4, Rounding::kNearest);
    SCOPED_TRACE(s.str());
    RangeOptions pc;
    pc.method = RangeMethod::kPercentile;
    pc.percentile = 100;
    QParams p100 = weight_params(w, s, pc), pmm = weight_params(w, s, RangeOptions{});
    EXPECT_TRUE(at::equal(p100.scale, pmm.scale) && at::equal(p100.zero_point, pmm.zero_point));
    pc.percentile = 90;
    QParams p90 = weight_params(w, s, pc);
    EXPECT_TRUE((p90.scale <= pmm.scale).all().item<bool>());
  }
}

// ---------------------------------------------------------------------------------------------
// Activation observer.

// N(mean, 1) in `batches` batches, plus `outliers` values at +/- `outlier` (relu: max(., 0)).
ActivationObserver observe(double mean, int64_t outliers, float outlier, bool relu, int bins = 2048) {
  auto gen = seeded(31);
  std::vector<at::Tensor> batches;
  for (int b = 0; b < 10; ++b) batches.push_back(at::randn({20000}, gen) + mean);
  at::Tensor out = at::full({outliers}, outlier);
  out.narrow(0, 0, outliers / 2).neg_();
  batches.push_back(out);
  if (relu)
    for (auto& b : batches) b = b.clamp_min(0);
  ActivationObserver obs(bins);
  for (const auto& b : batches) obs.observe_range(b);
  for (const auto& b : batches) obs.observe_histogram(b);
  return obs;
}

RangeOptions method(RangeMethod m, double percentile = 99.99) {
  RangeOptions o;
  o.method = m;
  o.percentile = percentile;
  return o;
}

TEST(QuantObserver, GaussianWithOutliersIsClipped) {
  ActivationObserver obs = observe(0.0, 20, 12.0f, false);
  EXPECT_EQ(obs.count(), 200020);
  EXPECT_EQ(obs.histogram_count(), 200020);
  EXPECT_EQ(obs.min(), -12.0f);
  EXPECT_EQ(obs.max(), 12.0f);
  double total = 0;
  for (double h : obs.histogram().counts) total += h;
  EXPECT_EQ(total, 200020.0);
  for (bool sym : {false, true}) {
    QScheme s8 = make_scheme(8, sym, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
    QScheme s4 = s8;
    s4.bits = 4;
    SCOPED_TRACE(sym ? "sym" : "asym");
    auto mm = obs.range(s8, method(RangeMethod::kMinMax));
    EXPECT_EQ(mm.first, -12.0f);
    EXPECT_EQ(mm.second, 12.0f);
    auto pc = obs.range(s8, method(RangeMethod::kPercentile, 99.9));  // N(0,1): +/- 3.29
    EXPECT_NEAR(pc.first, -3.29, 0.25);
    EXPECT_NEAR(pc.second, 3.29, 0.25);
    auto mse = obs.range(s4, method(RangeMethod::kMse));
    auto kl = obs.range(s8, method(RangeMethod::kKl));
    for (auto [lo, hi] : {pc, mse, kl}) {
      EXPECT_GE(lo, obs.min());
      EXPECT_LE(hi, obs.max());
      EXPECT_LT(lo, 0.0f);
    }
    EXPECT_LT(mse.second, 0.8f * 12.0f);
    EXPECT_GT(mse.second, 1.5f);
    EXPECT_LT(kl.second, 12.0f);
    EXPECT_GT(kl.second, 2.5f);
    QParams p = obs.params(s8, method(RangeMethod::kKl));
    EXPECT_EQ(p.scale.dim(), 0);
    EXPECT_TRUE(std::isfinite(p.scale.item<float>()) && p.scale.item<float>() > 0);
  }
}

TEST(QuantObserver, ReluDataKeepsZeroAtTheBottom) {
  ActivationObserver obs = observe(0.0, 20, 20.0f, true);
  EXPECT_EQ(obs.min(), 0.0f);
  QScheme s = make_scheme(8, false, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
  for (RangeMethod m : {RangeMethod::kMinMax, RangeMethod::kPercentile, RangeMethod::kMse, RangeMethod::kKl}) {
    SCOPED_TRACE(range_method_name(m));
    auto [lo, hi] = obs.range(s, method(m));
    if (m == RangeMethod::kPercentile) {  // a quantile inside the first bin, which holds the zeros
      EXPECT_TRUE(lo >= 0.0f && lo < 20.0f / 2048) << lo;
    } else {
      EXPECT_EQ(lo, 0.0f);
    }
    EXPECT_LE(hi, 20.0f);
    if (m != RangeMethod::kMinMax) {
      EXPECT_LT(hi, 20.0f);
    }
    QParams p = obs.params(s, method(m));
    EXPECT_EQ(p.zero_point.item<float>(), 0.0f);
  }
}

TEST(QuantObserver, ReluKlIsNotPulledDownByTheZeroSpike) {
  // Half the mass is exactly 0; without leaving it out, KL picked ~2.2 sigma at 8 bits here.
  ActivationObserver obs = observe(0.0, 20, 12.0f, true);
  EXPECT_GT(obs.histogram().zeros, 100000.0);
  EXPECT_EQ(obs.histogram().zero_bin, 0);
  for (bool sym : {false, true}) {
    QScheme s = make_scheme(8, sym, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
    auto [lo, hi] = obs.range(s, method(RangeMethod::kKl));
    EXPECT_GT(hi, 3.0f) << (sym ? "sym" : "asym");
    EXPECT_LT(hi, 12.0f) << (sym ? "sym" : "asym");
  }
}

TEST(QuantObserver, HistogramMseAgreesWithTheExactWeightSearch) {
  auto gen = seeded(41);
  at::Tensor x = at::randn({100000}, gen);
  x.narrow(0, 0, 20).mul_(5.0);
  QScheme s = make_scheme(4, true, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
  ActivationObserver obs;
  obs.observe_range(x);
  obs.observe_histogram(x);
  float exact = weight_params(x, s, method(RangeMethod::kMse)).scale.item<float>() * s.qmax();
  auto [lo, hi] = obs.range(s, method(RangeMethod::kMse));
  float amax = std::max(-obs.min(), obs.max());
  EXPECT_NEAR(std::max(-lo, hi), exact, 0.03 * amax);  // within 3 grid steps
}

TEST(QuantObserver, ShiftedDataShrinksBothEnds) {
  ActivationObserver obs = observe(1.0, 0, 0.0f, false);
  QScheme s = make_scheme(4, false, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
  for (RangeMethod m : {RangeMethod::kPercentile, RangeMethod::kMse, RangeMethod::kKl}) {
    SCOPED_TRACE(range_method_name(m));
    auto [lo, hi] = obs.range(s, method(m, 99.9));
    EXPECT_GE(lo, obs.min());
    EXPECT_LE(hi, obs.max());
    EXPECT_LT(lo, 0.0f);
    EXPECT_GT(hi, 2.0f);
    EXPECT_LT(hi - lo, obs.max() - obs.min());
  }
}

TEST(QuantObserver, SixteenBitKlFallsBackToMinMax) {
  ActivationObserver obs = observe(0.0, 20, 12.0f, false);
  QScheme s = make_scheme(16, true, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
  auto [lo, hi] = obs.range(s, method(RangeMethod::kKl));
  EXPECT_EQ(lo, obs.min());
  EXPECT_EQ(hi, obs.max());
}

TEST(QuantObserver, ZeroActivationsGiveScaleOne) {
  ActivationObserver obs;
  obs.observe_range(at::zeros({4, 4}));
  obs.observe_histogram(at::zeros({4, 4}));
  for (bool sym : {false, true})
    for (RangeMethod m : {RangeMethod::kMinMax, RangeMethod::kPercentile, RangeMethod::kMse, RangeMethod::kKl}) {
      QScheme s = make_scheme(8, sym, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
      QParams p = obs.params(s, method(m));
      EXPECT_EQ(p.scale.item<float>(), 1.0f) << range_method_name(m);
      EXPECT_EQ(p.zero_point.item<float>(), 0.0f) << range_method_name(m);
    }
}

TEST(QuantObserver, HistogramRangeOnAKnownHistogram) {
  // Uniform mass on [0, 10) with 10 bins: the 80% central range is [1, 9].
  Histogram hist;
  hist.counts.assign(10, 5.0);
  hist.min = 0.0f;
  hist.max = 10.0f;
  QScheme s = make_scheme(8, false, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
  auto [lo, hi] = histogram_range(hist, s, method(RangeMethod::kPercentile, 80));
  EXPECT_NEAR(lo, 1.0f, 1e-5);
  EXPECT_NEAR(hi, 9.0f, 1e-5);
}

TEST(QuantObserver, MisuseIsReported) {
  QScheme s = make_scheme(8, false, Granularity::kPerTensor, 0, 0, Rounding::kNearest);
  ActivationObserver empty;
  EXPECT_THROW(empty.params(s, RangeOptions{}), Error);
  ActivationObserver obs;
  obs.observe_range(at::randn({10}, seeded(1)));
  EXPECT_THROW(obs.params(s, method(RangeMethod::kKl)), Error);  // no histogram pass
  EXPECT_NO_THROW(obs.params(s, RangeOptions{}));
  QScheme pc = s;
  pc.granularity = Granularity::kPerChannel;
  EXPECT_THROW(obs.params(pc, RangeOptions{}), Error);
  at::Tensor bad = at::zeros({3});
  bad[1] = NAN;
  try {
    ActivationObserver o;
    o.observe_range(bad);
    ADD_FAILURE() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidData);
  }
}

// ---------------------------------------------------------------------------------------------
// Names and checks.

TEST(QuantNames, RoundTripAndRejectUnknown) {
  for (Granularity g : {Granularity::kPerTensor, Granularity::kPerChannel, Granularity::kPerGroup})
    EXPECT_EQ(parse_granularity(granularity_name(g)), g);
  for (Rounding r : kAllRoundings) EXPECT_EQ(parse_rounding(rounding_name(r)), r);
  for (RangeMethod m : {RangeMethod::kMinMax, RangeMethod::kPercentile, RangeMethod::kMse, RangeMethod::kKl})
    EXPECT_EQ(parse_range_method(range_method_name(m)), m);
  try {
    parse_rounding("round");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("stochastic"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_granularity("per_row"), Error);
  EXPECT_THROW(parse_range_method("entropy"), Error);
  QScheme s = make_scheme(4, false, Granularity::kPerGroup, 0, 32, Rounding::kNearest);
  EXPECT_EQ(s.str(), "4-bit asym per_group(axis 0, 32) nearest");
}

TEST(QuantChecks, BadSchemesAndArgumentsAreRefused) {
  at::Tensor w = at::randn({4, 6}, seeded(2));
  auto refused = [&](QScheme s, const char* why) {
    EXPECT_THROW(weight_params(w, s, RangeOptions{}), Error) << why;
  };
  refused(make_scheme(1, false, Granularity::kPerTensor, 0, 0, Rounding::kNearest), "1 bit");
  refused(make_scheme(17, false, Granularity::kPerTensor, 0, 0, Rounding::kNearest), "17 bits");
  refused(make_scheme(8, false, Granularity::kPerChannel, 2, 0, Rounding::kNearest), "axis 2 of a 2-D tensor");
  refused(make_scheme(8, false, Granularity::kPerGroup, 0, 0, Rounding::kNearest), "group size 0");
  QScheme st = make_scheme(8, false, Granularity::kPerTensor, 0, 0, Rounding::kStochastic);
  QParams p = weight_params(w, st, RangeOptions{});
  EXPECT_THROW(quantize(w, p, st), Error) << "stochastic without noise";
  EXPECT_THROW(quantize(w, p, st, at::rand({3})), Error) << "noise of the wrong shape";
  QScheme pc = make_scheme(8, false, Granularity::kPerChannel, 0, 0, Rounding::kNearest);
  EXPECT_THROW(quantize(w, p, pc), Error) << "per-tensor params for a per-channel scheme";
  EXPECT_THROW(weight_params(w, pc, method(RangeMethod::kKl)), Error) << "KL for weights";
  EXPECT_THROW(weight_params(at::zeros({0, 3}), pc, RangeOptions{}), Error) << "empty weight";
  EXPECT_THROW(weight_params(w.to(at::kInt), pc, RangeOptions{}), Error) << "integer weight";
  at::Tensor inf = w.clone();
  inf[0][0] = INFINITY;
  EXPECT_THROW(weight_params(inf, pc, RangeOptions{}), Error) << "infinite weight";
  RangeOptions grid;
  grid.method = RangeMethod::kMse;
  grid.grid = 0;
  EXPECT_THROW(weight_params(w, pc, grid), Error) << "empty grid";
}

}  // namespace
}  // namespace mixq
