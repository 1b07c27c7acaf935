// Embedding tables: pinning by role (never the table; warnings for large pinned layers), the
// row-wise scalar reference (fp16 rounding, min-max, greedy range search, per-row codebook), the
// libtorch table quantizer and the QDQ graph against it bit for bit, and the plan's cost.
#include <ATen/ATen.h>
#include <c10/util/Half.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <random>

#include "exec/executor.h"
#include "pack/from_qmodel.h"
#include "runtime/runtime.h"
#include "graph/layers.h"
#include "quant/embed_quant.h"
#include "quant/plan.h"
#include "quant/qdq.h"
#include "quant/rowwise_ref.h"
#include "graph_util.h"
#include "test_util.h"

namespace mixq {
namespace {

// Random rows with a few outliers (where the greedy search has something to clip).
std::vector<float> random_row(std::mt19937& rng, int64_t dim, bool outliers) {
  std::normal_distribution<float> n(0.0f, 0.3f);
  std::vector<float> r(static_cast<size_t>(dim));
  for (auto& v : r) v = n(rng);
  if (outliers) r[static_cast<size_t>(rng() % dim)] = 3.0f + float(rng() % 100) / 50.0f;
  return r;
}

TEST(RowwiseRef, RoundFp16MatchesHalf) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> e(-30.0f, 17.0f);
  for (int i = 0; i < 200000; ++i) {
    float x = std::ldexp(1.0f + float(rng() & 0xffffff) / float(1 << 24), int(e(rng))) * (rng() & 1 ? 1 : -1);
    if (std::fabs(x) >= 65504.0f) continue;
    ASSERT_EQ(ref::round_fp16(x), static_cast<float>(c10::Half(x))) << x;
  }
  EXPECT_EQ(ref::round_fp16(1e6f), 65504.0f);    // saturates: a stored parameter stays finite
  EXPECT_EQ(ref::round_fp16(-7e4f), -65504.0f);
  EXPECT_EQ(ref::round_fp16(1.0f + 1.0f / 2048), 1.0f);  // exactly half an fp16 ulp: to even
  EXPECT_EQ(ref::round_fp16(1.0f + 3.0f / 2048), 1.0f + 2.0f / 1024);
}

TEST(RowwiseRef, MinMaxHandComputed) {
  // [-1, 2] at 2 bits: scale (2 - -1) / 3 = 1, offset -1. 0.5 -> (0.5 + 1) / 1 = 1.5 -> 2 (half to
  // even) -> 1; 0.4 -> 1.4 -> 1 -> 0.
  const float row[] = {-1.0f, 0.5f, 2.0f, 0.4f};
  ref::RowParams p = ref::rowwise_minmax(row, 4, 2);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.offset, -1.0f);
  float q[4];
  ref::rowwise_quantize_row(row, 4, 2, p, q);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[1], 2);
  EXPECT_EQ(q[2], 3);
  EXPECT_EQ(q[3], 1);
  EXPECT_EQ(ref::rowwise_dequantize_value(q[1], p), 1.0f);
  EXPECT_NEAR(ref::rowwise_sq_error(row, 4, 2, p), 0.5 * 0.5 + 0.4 * 0.4, 1e-6);
  // Both parameters are stored as fp16: 0.1 / 15 and 0.1 are rounded.
  const float r2[] = {0.1f, 0.2f};
  p = ref::rowwise_minmax(r2, 2, 4);
  EXPECT_EQ(p.offset, static_cast<float>(c10::Half(0.1f)));
  EXPECT_EQ(p.scale, static_cast<float>(c10::Half((0.2f - 0.1f) / 15.0f)));
  // A constant row: scale 0, every code 0, x~ = offset.
  const float r3[] = {0.75f, 0.75f, 0.75f};
  p = ref::rowwise_minmax(r3, 3, 4);
  EXPECT_EQ(p.scale, 0.0f);
  EXPECT_EQ(ref::rowwise_sq_error(r3, 3, 4, p), 0.0);
}

