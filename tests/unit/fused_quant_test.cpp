// The fused reconstruction ops (quant/methods/fused_quant.h, kernels/recon.h): every ISA path
// gives the reference's bits; the autograd functions give the composite expressions' values and
// gradients (soft_quant.h), on channels-last and mismatched strides too; the channels-last
// cache reads back the rows it was given; and --recon-precision bf16 changes only the loops.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include <cmath>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "exec/conv_precision.h"
#include "exec/executor.h"
#include "onnx/import.h"
#include "kernels/recon.h"
#include "quant/methods/fused_adam.h"
#include "quant/methods/fused_quant.h"
#include "quant/methods/soft_quant.h"
#include "quant/methods/tensor_store.h"
#include "quant/quantizer.h"
#include "test_util.h"

namespace mixq::test {
namespace {

using kernels::Isa;

std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(FusedKernels, EveryPathMatchesReferenceBitForBit) {
  std::mt19937 rng(7);
  for (int64_t n : {1, 15, 16, 17, 100, 4099}) {
    auto x = randn(n, rng, 3.0f), g = randn(n, rng), b = randn(n, rng), w = randn(n, rng);
    for (auto& v : w) v = v * v;
    // Values exactly half-way between codes and on the grid's ends.
    for (int64_t i = 0; i < n; i += 7) x[i] = 0.25f * static_cast<float>(i % 13) - 1.5f;
    const kernels::FqParams p{0.25f, 3.0f, 0.0f, 15.0f};
    std::vector<float> y_ref(n), gx_ref(n), ga_ref(n);
    kernels::fq_forward(x.data(), n, p, y_ref.data(), Isa::kRef);
    const double gs_ref = kernels::fq_backward(x.data(), g.data(), n, p, gx_ref.data(), Isa::kRef);
    const double e_ref = kernels::sq_err(x.data(), b.data(), w.data(), n, Isa::kRef);
    kernels::sq_err_grad(x.data(), b.data(), w.data(), n, 0.5f, ga_ref.data(), Isa::kRef);
    // Soft rounding: sigmoid values in (0, 1), including h clipped at both ends.
    std::vector<float> sg(n), fl(n), sc(n), zp(n), wr(n), ar(n), ab(n), gv_ref(n);
    std::uniform_real_distribution<float> U(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) {
      sg[i] = U(rng);
      fl[i] = std::floor(x[i] * 4.0f);
      sc[i] = 0.25f;
      zp[i] = 3.0f;
    }
    const kernels::SoftRoundParams sp{fl.data(), sc.data(), zp.data(), 0.0f, 15.0f, 1.2f, -0.1f};
    kernels::soft_round_forward(sg.data(), n, sp, wr.data(), ar.data(), Isa::kRef);
    for (int64_t i = 0; i < n; ++i) ab[i] = std::pow(ar[i], 3.0f);
    kernels::soft_round_backward(sg.data(), g.data(), ar.data(), ab.data(), n, sp, 0.7f, gv_ref.data(), Isa::kRef);
    const kernels::AdamStep as_{0.9f, 0.999f, 0.1f, 0.001f, 0.3f, 1e-8f, -0.01f};
    std::vector<float> p_ref = x, m_ref = b, v_ref = w;
    kernels::adam_step(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), n, as_, Isa::kRef);
    for (Isa isa : isas()) {
      std::vector<float> y(n), gx(n), ga(n), ws(n), as(n), gv(n);
      std::vector<float> pp = x, mm = b, vv = w;
      kernels::adam_step(pp.data(), g.data(), mm.data(), vv.data(), n, as_, isa);
      EXPECT_TRUE(same_bits(pp, p_ref) && same_bits(mm, m_ref) && same_bits(vv, v_ref)) << kernels::isa_name(isa);
      kernels::fq_forward(x.data(), n, p, y.data(), isa);
      EXPECT_TRUE(same_bits(y, y_ref)) << kernels::isa_name(isa) << " n=" << n;
      EXPECT_EQ(kernels::fq_backward(x.data(), g.data(), n, p, gx.data(), isa), gs_ref) << kernels::isa_name(isa);
      EXPECT_EQ(kernels::fq_backward(x.data(), g.data(), n, p, nullptr, isa), gs_ref) << kernels::isa_name(isa);
      EXPECT_TRUE(same_bits(gx, gx_ref)) << kernels::isa_name(isa);
      EXPECT_EQ(kernels::sq_err(x.data(), b.data(), w.data(), n, isa), e_ref) << kernels::isa_name(isa);
      kernels::sq_err_grad(x.data(), b.data(), w.data(), n, 0.5f, ga.data(), isa);
      EXPECT_TRUE(same_bits(ga, ga_ref)) << kernels::isa_name(isa);
      kernels::soft_round_forward(sg.data(), n, sp, ws.data(), as.data(), isa);
      EXPECT_TRUE(same_bits(ws, wr) && same_bits(as, ar)) << kernels::isa_name(isa);
      kernels::soft_round_backward(sg.data(), g.data(), ar.data(), ab.data(), n, sp, 0.7f, gv.data(), isa);
      EXPECT_TRUE(same_bits(gv, gv_ref)) << kernels::isa_name(isa);
    }
  }
}

// Values and gradients of a fused op against its composite reference for one upstream gradient.
void expect_close(const at::Tensor& a, const at::Tensor& b, double rtol, const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = 1.0 + b.abs().max().item<double>();
  EXPECT_LE((a - b).abs().max().item<double>(), rtol * scale) << what;
}

TEST(FusedQuant, FakeQuantMatchesTheCompositeOnAnyLayout) {
  at::manual_seed(11);
  for (bool cl : {false, true}) {
    at::Tensor base = at::randn({8, 5, 6, 7}) * 2;
    if (cl) base = base.contiguous(at::MemoryFormat::ChannelsLast);
    for (double z : {0.0, 7.0}) {
      at::Tensor x1 = base.clone().set_requires_grad(true), x2 = base.clone().set_requires_grad(true);
      at::Tensor s1 = at::full({}, 0.3).set_requires_grad(true), s2 = at::full({}, 0.3).set_requires_grad(true);
      at::Tensor zp = at::full({}, z);
      at::Tensor y1 = fake_quant_fused(x1, s1, zp, 0, 15), y2 = fake_quant_ste(x2, s2, zp, 0, 15);
      EXPECT_TRUE(at::equal(y1, y2)) << "forward, cl " << cl;  // same codes, same arithmetic
      EXPECT_EQ(y1.strides(), x1.strides());
      at::Tensor g = at::randn(y1.sizes());  // NCHW gradient even for a channels-last x
      y1.backward(g);
      y2.backward(g);
      expect_close(x1.grad(), x2.grad(), 1e-6, "grad x");
      expect_close(s1.grad(), s2.grad(), 1e-5, "grad step");
    }
  }
  // A learned zero point takes the composite path (same result, gradient for the zero point).
  at::Tensor x = at::randn({4, 9});
  at::Tensor zp = at::full({}, 2.0).set_requires_grad(true);
  at::Tensor y = fake_quant_fused(x, at::full({}, 0.5), zp, 0, 7);
  y.sum().backward();
  EXPECT_TRUE(zp.grad().defined());
}

TEST(FusedQuant, ReconstructionLossMatchesTheComposite) {
  at::manual_seed(12);
  for (bool with_w : {false, true})
    for (bool cl : {false, true}) {
      at::Tensor o = at::randn({6, 4, 5, 5});
      if (cl) o = o.contiguous(at::MemoryFormat::ChannelsLast);
      at::Tensor t = at::randn({6, 4, 5, 5}), w = with_w ? at::rand({6, 4, 5, 5}) : at::Tensor();
      at::Tensor o1 = o.clone().set_requires_grad(true), o2 = o.clone().set_requires_grad(true);
      at::Tensor l1 = reconstruction_loss_fused(o1, t, w), l2 = reconstruction_loss(o2, t, w);
      expect_close(l1, l2, 1e-6, "loss");
      (l1 * 3).backward();
      (l2 * 3).backward();
      expect_close(o1.grad(), o2.grad(), 1e-6, "grad");
    }
  at::Tensor o = at::randn({9, 10}).set_requires_grad(true), t = at::randn({9, 10});  // 2-D: sum over dim 1
  expect_close(reconstruction_loss_fused(o, t), reconstruction_loss(o, t), 1e-6, "2-D loss");
}

TEST(FusedQuant, SoftRoundingMatchesTheComposite) {
  at::manual_seed(13);
  QScheme s;
  s.bits = 3;
  s.granularity = Granularity::kPerChannel;
  at::Tensor w = at::randn({6, 3, 3, 3});
  QParams p = weight_params(w, s, {});
  for (double beta : {0.0, 2.0, 11.5}) {
    SoftRounding a(w, p, s), b(w, p, s);
    {
      at::NoGradGuard ng;  // move V off its initial values, some of h clipped to 0 or 1
      at::Tensor d = at::randn(a.v().sizes()) * 3;
      a.v().add_(d);
      b.v().add_(d);
    }
    auto [wf, rf] = a.soft_weight_and_regularizer(beta);
    at::Tensor wc = b.soft_weight(), rc = beta > 0 ? b.regularizer(beta) : at::Tensor();
    expect_close(wf, wc, 1e-6, "soft weight");
    EXPECT_EQ(rf.defined(), beta > 0);
    at::Tensor g = at::randn(wf.sizes());
    at::Tensor lf = (wf * g).sum(), lc = (wc * g).sum();
    if (rf.defined()) {
      expect_close(rf, rc, 1e-5, "regulariser");
      lf = lf + 0.3 * rf;
      lc = lc + 0.3 * rc;
    }
    lf.backward();
    lc.backward();
    expect_close(a.v().grad(), b.v().grad(), 1e-5, "grad V, beta " + std::to_string(beta));
  }
}

TEST(FusedKernels, SoftRoundDropsTinyRegulariserBases) {
  // h = 1.2 sg - 0.1, a = |2h - 1|: 0, 0.048, 0.24, 0.96.
  std::vector<float> sg = {0.5f, 0.52f, 0.6f, 0.9f}, fl(4, 0.0f), sc(4, 1.0f), zp(4, 0.0f), w(4), a(4);
  kernels::SoftRoundParams p{fl.data(), sc.data(), zp.data(), 0.0f, 15.0f, 1.2f, -0.1f};
  p.a_min = 0.1f;
  kernels::soft_round_forward(sg.data(), 4, p, w.data(), a.data(), Isa::kRef);
  EXPECT_EQ(a[0], 0.0f);
  EXPECT_EQ(a[1], 0.0f);
  EXPECT_NEAR(a[2], 0.24f, 1e-6);
  EXPECT_NEAR(a[3], 0.96f, 1e-6);
}

// The executor's global average pool keeps a channels-last input's layout in its gradient (and
// the gradient equals libtorch's mean backward).
TEST(FusedQuant, GlobalAveragePoolGradientKeepsChannelsLast) {
  at::manual_seed(3);
  Graph g = load_onnx(test::fixture("fmnist-resnet"));
  Executor ex(g);
  ex.set_grad_enabled(true);
  std::string pool_in, pool_out;
  for (const auto& n : g.nodes)
    if (n.op_type == "GlobalAveragePool") {
      pool_in = n.inputs[0];
      pool_out = n.outputs[0];
    }
  ASSERT_FALSE(pool_in.empty());
  at::Tensor x = at::randn({5, 64, 7, 7}).contiguous(at::MemoryFormat::ChannelsLast).set_requires_grad(true);
  at::Tensor y = ex.run({{pool_in, x}}, {pool_out}).at(pool_out);
  at::Tensor w = at::randn(y.sizes());
  (y * w).sum().backward();
  EXPECT_TRUE(x.grad().is_contiguous(at::MemoryFormat::ChannelsLast));
  at::Tensor x2 = x.detach().clone().set_requires_grad(true);
  (x2.mean({2, 3}, true) * w).sum().backward();
  expect_close(x.grad(), x2.grad(), 1e-6, "mean gradient");
}

TEST(FusedAdam, FollowsTorchAdam) {
  at::manual_seed(8);
  at::Tensor a0 = at::randn({300}), b0 = at::randn({});
  at::Tensor a1 = a0.clone().set_requires_grad(true), b1 = b0.clone().set_requires_grad(true);
  at::Tensor a2 = a0.clone().set_requires_grad(true), b2 = b0.clone().set_requires_grad(true);
  FusedAdam f({a1, b1}, 1e-2);
  torch::optim::Adam t(std::vector<at::Tensor>{a2, b2}, torch::optim::AdamOptions(1e-2));
  const at::Tensor target = at::randn({300});
  for (int it = 0; it < 40; ++it) {
    const double lr = 1e-2 * (1.0 + std::cos(3.14159 * it / 40)) / 2;  // a schedule, as the act loop uses
    f.set_lr(lr);
    for (auto& g : t.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    for (int k = 0; k < 2; ++k) {
      at::Tensor a = k ? a2 : a1, b = k ? b2 : b1;
      at::Tensor loss = ((a - target).pow(2) * (1 + b * b)).sum() + b * 0.5;
      if (k) {
        t.zero_grad();
        loss.backward();
        t.step();
      } else {
        f.zero_grad();
        loss.backward();
        f.step();
      }
    }
  }
  expect_close(a1.detach(), a2.detach(), 1e-5, "parameters");
  expect_close(b1.detach(), b2.detach(), 1e-5, "scalar parameter");
  EXPECT_GT((a1 - a0).abs().max().item<double>(), 0.1);  // it moved
}

TEST(TensorStore, ImagesAreCachedChannelsLastAndReadBackUnchanged) {
  at::manual_seed(2);
  at::Tensor data = at::randn({21, 3, 4, 5});
  CacheBudget mem, tiny;
  tiny.limit_bytes = 100;
  TensorStore a(&mem), b(&tiny);
  for (int64_t i = 0; i < 21; i += 8) {
    a.append(data.slice(0, i, std::min<int64_t>(21, i + 8)));
    b.append(data.slice(0, i, std::min<int64_t>(21, i + 8)).contiguous(at::MemoryFormat::ChannelsLast));
  }
  a.finish();
  b.finish();
  EXPECT_TRUE(b.spilled());
  at::Tensor idx = at::tensor({20, 0, 7, 7, 13}, at::kLong);
  for (TensorStore* st : {&a, &b}) {
    at::Tensor g = st->gather(idx);
    EXPECT_TRUE(g.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(at::equal(g, data.index_select(0, idx)));
    EXPECT_TRUE(at::equal(st->slice(3, 9), data.slice(0, 3, 9)));
  }
}

TEST(ConvPrecision, Bf16ScopeRoundsConvolutionsOnlyInsideIt) {
  at::manual_seed(5);
  Executor ex(load_onnx(test::fixture("fmnist-resnet")));
  at::Tensor x = at::rand({4, 1, 28, 28});
  const at::Tensor y = ex.run({x}).at(0);
  at::Tensor yb;
  EXPECT_EQ(conv_precision(), ConvPrecision::kFloat32);
  {
    ConvPrecisionScope outer(ConvPrecision::kBFloat16);
    EXPECT_EQ(conv_precision(), ConvPrecision::kBFloat16);
    yb = ex.run({x}).at(0);
    {
      ConvPrecisionScope inner(ConvPrecision::kFloat32);
      EXPECT_TRUE(at::equal(ex.run({x}).at(0), y));
    }
    EXPECT_EQ(conv_precision(), ConvPrecision::kBFloat16);
  }
  EXPECT_EQ(conv_precision(), ConvPrecision::kFloat32);
  EXPECT_TRUE(at::equal(ex.run({x}).at(0), y));
  // bf16 rounding (8 significant bits) changes the logits a little, never much.
  EXPECT_EQ(yb.scalar_type(), at::kFloat);
  EXPECT_FALSE(at::equal(yb, y));
  EXPECT_LT((yb - y).abs().max().item<double>(), 0.05 * (1 + y.abs().max().item<double>()));
}

// The CLI: bf16 runs on a CPU with native bf16 (the report says so and the result is within a
// bf16 rounding of what fp32 learns), and is refused with a clear message elsewhere.
TEST(ConvPrecision, CliBf16RunsWhereSupportedAndIsRefusedElsewhere) {
  test::TempDir tmp;
  std::vector<std::string> args = {"quantize", test::fixture("fmnist-resnet"), "--calib", "fmnist:train:64",
                                   "--method", "brecq", "--wbits", "4", "--abits", "8", "--iters", "20",
                                   "--recon-precision", "bf16", "-o", tmp.file("q.onnx"), "--report",
                                   tmp.file("r.json"), "-q"};
  auto r = test::run_cli(args);
  if (!cpu_has_native_bf16()) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("--recon-precision bf16 needs a CPU"), std::string::npos) << r.err;
    return;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rep = nlohmann::json::parse(test::read_file(tmp.file("r.json")));
  EXPECT_EQ(rep["method_report"]["precision"], "bf16");
}

// The default (auto) resolves to bf16 exactly where the CPU has AMX (the only bf16 path measured
// faster than float32 here), and the report says which.
TEST(ConvPrecision, AutoPicksBf16OnlyWithAmx) {
  test::TempDir tmp;
  auto r = test::run_cli({"quantize", test::fixture("fmnist-resnet"), "--calib", "fmnist:train:64", "--method",
                          "adaround", "--wbits", "4", "--abits", "8", "--iters", "10", "-o", tmp.file("q.onnx"),
                          "--report", tmp.file("r.json"), "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rep = nlohmann::json::parse(test::read_file(tmp.file("r.json")));
  EXPECT_EQ(rep["method_report"]["precision"], cpu_has_amx_bf16() ? "bf16" : "fp32");
}

}  // namespace
}  // namespace mixq::test
