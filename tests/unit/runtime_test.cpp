// The runtime against references: hand-built quantized Conv / Gemm / MatMul layers (every weight
// bit-width, symmetric and asymmetric, odd shapes, prime strides, padding, dilation, groups,
// depthwise) against a double-precision loop over the simulation's fake-quantized values; every
// fixture model packed from a real quantization against the fake-quant simulation on the
// executor; and every ISA path bit-identical.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>
#include <random>

#include "api/quantize_job.h"
#include "exec/executor.h"
#include "kernels/gemv_lowbit.h"
#include "pack/bitpack.h"
#include "pack/from_qmodel.h"
#include "quant/qdq.h"
#include "runtime/runtime.h"
#include "rt_test_util.h"
#include "test_util.h"

namespace mixq::test {
namespace {

// Our own kernels on every path (oneDNN's float convolutions and sgemm off): the bit-identity
// checks compare these paths with each other and with the scalar reference.
rt::ModelOptions own_kernels(kernels::Isa isa, int threads) {
  rt::ModelOptions o{isa, threads};
  o.dnnl = false;
  return o;
}

using kernels::Isa;

// The runtime's activation quantizer: x times the float reciprocal of the scale (kernels/quantize.h).
float fake_quant(float x, const pack::QAct& a) {
  const float inv = 1.0f / a.scale;
  const float q = std::min(std::max(std::nearbyint(x * inv) + a.zero_point, float(a.qmin())), float(a.qmax()));
  return a.scale * (q - a.zero_point);
}

struct ConvCase {
  int64_t N, C, H, W, O, kh, kw, sh, sw, ph, pw, dh, dw, group;
};

// y = conv(fq(x), dq(w)) + b in double.
std::vector<double> conv_ref(const ConvCase& c, const std::vector<float>& x, const std::vector<float>& w,
                             const std::vector<float>& b, const pack::QAct* act, int64_t OH, int64_t OW) {
  const int64_t Ig = c.C / c.group, Og = c.O / c.group;
  std::vector<double> y(c.N * c.O * OH * OW);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          double s = b[o];
          const int64_t g = o / Og;
          for (int64_t ci = 0; ci < Ig; ++ci)
            for (int64_t ky = 0; ky < c.kh; ++ky)
              for (int64_t kx = 0; kx < c.kw; ++kx) {
                const int64_t iy = oy * c.sh - c.ph + ky * c.dh, ix = ox * c.sw - c.pw + kx * c.dw;
                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                float xv = x[((n * c.C + g * Ig + ci) * c.H + iy) * c.W + ix];
                if (act) xv = fake_quant(xv, *act);
                s += double(xv) * w[((o * Ig + ci) * c.kh + ky) * c.kw + kx];
              }
          y[((n * c.O + o) * OH + oy) * OW + ox] = s;
        }
  return y;
}

pack::PackedModel conv_model(const ConvCase& c, const pack::QWeight& w, const std::vector<float>& bias,
                             const pack::QAct* act) {
  pack::PackedModel m;
  m.inputs.push_back({"x", pack::ElemType::kFloat32, {-1, c.C, c.H, c.W}});
  m.outputs.push_back({"y", pack::ElemType::kFloat32, {}});
  pack::Node n;
  n.name = w.node;
  n.op = "Conv";
  n.inputs = {"x", w.tensor, "b"};
  n.outputs = {"y"};
  auto ints = [](std::vector<int64_t> v) { pack::Attr a; a.type = pack::Attr::kInts; a.ints = v; return a; };
  n.attrs["strides"] = ints({c.sh, c.sw});
  n.attrs["pads"] = ints({c.ph, c.pw, c.ph, c.pw});
  n.attrs["dilations"] = ints({c.dh, c.dw});
  n.attrs["group"].type = pack::Attr::kInt;
  n.attrs["group"].i = c.group;
  m.nodes.push_back(n);
  pack::Tensor b;
  b.name = "b";
  b.dims = {c.O};
  b.f = bias;
  m.tensors.push_back(b);
  m.weights.push_back(w);
  if (act) m.acts.push_back(*act);
  return m;
}

TEST(Runtime, QuantizedConvMatchesReferenceEveryBitWidthAndPath) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0, 1);
  const ConvCase cases[] = {
      {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1},    // odd sizes, same padding
      {1, 4, 11, 13, 6, 3, 2, 2, 3, 1, 0, 1, 1, 2},  // prime strides, grouped
      {3, 6, 8, 7, 6, 3, 3, 2, 2, 1, 1, 2, 1, 6},    // depthwise, stride 2, dilation
      {1, 8, 5, 5, 7, 1, 1, 1, 1, 0, 0, 1, 1, 1},    // pointwise
      // grey / RGB stems (channels padded to 4, image framed by the padding): dilated, and 7x7
      {2, 1, 10, 9, 8, 3, 3, 2, 1, 2, 2, 2, 2, 1},
      {1, 3, 16, 15, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1},
      // one image, millions of multiply-adds: its rows are split over the 2 threads
      {1, 32, 36, 36, 48, 3, 3, 1, 1, 1, 1, 1, 1, 1},
      {1, 64, 72, 72, 64, 3, 3, 1, 1, 1, 1, 1, 1, 64},  // depthwise
  };
  for (const ConvCase& c : cases)
    for (int bits : {2, 3, 4, 5, 6, 7, 8})
      for (bool sym : {false, true})
        for (int abits : {8, 4, 16}) {
          SCOPED_TRACE(testing::Message() << "case C=" << c.C << " group=" << c.group << " bits=" << bits
                                          << " sym=" << sym << " abits=" << abits);
          const pack::QWeight w = random_qweight("conv", {c.O, c.C / c.group, c.kh, c.kw}, 0, bits, sym, rng);
          std::vector<float> bias(c.O), x(c.N * c.C * c.H * c.W);
          for (auto& v : bias) v = nd(rng);
          for (auto& v : x) v = nd(rng);
          pack::QAct act{"x", abits, abits == 4, 0.03f, abits == 4 ? 0.0f : (abits == 8 ? 121.0f : 30000.0f)};
          const int64_t OH = (c.H + 2 * c.ph - c.dh * (c.kh - 1) - 1) / c.sh + 1;
          const int64_t OW = (c.W + 2 * c.pw - c.dw * (c.kw - 1) - 1) / c.sw + 1;
          const std::vector<double> ref = conv_ref(c, x, w.dequantize(), bias, &act, OH, OW);
          rt::Tensor xt;
          xt.shape = {c.N, c.C, c.H, c.W};
          xt.f = x;
          std::vector<float> first;
          for (Isa isa : isas()) {
            rt::Model model(conv_model(c, w, bias, &act), own_kernels(isa, 2));
            ASSERT_EQ(model.layer_paths().size(), 1u);
            EXPECT_EQ(model.layer_paths()[0].int_path, abits <= 8) << model.layer_paths()[0].why_float;
            const rt::Tensor y = model.run({xt}).at(0);
            ASSERT_EQ(y.shape, (std::vector<int64_t>{c.N, c.O, OH, OW}));
            double maxabs = 0;
            for (double v : ref) maxabs = std::max(maxabs, std::fabs(v));
            for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(y.f[i], ref[i], 1e-5 * (1 + maxabs)) << i;
            if (first.empty()) first = y.f;
            else EXPECT_EQ(y.f, first) << "ISA " << kernels::isa_name(isa) << " differs from ref";
          }
        }
}