TEST(RowwiseRef, GreedyNeverWorseThanMinMax) {
  std::mt19937 rng(11);
  int better = 0, rows = 0;
  for (int bits : {2, 4, 8})
    for (int64_t dim : {1, 7, 32, 61})
      for (int i = 0; i < 150; ++i, ++rows) {
        std::vector<float> r = random_row(rng, dim, i % 2 == 0);
        const double e_mm = ref::rowwise_sq_error(r.data(), dim, bits, ref::rowwise_minmax(r.data(), dim, bits));
        const ref::RowParams g = ref::rowwise_greedy(r.data(), dim, bits);
        const double e_g = ref::rowwise_sq_error(r.data(), dim, bits, g);
        ASSERT_LE(e_g, e_mm) << "bits " << bits << " dim " << dim << " row " << i;
        better += e_g < e_mm;
        // The kept range lost at most 16% of the original (one bin of slack for fp16 rounding).
        const auto [lo, hi] = std::minmax_element(r.begin(), r.end());
        const double range = double(*hi) - double(*lo);
        if (range > 0) {
          EXPECT_GE(double(g.scale) * ref::rowwise_qmax(bits), range * (0.84 - 0.01) - 1e-6);
        }
      }
  EXPECT_GT(better, rows / 4);  // with outliers and few bits, clipping pays off often
}

TEST(RowwiseRef, CodebookExactOnFewValuesAndNoWorseThanTheGrid) {
  // At most 2^b distinct fp16 values: k-means finds them all (error 0).
  const float row[] = {0.5f, -0.25f, 0.5f, 1.0f, -0.25f, 2.0f};
  float c[4], q[6];
  ref::codebook_row(row, 6, 2, c, q);
  EXPECT_EQ(ref::codebook_sq_error(row, 6, c, q), 0.0);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c[int(q[i])], row[i]);
  // Lloyd from the min-max grid only lowers the error (up to the fp16 rounding of the centroids).
  std::mt19937 rng(3);
  for (int bits : {2, 4})
    for (int i = 0; i < 200; ++i) {
      std::vector<float> r = random_row(rng, 32, i % 3 == 0);
      std::vector<float> cb(size_t(1) << bits), qq(32);
      ref::codebook_row(r.data(), 32, bits, cb.data(), qq.data());
      const double e_mm = ref::rowwise_sq_error(r.data(), 32, bits, ref::rowwise_minmax(r.data(), 32, bits));
      EXPECT_LE(ref::codebook_sq_error(r.data(), 32, cb.data(), qq.data()), e_mm * 1.01 + 1e-9);
    }
}

// table [rows, dim] -> Gather(indices) -> out
Graph gather_graph(const at::Tensor& table) {
  Graph g = new_graph("embed_test.onnx");
  ValueInfo idx = float_value("idx", {-1, -1});
  idx.dtype = DType::kInt64;
  g.inputs = {idx};
  g.outputs = {float_value("out")};
  g.initializers["table"] = table;
  g.nodes = {make_node("emb", "Gather", {"table", "idx"}, {"out"})};
  return g;
}

TEST(RowwiseTable, QuantizerAndQdqGraphMatchTheReference) {
  at::manual_seed(5);
  const int64_t rows = 37, dim = 13;
  at::Tensor table = at::randn({rows, dim});
  table[4] = 0.25;  // a constant row
  table[9][3] = 6.0;
  for (EmbedScheme e : {EmbedScheme::kRowwise, EmbedScheme::kRowwiseGreedy, EmbedScheme::kCodebook})
    for (int bits : {2, 4, 8}) {
      SCOPED_TRACE(std::string(embed_scheme_name(e)) + " " + std::to_string(bits));
      QuantizedWeight qw;
      qw.node = "emb";
      qw.weight = "table";
      quantize_table(table, e, bits, qw, "test");
      at::Tensor dq = dequantize_weight(qw);
      // Row by row against the scalar reference.
      const float* x = table.data_ptr<float>();
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> q(static_cast<size_t>(dim)), y(static_cast<size_t>(dim));
        if (e == EmbedScheme::kCodebook) {
          std::vector<float> c(size_t(1) << bits);
          ref::codebook_row(x + r * dim, dim, bits, c.data(), q.data());
          for (int64_t i = 0; i < dim; ++i) y[size_t(i)] = c[size_t(q[size_t(i)])];
        } else {
          ref::RowParams p = e == EmbedScheme::kRowwise ? ref::rowwise_minmax(x + r * dim, dim, bits)
                                                        : ref::rowwise_greedy(x + r * dim, dim, bits);
          ref::rowwise_quantize_row(x + r * dim, dim, bits, p, q.data());
          for (int64_t i = 0; i < dim; ++i) y[size_t(i)] = ref::rowwise_dequantize_value(q[size_t(i)], p);
        }
        for (int64_t i = 0; i < dim; ++i) {
          ASSERT_EQ(qw.codes[r][i].item<float>(), q[size_t(i)]) << r << "," << i;
          ASSERT_EQ(dq[r][i].item<float>(), y[size_t(i)]) << r << "," << i;
        }
      }
      // The QDQ graph (what the simulation runs and -o writes) computes the same table exactly.
      QuantizedModel qm;
      qm.graph = gather_graph(table);
      qm.weights = {qw};
      Executor ex(qdq_graph(qm));
      at::Tensor idx = at::arange(rows, at::kLong).flip(0);
      at::Tensor out = ex.run({idx.view({1, rows})})[0];
      EXPECT_TRUE(at::equal(out[0], dq.index_select(0, idx)));
    }
}

