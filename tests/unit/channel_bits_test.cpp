// Kernel-wise (per output channel) weight bits, quant/channel_bits.h: the fast path against the
// scalar reference, the uniform case against the layer path, and a fixture quantized with a plan
// carrying channel_bits: each channel on its own grid, the QDQ export (saved and reloaded) equal
// to the simulation, the .mxq pack at the layer's max bits running close to it.
#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "api/quantize_job.h"
#include "core/atomic_file.h"
#include "exec/executor.h"
#include "onnx/export.h"
#include "onnx/import.h"
#include "pack/from_qmodel.h"
#include "quant/channel_bits.h"
#include "quant/qdq.h"
#include "quant/reference.h"
#include "runtime/runtime.h"
#include "rt_test_util.h"
#include "test_util.h"

namespace mixq::test {
namespace {

std::vector<float> floats(const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// The weight's channels c (of `axis`) as rows.
at::Tensor channel(const at::Tensor& w, int64_t axis, int64_t c) { return w.select(axis, c); }

TEST(ChannelBits, FastPathMatchesTheScalarReference) {
  at::manual_seed(3);
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> pick(2, 6);
  struct Case {
    std::vector<int64_t> shape;
    int64_t axis;
  };
  for (const Case& cs : {Case{{7, 3, 3, 3}, 0}, Case{{10, 6}, 1}, Case{{5, 1, 3, 3}, 0}})
    for (bool sym : {false, true})
      for (Rounding rnd : {Rounding::kNearest, Rounding::kStochastic}) {
        SCOPED_TRACE(std::to_string(cs.shape.size()) + "-d, sym " + std::to_string(sym) + " " + rounding_name(rnd));
        at::Tensor w = at::randn(cs.shape) * 0.3;
        w.select(cs.axis, 1).fill_(0.125);  // a one-signed channel
        QScheme s;
        s.granularity = Granularity::kPerChannel;
        s.axis = cs.axis;
        s.symmetric = sym;
        s.rounding = rnd;
        std::vector<int> bits(size_t(w.size(cs.axis)));
        for (int& b : bits) b = pick(rng);
        s.bits = *std::max_element(bits.begin(), bits.end());
        at::Tensor noise = at::rand(w.sizes());
        QParams p = channel_bits_params(w, s, bits, RangeOptions{});
        at::Tensor q = channel_bits_quantize(w, p, s, bits, noise);
        // Reference: min-max parameters at each channel's bits, codes on its own grid.
        const std::vector<float> x = floats(w), u = floats(noise);
        std::vector<float> rs(bits.size()), rz(bits.size()), rq(x.size());
        ref::params_channel_bits_minmax(x.data(), cs.shape, s, bits, rs.data(), rz.data());
        ref::quantize_channel_bits(x.data(), cs.shape, s, bits, rs.data(), rz.data(), u.data(), rq.data());
        EXPECT_EQ(floats(p.scale), rs);
        EXPECT_EQ(floats(p.zero_point), rz);
        EXPECT_EQ(floats(q), rq);
        // Each channel's codes are the layer path's at that channel's bits, and inside its grid.
        for (int64_t c = 0; c < w.size(cs.axis); ++c) {
          QScheme sb = s;
          sb.bits = bits[size_t(c)];
          const QParams pb = weight_params(w, sb, RangeOptions{});
          EXPECT_TRUE(at::equal(channel(quantize(w, pb, sb, noise), cs.axis, c), channel(q, cs.axis, c))) << c;
          EXPECT_GE(channel(q, cs.axis, c).min().item<double>(), double(sb.qmin()));
          EXPECT_LE(channel(q, cs.axis, c).max().item<double>(), double(sb.qmax()));
        }
        // An Lp-searched range: each channel's parameters are weight_params' row at its bits.
        RangeOptions mse;
        mse.method = RangeMethod::kMse;
        QParams pm = channel_bits_params(w, s, bits, mse);
        for (int64_t c = 0; c < w.size(cs.axis); ++c) {
          QScheme sb = s;
          sb.bits = bits[size_t(c)];
          EXPECT_TRUE(at::equal(channel(weight_params(w, sb, mse).scale, cs.axis, c), channel(pm.scale, cs.axis, c)));
        }
      }
}

TEST(ChannelBits, UniformBitsAreTheLayerPathExactly) {
  at::manual_seed(5);
  at::Tensor w = at::randn({6, 4, 3, 3});
  for (int b : {2, 3, 4, 8}) {
    QScheme s;
    s.granularity = Granularity::kPerChannel;
    s.bits = b;
    RangeOptions mse;
    mse.method = RangeMethod::kMse;
    const std::vector<int> bits(6, b);
    QParams p = channel_bits_params(w, s, bits, mse), p0 = weight_params(w, s, mse);
    EXPECT_TRUE(at::equal(p.scale, p0.scale)) << b;
    EXPECT_TRUE(at::equal(p.zero_point, p0.zero_point)) << b;
    EXPECT_TRUE(at::equal(channel_bits_fake_quantize(w, p, s, bits), fake_quantize(w, p0, s))) << b;
  }
  QScheme s;
  s.granularity = Granularity::kPerChannel;
  s.bits = 4;
  EXPECT_THROW(channel_bits_params(w, s, {2, 3}, RangeOptions{}), Error);          // one per channel
  EXPECT_THROW(channel_bits_params(w, s, {2, 3, 5, 2, 2, 2}, RangeOptions{}), Error);  // above the scheme's bits
  s.granularity = Granularity::kPerTensor;
  EXPECT_THROW(channel_bits_params(w, s, std::vector<int>(6, 2), RangeOptions{}), Error);
}

// A fixture quantized with a plan whose unpinned layers have per-channel bits 2..5.
TEST(ChannelBits, FixtureSimulationExportAndPack) {
  TempDir d;
  QuantizeJob job;
  job.model_path = fixture("fmnist-resnet");
  job.calib = "fmnist:train:128";
  job.eval_float = false;
  job.method = "mse";
  job.search_opts.wbits = job.defaults.wbits = 4;
  job.qopts.progress = false;
  QuantizeResult r0 = run_quantize(job);
  nlohmann::json j = plan_to_json(r0.plan);
  std::mt19937 rng(9);
  std::uniform_int_distribution<int> pick(2, 5);
  std::map<std::string, std::vector<int>> want;
  for (size_t i = 0; i < r0.plan.layers.size(); ++i) {
    const LayerPlan& L = r0.plan.layers[i];
    if (L.pinned) continue;
    std::vector<int> bits(size_t(weight_channels(L)));
    for (int& b : bits) b = pick(rng);
    bits[0] = 5;
    j["layers"][i]["weight_quant"]["bits"] = 5;
    j["layers"][i]["weight_quant"]["channel_bits"] = bits;
    want[L.name] = bits;
  }
  ASSERT_GT(want.size(), 3u);
  write_file_atomic(d.file("kw.json"), j.dump());
  job.plan_path = d.file("kw.json");
  QuantizeResult r = run_quantize(job);
  EXPECT_LT(r.plan.cost.avg_wbits, r0.plan.cost.avg_wbits);  // mean 3.5 bits < 4 on the unpinned layers
  // Simulation: each channel is the layer path at its own bits (mse range at b bits).
  int checked = 0;
  for (const auto& qw : r.qmodel.weights) {
    auto it = want.find(qw.node);
    if (it == want.end()) continue;
    ASSERT_EQ(qw.channel_bits, it->second);
    ASSERT_EQ(qw.scheme.bits, 5);
    const at::Tensor w = r.prepared.initializers.at(qw.weight).to(at::kFloat);
    const at::Tensor dq = dequantize(qw.codes, qw.params, qw.scheme);
    RangeOptions mse;
    mse.method = RangeMethod::kMse;
    for (int b = 2; b <= 5; ++b) {
      QScheme sb = qw.scheme;
      sb.bits = b;
      const at::Tensor fb = fake_quantize(w, weight_params(w, sb, mse), sb);
      for (size_t c = 0; c < qw.channel_bits.size(); ++c) {
        if (qw.channel_bits[c] != b) continue;
        ASSERT_TRUE(at::equal(channel(fb, qw.scheme.axis, int64_t(c)), channel(dq, qw.scheme.axis, int64_t(c))))
            << qw.node << " channel " << c << " at " << b << " bits";
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, int(want.size()));
  // QDQ export: written, reloaded (ONNX checker), run: equal to the simulation's outputs.
  auto ds = open_dataset("fmnist:test:48", r.prepared.inputs, preprocess_from_metadata(r.prepared));
  Batch b = ds->get(0, 48);
  Executor sim(qdq_graph(r.qmodel));
  const at::Tensor ref = sim.run(b.inputs).at(0).contiguous();
  save_onnx(qdq_graph(r.qmodel), d.file("kw.onnx"));
  Executor exported(load_onnx(d.file("kw.onnx")));
  EXPECT_TRUE(at::equal(exported.run(b.inputs).at(0).contiguous(), ref));
  // Pack: every such layer at its max bits (5), the runtime close to the simulation.
  pack::PackedModel pm = pack_quantized_model(r.qmodel);
  for (const auto& w : pm.weights)
    if (want.count(w.node)) {
      EXPECT_EQ(w.bits, 5) << w.node;
    }
  rt::Model m(pack::read_mxq(pack::write_mxq(pm), "kw.mxq"));
  const rt::Tensor y = m.run({to_rt(b.inputs.at(0))}).at(0);
  const ScoreAgreement sa = compare_scores(ref, y.f);
  EXPECT_LT(sa.maxdiff, 0.05 * (1 + sa.maxabs));
  EXPECT_GE(sa.agree, 47);
  // The reconstruction methods recompute one grid per layer: refused, not silently widened.
  job.method = "adaround";
  try {
    run_quantize(job);
    FAIL() << "adaround accepted channel_bits";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("per-channel bits"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixq::test