TEST(Runtime, QuantizedGemmAndMatMul) {
  std::mt19937 rng(13);
  std::normal_distribution<float> nd(0, 1);
  for (const char* op : {"Gemm", "MatMul"})
    for (int bits : {2, 3, 4, 5, 6, 7, 8})
      for (bool sym : {false, true}) {
        SCOPED_TRACE(testing::Message() << op << " bits=" << bits << " sym=" << sym);
        const int64_t M = 7, K = 37, N = 19;  // K not a multiple of 4: padded rows
        const bool gemm = std::string(op) == "Gemm";
        // Gemm with transB=1: W [N, K] axis 0; MatMul: W [K, N] axis 1.
        const pack::QWeight w = gemm ? random_qweight("fc", {N, K}, 0, bits, sym, rng)
                                     : random_qweight("fc", {K, N}, 1, bits, sym, rng);
        pack::PackedModel m;
        m.inputs.push_back({"x", pack::ElemType::kFloat32, {-1, K}});
        m.outputs.push_back({"y", pack::ElemType::kFloat32, {}});
        pack::Node n;
        n.name = "fc";
        n.op = op;
        n.inputs = {"x", w.tensor};
        if (gemm) {
          n.inputs.push_back("b");
          n.attrs["transB"].type = pack::Attr::kInt;
          n.attrs["transB"].i = 1;
          pack::Tensor b;
          b.name = "b";
          b.dims = {N};
          for (int64_t j = 0; j < N; ++j) b.f.push_back(nd(rng));
          m.tensors.push_back(b);
        }
        n.outputs = {"y"};
        m.nodes.push_back(n);
        m.weights.push_back(w);
        const pack::QAct act{"x", 8, false, 0.02f, 100.0f};
        m.acts.push_back(act);
        std::vector<float> x(M * K);
        for (auto& v : x) v = nd(rng);
        const std::vector<float> dq = w.dequantize();
        rt::Tensor xt;
        xt.shape = {M, K};
        xt.f = x;
        for (Isa isa : isas()) {
          rt::Model model(m, own_kernels(isa, 1));
          EXPECT_TRUE(model.layer_paths()[0].int_path);
          const rt::Tensor y = model.run({xt}).at(0);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double s = gemm ? m.tensors[0].f[j] : 0.0;
              for (int64_t k = 0; k < K; ++k)
                s += double(fake_quant(x[i * K + k], act)) * (gemm ? dq[j * K + k] : dq[k * N + j]);
              ASSERT_NEAR(y.f[i * N + j], s, 1e-4) << i << "," << j;
            }
        }
      }
}