TEST(RowwiseRef, Fp16BitsRoundTrip) {
  for (float x : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.1f, -1234.5f}) {
    const float r = ref::round_fp16(x);
    EXPECT_EQ(ref::fp16_bits(r), c10::Half(r).x) << x;
    EXPECT_EQ(ref::fp16_value(ref::fp16_bits(r)), r) << x;
  }
}

// .mxq 1.1 carries the row-wise forms; the runtime's Gather reads them packed and gives exactly the
// simulated table.
TEST(RowwiseTable, PackedRuntimeMatchesTheSimulation) {
  at::manual_seed(8);
  const int64_t rows = 29, dim = 11;
  at::Tensor table = at::randn({rows, dim});
  table[3] = -0.5;
  for (EmbedScheme e : {EmbedScheme::kRowwise, EmbedScheme::kRowwiseGreedy, EmbedScheme::kCodebook})
    for (int bits : {2, 3, 4, 8}) {
      SCOPED_TRACE(std::string(embed_scheme_name(e)) + " " + std::to_string(bits));
      QuantizedModel qm;
      qm.graph = gather_graph(table);
      QuantizedWeight qw;
      qw.node = "emb";
      qw.weight = "table";
      quantize_table(table, e, bits, qw, "test");
      qm.weights = {qw};
      const at::Tensor dq = dequantize_weight(qw);
      pack::PackedModel back = pack::read_mxq(pack::write_mxq(pack_quantized_model(qm)), "test.mxq");
      ASSERT_EQ(back.weights.size(), 1u);
      EXPECT_EQ(back.weights[0].form, e == EmbedScheme::kCodebook ? 2 : 1);
      std::vector<float> x = back.weights[0].dequantize();
      ASSERT_EQ(int64_t(x.size()), rows * dim);
      for (int64_t i = 0; i < rows * dim; ++i) ASSERT_EQ(x[size_t(i)], dq.reshape({-1})[i].item<float>()) << i;
      rt::Model m(back);
      rt::Tensor idx = rt::Tensor::ints({2, 3});
      idx.i = {28, 0, 3, 7, -1, 13};
      rt::Tensor y = m.run({idx})[0];
      ASSERT_EQ(y.shape, (std::vector<int64_t>{2, 3, dim}));
      for (int64_t j = 0; j < 6; ++j) {
        const int64_t r = (idx.i[size_t(j)] + rows) % rows;
        for (int64_t t = 0; t < dim; ++t) ASSERT_EQ(y.f[size_t(j * dim + t)], dq[r][t].item<float>()) << j << "," << t;
      }
    }
}

TEST(RowwiseTable, RefusesWhatItCannotHold) {
  QuantizedWeight qw;
  EXPECT_THROW(quantize_table(at::randn({2, 3, 4}), EmbedScheme::kRowwise, 4, qw, "t"), Error);
  EXPECT_THROW(quantize_table(at::randn({2, 3}), EmbedScheme::kRowwise, 16, qw, "t"), Error);
  EXPECT_THROW(parse_embed_scheme("rowwise-magic"), Error);
}

// Gather (table 1000 x 16) -> ReduceSum -> Gemm 16->8 -> Gemm 8->4
Graph bag_graph() {
  at::manual_seed(2);
  Graph g = gather_graph(at::randn({1000, 16}));
  g.outputs = {float_value("y")};
  g.initializers["axes"] = at::tensor(std::vector<int64_t>{1}, at::kLong);
  g.initializers["w1"] = at::randn({8, 16});
  g.initializers["w2"] = at::randn({4, 8});
  g.nodes.push_back(make_node("sum", "ReduceSum", {"out", "axes"}, {"bag"}, {{"keepdims", int_attr(0)}}));
  g.nodes.push_back(make_node("fc1", "Gemm", {"bag", "w1"}, {"h"}, {{"transB", int_attr(1)}}));
  g.nodes.push_back(make_node("fc2", "Gemm", {"h", "w2"}, {"y"}, {{"transB", int_attr(1)}}));
  return g;
}