// A Gemm (transB=1, weight [N, K]) reading x [-1, K] through `act` (16-bit: the float path).
pack::PackedModel fc_model(const pack::QWeight& w, int64_t N, int64_t K, const pack::QAct& act, std::mt19937& rng) {
  std::normal_distribution<float> nd(0, 1);
  pack::PackedModel m;
  m.inputs.push_back({"x", pack::ElemType::kFloat32, {-1, K}});
  m.outputs.push_back({"y", pack::ElemType::kFloat32, {}});
  pack::Node n;
  n.name = w.node;
  n.op = "Gemm";
  n.inputs = {"x", w.tensor, "b"};
  n.attrs["transB"].type = pack::Attr::kInt;
  n.attrs["transB"].i = 1;
  n.outputs = {"y"};
  m.nodes.push_back(n);
  pack::Tensor b;
  b.name = "b";
  b.dims = {N};
  for (int64_t j = 0; j < N; ++j) b.f.push_back(nd(rng));
  m.tensors.push_back(b);
  m.weights.push_back(w);
  m.acts.push_back(act);
  return m;
}

// Low-bit weights stay packed at run time and give exactly the int8 path's outputs (the integer
// inside the epilogue is the same sum; only the weight's form differs).
TEST(Runtime, LowbitLayersMatchTheInt8PathBitForBitAndHoldTheirBits) {
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0, 1);
  const int64_t N = 37, K = 131;  // neither a multiple of 16 nor of 32
  for (int bits : {2, 3, 4, 5, 6})
    for (bool sym : {false, true})
      for (int64_t M : {1, 2, 5, 9}) {
        SCOPED_TRACE(testing::Message() << "bits=" << bits << " sym=" << sym << " M=" << M);
        const pack::QWeight w = random_qweight("fc", {N, K}, 0, bits, sym, rng);
        const pack::PackedModel m = fc_model(w, N, K, pack::QAct{"x", 8, false, 0.02f, 100.0f}, rng);
        rt::Tensor xt;
        xt.shape = {M, K};
        for (int64_t i = 0; i < M * K; ++i) xt.f.push_back(nd(rng));
        rt::ModelOptions int8_opts{Isa::kRef, 1, /*lowbit=*/false};
        rt::Model int8_model(m, int8_opts);
        ASSERT_EQ(int8_model.layer_paths()[0].kernel, "int8");
        const rt::Tensor want = int8_model.run({xt}).at(0);
        for (Isa isa : isas()) {
          rt::Model model(m, own_kernels(isa, 1));
          const rt::LayerPath& p = model.layer_paths()[0];
          EXPECT_EQ(p.kernel, "lowbit" + std::to_string(bits));
          EXPECT_TRUE(p.int_path);
          // codes at `bits` bits (16-row, 32-k padding) + row sums and epilogue terms; no int8 copy
          const int64_t codes = (N + 15) / 16 * 16 * kernels::lowbit_kp(K) * bits / 8;
          EXPECT_LE(p.weight_bytes, codes + 4 * 4 * N);
          EXPECT_GT(int8_model.layer_paths()[0].weight_bytes, N * K);  // one byte per weight and more
          EXPECT_EQ(model.run({xt}).at(0).f, want.f) << kernels::isa_name(isa);
        }
      }
}