TEST(EmbedPlan, TablesAreNeverPinnedAndCostTheirStoredBits) {
  Graph g = bag_graph();
  PlanDefaults d;
  d.wbits = 4;
  QuantPlan p = make_plan(g, find_layers(g), d);
  ASSERT_EQ(p.layers.size(), 3u);
  EXPECT_EQ(p.layers[0].op, "Gather");
  EXPECT_FALSE(p.layers[0].pinned);  // first by position, but an embedding table
  EXPECT_EQ(p.layers[0].weight_scheme.bits, 4);
  EXPECT_TRUE(p.layers[2].pinned);   // the classifier keeps its pin
  EXPECT_NEAR(p.cost.avg_wbits, (16000 * 4 + 128 * 4 + 32 * 8) / 16160.0, 1e-12);
  // Affine per-row: 16000 x 4 bits + 1000 x (32-bit scale + 8-bit zero point).
  EXPECT_EQ(layer_size_bits(p.layers[0]), 16000 * 4 + 1000 * 40);
  d.embed_scheme = EmbedScheme::kRowwiseGreedy;
  p = make_plan(g, find_layers(g), d);
  EXPECT_EQ(p.layers[0].embed, EmbedScheme::kRowwiseGreedy);
  EXPECT_EQ(p.layers[1].embed, EmbedScheme::kNone);
  EXPECT_EQ(layer_size_bits(p.layers[0]), 16000 * 4 + 1000 * 2 * 16);  // fp16 scale + offset per row
  p.layers[0].embed = EmbedScheme::kCodebook;
  update_cost(p);
  EXPECT_EQ(layer_size_bits(p.layers[0]), 16000 * 4 + 1000 * 16 * 16);  // 16 fp16 centroids per row
  // The plan JSON carries the scheme; a Gemm cannot take one.
  nlohmann::json j = plan_to_json(p);
  EXPECT_EQ(j["layers"][0]["weight_quant"]["embed_scheme"], "codebook");
  QuantPlan back = plan_from_json(j, make_plan(g, find_layers(g), PlanDefaults{}), "t.json");
  EXPECT_EQ(back.layers[0].embed, EmbedScheme::kCodebook);
  EXPECT_EQ(back.cost.size_bytes, p.cost.size_bytes);
  j["layers"][1]["weight_quant"]["embed_scheme"] = "rowwise";
  EXPECT_THROW(plan_from_json(j, p, "t.json"), Error);
}

TEST(EmbedPlan, LargePinnedLayersAreWarnedAbout) {
  Graph g = bag_graph();
  PlanDefaults d;
  d.wbits = 4;
  QuantPlan p = make_plan(g, find_layers(g), d);
  EXPECT_TRUE(pinned_share_warnings(p, 4).empty());  // fc2 holds 0.2% of the weights
  p.layers[0].pinned = true;  // pinned by hand (a plan file): 99% of the weights
  p.layers[0].weight_scheme.bits = 8;
  auto w = pinned_share_warnings(p, 4);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("'emb'"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("99.0%"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("adds 3.96 bits"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("--pin-bits 0"), std::string::npos) << w[0];
  EXPECT_TRUE(pinned_share_warnings(p, 8).empty());  // no cost at an 8-bit request
}

// The fixtures: a 4-bit request on the embedding-bag model now gives ~4 bits (the table was
// pinned at 8: 7.9); the MLP's first layer holds 85% of the weights, so it is not pinned (was 7.2
// bits for a 4-bit request) and the log says so; a pinned large layer is still warned about.
TEST(EmbedPlan, FixturesReachTheRequestOrSayWhy) {
  auto r = test::run_cli({"quantize", test::fixture("fmnist-embedbag"), "--wbits", "4", "--calib",
                          "fmnist:train:32", "--json", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_LT(j.at("avg_wbits").get<double>(), 4.05);
  r = test::run_cli({"quantize", test::fixture("fmnist-mlp"), "--wbits", "4", "--calib", "fmnist:train:32", "--json",
                     "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_LT(j.at("avg_wbits").get<double>(), 4.1);
  EXPECT_EQ(j.at("allocation").at("unpinned_dominant"), nlohmann::json::array({"/net/net.0/Gemm"})) << j.at("allocation");
  // Row-wise tables pack (.mxq 1.1); the file is the size the plan predicts.
  test::TempDir tmp;
  r = test::run_cli({"quantize", test::fixture("fmnist-embedbag"), "--embed-scheme", "rowwise-greedy", "--pack",
                     tmp.file("m.mxq"), "--calib", "fmnist:train:32", "--json", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  const double file = double(std::filesystem::file_size(tmp.file("m.mxq")));
  EXPECT_NEAR(file / j.at("size_bytes").get<double>(), 1.0, 0.002);
}

}  // namespace
}  // namespace mixq