// 16-bit activations with per-group weights (the float path) run on the float low-bit kernel:
// close to the double reference, identical on every ISA, and no float copy of the weight.
TEST(Runtime, FloatPathPerGroupWeightsStayLowbit) {
  std::mt19937 rng(29);
  std::normal_distribution<float> nd(0, 1);
  const int64_t N = 21, K = 160, M = 3;
  for (int bits : {3, 4, 6})
    for (int64_t gs : {32, 64, 48}) {  // 48: not a multiple of 32, keeps the dequantized copy
      SCOPED_TRACE(testing::Message() << "bits=" << bits << " gs=" << gs);
      pack::QWeight w = random_qweight("fc", {N, K}, 0, bits, false, rng);
      w.granularity = pack::Gran::kPerGroup;
      w.group_size = gs;
      w.scales.clear();
      w.zero_points.clear();
      for (int64_t p = 0; p < w.num_params(); ++p) {
        w.scales.push_back(0.01f + 0.001f * float(p % 17));
        w.zero_points.push_back(static_cast<int32_t>(rng() % (1u << bits)));
      }
      const pack::QAct act{"x", 16, false, 0.0005f, 30000.0f};
      const pack::PackedModel m = fc_model(w, N, K, act, rng);
      rt::Tensor xt;
      xt.shape = {M, K};
      for (int64_t i = 0; i < M * K; ++i) xt.f.push_back(nd(rng));
      const std::vector<float> dq = w.dequantize();
      std::vector<float> first;
      for (Isa isa : isas()) {
        rt::Model model(m, own_kernels(isa, 1));
        const rt::LayerPath& p = model.layer_paths()[0];
        EXPECT_FALSE(p.int_path);
        if (gs % 32 == 0) {
          EXPECT_EQ(p.kernel, "f32-lowbit" + std::to_string(bits));
          // codes at `bits` bits + a scale and a zero point per group (16-row padded) + row sums,
          // where the float copy it replaces held 4 * N * K bytes
          const int64_t rows = (N + 15) / 16 * 16, groups = (K + gs - 1) / gs;
          EXPECT_LE(p.weight_bytes, rows * kernels::lowbit_kp(K) * bits / 8 + 8 * rows * groups + 4 * N);
        } else {
          EXPECT_EQ(p.kernel, "f32");
        }
        const rt::Tensor y = model.run({xt}).at(0);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double s = m.tensors[0].f[j];
            for (int64_t k = 0; k < K; ++k) s += double(fake_quant(xt.f[i * K + k], act)) * dq[j * K + k];
            ASSERT_NEAR(y.f[i * N + j], s, 1e-4) << i << "," << j;
          }
        if (first.empty()) first = y.f;
        else EXPECT_EQ(y.f, first) << kernels::isa_name(isa) << " differs from ref";
      }
    }
}

// x [dims] -> node `name` (op) -> y.
pack::PackedModel one_node_model(const std::string& name, const std::string& op, std::vector<int64_t> dims) {
  pack::PackedModel m;
  m.inputs.push_back({"x", pack::ElemType::kFloat32, std::move(dims)});
  m.outputs.push_back({"y", pack::ElemType::kFloat32, {}});
  pack::Node n;
  n.name = name;
  n.op = op;
  n.inputs = {"x"};
  n.outputs = {"y"};
  m.nodes.push_back(n);
  return m;
}

TEST(Runtime, LoadErrorsNameTheNode) {
  pack::PackedModel m = one_node_model("weird", "FancyOp", {-1, 4});
  try {
    rt::Model model(m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("'weird' (FancyOp)"), std::string::npos) << e.what();
  }
  m.nodes[0].op = "Relu";
  m.nodes[0].inputs = {"nowhere"};
  try {
    rt::Model model(m);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidModel);
    EXPECT_NE(std::string(e.what()).find("'nowhere'"), std::string::npos) << e.what();
  }
  auto expect_invalid = [](const pack::PackedModel& bad, const std::string& needle) {
    try {
      rt::Model model(bad);
      FAIL() << "accepted (" << needle << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidModel) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  pack::PackedModel bad = m;
  bad.nodes[0].inputs = {""};
  expect_invalid(bad, "required input 0 is missing");
  bad.nodes[0].inputs = {"x"};
  bad.nodes[0].outputs = {};
  expect_invalid(bad, "has no output");
  bad = m;
  bad.nodes[0].op = "Add";
  bad.nodes[0].inputs = {"x"};
  expect_invalid(bad, "needs at least 2");
  // A quantized weight attached to a node that is not a layer, or at the wrong input.
  std::mt19937 rng(1);
  bad.nodes[0].inputs = {"x", "weird.w"};
  bad.weights.push_back(random_qweight("weird", {4, 4}, 0, 4, false, rng));
  expect_invalid(bad, "only Conv, ConvTranspose, Gemm, MatMul, Gather, LSTM, GRU and RNN");
  bad.nodes[0].op = "MatMul";
  bad.nodes[0].inputs = {"weird.w", "x"};
  expect_invalid(bad, "must be input 1");
  m.nodes[0].inputs = {"x"};
  rt::Model ok(m);
  rt::Tensor wrong;
  wrong.shape = {2, 5};
  wrong.f.resize(10);
  EXPECT_THROW(ok.run({wrong}), Error);
}

// A fixture quantized for real (W4A8, per-channel, first/last layer 8 bits), packed, written,
// read back and run on every ISA: logits close to the fake-quant simulation's, top-1 agreement,
// and the ISA paths bit-identical.
void check_fixture(const std::string& name, int wbits, int abits, int64_t samples, bool conv_net = false) {
  QuantizeJob job;
  job.model_path = fixture(name);
  job.calib = "fmnist:train:256";
  job.eval_float = false;
  job.search_opts.wbits = job.defaults.wbits = wbits;
  job.defaults.abits = abits;
  job.qopts.progress = false;
  QuantizeResult r = run_quantize(job);
  TempDir d;
  const std::string path = d.file(name + ".mxq");
  pack::save_mxq(pack_quantized_model(r.qmodel), path);
  // File size: the plan's size_bytes predicts the whole file (required: within 1%); the only
  // difference is how zlib compresses the real activation quantizers in the graph section (ReLU6
  // models repeat one scale and compress ~100 bytes better than the skeleton's made-up ones).
  const int64_t size = static_cast<int64_t>(read_file(path).size());
  EXPECT_NEAR(double(size), double(r.plan.cost.size_bytes), 0.005 * double(size)) << name;
  auto ds = open_dataset("fmnist:test:" + std::to_string(samples), r.prepared.inputs,
                         preprocess_from_metadata(r.prepared));
  Batch b = ds->get(0, samples);
  Executor sim(qdq_graph(r.qmodel));
  at::Tensor ref = sim.run(b.inputs).at(0).contiguous();
  const rt::Tensor x = to_rt(b.inputs.at(0));
  std::vector<float> first;
  for (Isa isa : isas()) {
    rt::Model m = rt::Model::load(path, own_kernels(isa, 2));
    for (const auto& p : m.layer_paths()) {
      if (abits <= 8 && p.op != "Gather") {
        EXPECT_TRUE(p.int_path) << name << " " << p.node << ": " << p.why_float;
      }
    }
    const rt::Tensor y = m.run({x}).at(0);
    ASSERT_EQ(static_cast<int64_t>(y.f.size()), ref.numel());
    const ScoreAgreement sa = compare_scores(ref, y.f);
    // Float rounding differs (int32 sums vs float convolution) and can flip an activation code at
    // a rounding boundary; the effect on the logits stays small.
    EXPECT_LT(sa.maxdiff, 0.05 * (1 + sa.maxabs)) << name << " " << kernels::isa_name(isa);
    EXPECT_GE(sa.agree, samples - 1) << name << " " << kernels::isa_name(isa);
    // The ViT's fused GELU and attention round differently per ISA (FMA on the vector paths) and
    // from the unfused chain: a code can flip after them, so its paths agree within rounding; every
    // other fixture's paths give the same bits.
    const bool exact = name != "fmnist-vit";
    auto same = [&](const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
      if (exact) {
        EXPECT_EQ(a, b) << name << " " << what;
        return;
      }
      ASSERT_EQ(a.size(), b.size());
      const ScoreAgreement d = compare_scores(at::from_blob(const_cast<float*>(a.data()), ref.sizes()).clone(), b);
      EXPECT_LT(d.maxdiff, 0.05 * (1 + d.maxabs)) << name << " " << what;
      EXPECT_GE(d.agree, samples - 1) << name << " " << what;
    };
    if (first.empty()) first = y.f;
    else same(y.f, first, std::string("ISA ") + kernels::isa_name(isa) + " vs ref");
    // Fused activations, codes and channels-last values between layers (runtime/forms.h) give the
    // same bits as every value passed as NCHW float.
    rt::ModelOptions plain{isa, 1};
    plain.fuse = false;
    rt::Model unfused = rt::Model::load(path, plain);
    {  // one image on 2 threads (a layer's rows split over them) = its row of the batch
      rt::Tensor x1 = x;
      x1.shape[0] = 1;
      x1.f.resize(static_cast<size_t>(x.numel() / x.shape[0]));
      const rt::Tensor y1 = m.run({x1}).at(0);
      ASSERT_EQ(y1.f.size() * static_cast<size_t>(samples), y.f.size());
      EXPECT_TRUE(std::equal(y1.f.begin(), y1.f.end(), y.f.begin())) << name << " batch-1 on 2 threads";
    }
    same(unfused.run({x}).at(0).f, y.f, std::string(kernels::isa_name(isa)) + ": fused vs unfused");
    // Threads split rows (layers, LayerNorm, GELU, embedding bags): the same bits as one thread.
    EXPECT_EQ(rt::Model::load(path, own_kernels(isa, 1)).run({x}).at(0).f, y.f) << name << " 1 vs 2 threads";
    EXPECT_EQ(unfused.forms().fused_acts + unfused.forms().codes_outputs + unfused.forms().nhwc_outputs, 0);
    if (name == "fmnist-embedbag") {  // its Gather -> ReduceSum ran as one op (same bits, checked above)
      EXPECT_EQ(m.forms().embedding_bags, 1);
    }
    if (conv_net && abits <= 8) {  // (the model runs 2 threads, images in parallel; `unfused` 1)
      EXPECT_GT(m.forms().fused_acts, 0) << name;
      EXPECT_GT(m.forms().codes_outputs, 0) << name;
      EXPECT_GT(m.forms().fused_adds, 0) << name;  // residual Adds (ResNet blocks, inverted residuals)
    }
  }
}

TEST(RuntimeFixtures, Mlp) { check_fixture("fmnist-mlp", 4, 8, 256); }
TEST(RuntimeFixtures, Resnet) { check_fixture("fmnist-resnet", 4, 8, 64, true); }
TEST(RuntimeFixtures, ResnetW8A8) { check_fixture("fmnist-resnet", 8, 8, 64, true); }
TEST(RuntimeFixtures, MobileNetV2) { check_fixture("fmnist-mobilenetv2", 4, 8, 64, true); }
TEST(RuntimeFixtures, Vit) { check_fixture("fmnist-vit", 4, 8, 64); }
TEST(RuntimeFixtures, EmbedBag) { check_fixture("fmnist-embedbag", 4, 8, 256); }
TEST(RuntimeFixtures, ResnetW3A16FloatPath) { check_fixture("fmnist-resnet", 3, 16, 32); }

TEST(Runtime, BufferPoolReusesDeadValuesMemory) {
  rt::BufferPool pool;
  rt::Tensor t;
  t.f.assign(100000, 1.0f);
  const float* p = t.f.data();
  pool.give(std::move(t));
  EXPECT_TRUE(t.f.empty());
  std::vector<float> a = pool.floats(50000);  // the smallest buffer that fits, shrunk (no copy)
  EXPECT_EQ(a.size(), 50000u);
  EXPECT_EQ(a.data(), p);
  std::vector<float> b = pool.floats(1000);  // none left: a new one
  EXPECT_EQ(b.size(), 1000u);
  EXPECT_NE(b.data(), p);
  rt::Tensor u;
  u.f = std::move(a);
  pool.give(std::move(u));
  EXPECT_EQ(pool.floats(80000).data(), p);  // grows within its capacity
}

// The fp32 configuration (`pack --float`) on oneDNN (convolutions with fused Relu/Clip/residual Add
// and channels-last values between them; Gemm / MatMul on its sgemm) against our own float path,
// which is bit-identical to the scalar reference: oneDNN sums in another order with FMA, so the
// outputs agree within float rounding, and so do a batch and its single images.
TEST(RuntimeFixtures, FloatModelsOnOneDnnMatchOwnKernels) {
  if (kernels::default_isa() == Isa::kRef) GTEST_SKIP() << "oneDNN runs only with a vector ISA";
  for (const std::string name : {"fmnist-resnet", "fmnist-mobilenetv2", "fmnist-vit"}) {
    QuantizeJob job;
    job.model_path = fixture(name);
    job.calib = "fmnist:train:1";
    job.eval_float = false;
    job.qopts.progress = false;
    QuantizeResult r = run_quantize(job);
    r.qmodel.graph = r.prepared;
    r.qmodel.weights.clear();
    r.qmodel.activations.clear();
    TempDir d;
    const std::string path = d.file(name + ".mxq");
    pack::save_mxq(pack_quantized_model(r.qmodel), path);
    auto ds = open_dataset("fmnist:test:16", r.prepared.inputs, preprocess_from_metadata(r.prepared));
    const rt::Tensor x = to_rt(ds->get(0, 16).inputs.at(0));
    rt::Model own = rt::Model::load(path, own_kernels(kernels::default_isa(), 1));
    rt::ModelOptions fast{kernels::default_isa(), 2};
    rt::Model dn = rt::Model::load(path, fast);
    const std::vector<float> a = own.run({x}).at(0).f, b = dn.run({x}).at(0).f;
    ASSERT_EQ(a.size(), b.size());
    // Later runs take their outputs from the memory of the first run's dead values: same result.
    EXPECT_EQ(dn.run({x}).at(0).f, b) << name;
    EXPECT_EQ(own.run({x}).at(0).f, a) << name;
    double maxabs = 0, maxdiff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      maxabs = std::max(maxabs, double(std::fabs(a[i])));
      maxdiff = std::max(maxdiff, double(std::fabs(a[i] - b[i])));
    }
    EXPECT_LT(maxdiff, 1e-4 * (1 + maxabs)) << name;
    if (name == "fmnist-vit") {  // its LayerNorm and GELU chains run fused (own kernels: same bits, checked above)
      EXPECT_EQ(own.forms().gelus, 3);
      EXPECT_EQ(own.forms().layernorms, 7);
      EXPECT_EQ(own.forms().attentions, 3);  // (the default; each with its four Transposes folded)
      EXPECT_EQ(own.forms().biases, 18);     // q, k, v, out, fc1, fc2: bias Adds into the layers
      EXPECT_EQ(dn.forms().biases, 0);       // (oneDNN's linear layers keep theirs)
      rt::ModelOptions fa = fast;
      fa.fuse_attention = false;
      rt::Model att = rt::Model::load(path, fa);
      EXPECT_EQ(att.forms().attentions, 0);
      const std::vector<float> c = att.run({x}).at(0).f;
      ASSERT_EQ(c.size(), a.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(c[i], a[i], 1e-4 * (1 + maxabs)) << i;
    }
    if (name != "fmnist-vit") {  // (its one convolution feeds a Reshape)
      EXPECT_GT(dn.forms().fused_acts + dn.forms().nhwc_outputs, 0) << name << ": oneDNN convolutions took no forms";
    }
    rt::Tensor x1 = x;
    x1.shape[0] = 1;
    x1.f.resize(static_cast<size_t>(x.numel() / x.shape[0]));
    const std::vector<float> b1 = dn.run({x1}).at(0).f;
    for (size_t i = 0; i < b1.size(); ++i) EXPECT_NEAR(b1[i], b[i], 1e-4 * (1 + maxabs)) << name << " batch 1";
  }
}

// Round without libm (ops_elementwise.cpp) is nearbyint: ties to even, signs of zeros, large
// values, infinities and NaN.
TEST(Runtime, RoundIsNearbyint) {
  rt::Model model(one_node_model("r", "Round", {-1}));
  std::vector<float> v = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, -0.0f, 0.0f, -0.3f, 0.49999997f, 8388607.5f,
                          8388608.0f, 8388609.0f, -8388607.5f, 1e30f, -1e30f, INFINITY, -INFINITY, 1e-40f, -1e-40f};
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-1000.0f, 1000.0f);
  for (int i = 0; i < 100000; ++i) v.push_back(i % 2 ? u(rng) : std::ldexp(float(int(rng() % 4001) - 2000), -1));
  rt::Tensor x = rt::Tensor::floats({static_cast<int64_t>(v.size()) + 1});
  std::copy(v.begin(), v.end(), x.f.begin());
  x.f.back() = NAN;
  const rt::Tensor y = model.run({x}).at(0);
  for (size_t i = 0; i < v.size(); ++i) {
    const float want = std::nearbyint(v[i]);
    ASSERT_EQ(std::signbit(y.f[i]), std::signbit(want)) << v[i];
    ASSERT_EQ(y.f[i], want) << v[i];
  }
  EXPECT_TRUE(std::isnan(y.f.back()));
}

}  // namespace
}  // namespace mixq::test
