// The runtime's embedding bag (runtime/fuse_chains.h fuse_embedding_bags): Gather -> ReduceSum |
// ReduceMean run as one op gives the bits of the two ops run apart, for float and packed tables
// (every weight width, per-row and per-tensor parameters, row-wise forms), bags over one or more
// trailing index axes, axes as attribute or input, keepdims 0/1; reductions it does not cover run
// the two ops inside it; threads split the bags; a bad index is refused naming the node.
#include <gtest/gtest.h>

#include <random>

#include "mixq/error.h"
#include "runtime/runtime.h"
#include "rt_test_util.h"

namespace mixq::test {
namespace {

pack::Attr ints_attr(std::vector<int64_t> v) {
  pack::Attr a;
  a.type = pack::Attr::kInts;
  a.ints = std::move(v);
  return a;
}

struct BagCase {
  std::vector<int64_t> idx_shape;
  std::vector<int64_t> axes;  // of the gathered tensor [idx dims..., row dims...]
  bool axes_input = true;     // opset 13+: axes as a constant input; else the attribute
  int64_t keepdims = 0;
  bool mean = false;
};

// idx -> Gather(table) -> ReduceSum | ReduceMean -> y. `qw` set: the table is that packed weight;
// else a float table of `dims`.
pack::PackedModel bag_model(const BagCase& c, const std::vector<int64_t>& dims, const pack::QWeight* qw,
                            std::mt19937& rng) {
  pack::PackedModel m;
  m.inputs.push_back({"idx", pack::ElemType::kInt64, std::vector<int64_t>(c.idx_shape.size(), -1)});
  m.outputs.push_back({"y", pack::ElemType::kFloat32, {}});
  pack::Node g;
  g.name = "emb";
  g.op = "Gather";
  g.inputs = {qw ? qw->tensor : std::string("table"), "idx"};
  g.outputs = {"rows"};
  m.nodes.push_back(g);
  pack::Node r;
  r.name = "bag";
  r.op = c.mean ? "ReduceMean" : "ReduceSum";
  r.inputs = {"rows"};
  r.outputs = {"y"};
  r.attrs["keepdims"].type = pack::Attr::kInt;
  r.attrs["keepdims"].i = c.keepdims;
  if (c.axes_input) {
    r.inputs.push_back("axes");
    pack::Tensor a;
    a.name = "axes";
    a.dtype = pack::ElemType::kInt64;
    a.dims = {static_cast<int64_t>(c.axes.size())};
    a.i = c.axes;
    m.tensors.push_back(a);
  } else {
    r.attrs["axes"] = ints_attr(c.axes);
  }
  m.nodes.push_back(r);
  if (qw) {
    m.weights.push_back(*qw);
  } else {
    pack::Tensor t;
    t.name = "table";
    t.dims = dims;
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::normal_distribution<float> nd;
    for (int64_t i = 0; i < n; ++i) t.f.push_back(nd(rng));
    m.tensors.push_back(t);
  }
  return m;
}

rt::Tensor random_indices(const std::vector<int64_t>& shape, int64_t rows, std::mt19937& rng) {
  rt::Tensor idx = rt::Tensor::ints(shape);
  for (auto& v : idx.i) v = static_cast<int64_t>(rng() % static_cast<uint32_t>(2 * rows)) - rows;  // negatives too
  return idx;
}

// The fused model's output equals the unfused one's bit for bit; `fused` says whether the pair
// was taken as one op (it always is; the op falls back inside itself).
void expect_same_bits(const pack::PackedModel& m, const rt::Tensor& idx, const std::string& what) {
  rt::Model fused(m);
  rt::ModelOptions plain;
  plain.fuse = false;
  rt::Model apart(m, plain);
  EXPECT_EQ(fused.forms().embedding_bags, 1) << what;
  EXPECT_EQ(apart.forms().embedding_bags, 0) << what;
  const rt::Tensor a = fused.run({idx}).at(0), b = apart.run({idx}).at(0);
  EXPECT_EQ(a.shape, b.shape) << what;
  EXPECT_EQ(a.f, b.f) << what;
  EXPECT_EQ(fused.run({idx}).at(0).f, a.f) << what << ": a second run (pooled output memory)";
}

TEST(EmbeddingBag, FusedGivesTheBitsOfGatherThenReduce) {
  std::mt19937 rng(11);
  const std::vector<BagCase> cases = {
      {{4, 7}, {1}, true, 0, false},      // the fixture's form: [batch, bag] -> sum over the bag
      {{4, 7}, {-3}, false, 1, true},     // mean, axes attribute, negative axis, keepdims
      {{2, 3, 5}, {1, 2}, true, 0, false},  // a bag over two index axes
      {{2, 3, 5}, {2}, true, 1, false},
      {{3, 0}, {1}, true, 0, true},       // empty bags: zeros
      {{4, 7}, {2}, true, 0, false},      // reduces the row: not a bag, the two ops run inside
      {{4, 7}, {0}, true, 0, false},      // a leading index axis: not a bag either
      {{4, 7}, {}, false, 0, false},      // every axis
  };
  for (const BagCase& c : cases) {
    const std::string what = "idx rank " + std::to_string(c.idx_shape.size()) + " axes " +
                             std::to_string(c.axes.empty() ? 99 : c.axes[0]) + (c.mean ? " mean" : " sum");
    const int64_t rows = 23;
    const rt::Tensor idx = random_indices(c.idx_shape, rows, rng);
    expect_same_bits(bag_model(c, {rows, 6}, nullptr, rng), idx, what + " float table");
    expect_same_bits(bag_model(c, {rows, 2, 3}, nullptr, rng), idx, what + " float 3-D table");
    for (int bits : {2, 3, 4, 5, 7, 8, 16})
      for (bool per_tensor : {false, true}) {
        // 5 columns: rows of odd-width codes start inside a byte.
        pack::QWeight w = random_qweight("emb", {rows, 5}, 0, bits, bits == 8, rng);
        if (per_tensor) {
          w.granularity = pack::Gran::kPerTensor;
          w.scales.resize(1);
          w.zero_points.resize(1);
        }
        expect_same_bits(bag_model(c, {}, &w, rng), idx,
                         what + " " + std::to_string(bits) + "-bit" + (per_tensor ? " per-tensor" : ""));
      }
    for (int form : {1, 2})  // row-wise tables: s * q + offset per row, or a codebook per row
      for (int bits : {3, 4, 8}) {
        pack::QWeight w = random_qweight("emb", {rows, 5}, 0, bits, false, rng);
        w.form = static_cast<uint8_t>(form);
        std::normal_distribution<float> nd;
        if (form == 1) {
          for (int64_t r = 0; r < rows; ++r) w.offsets.push_back(nd(rng));
        } else {
          for (int64_t i = 0; i < (rows << bits); ++i) w.codebook.push_back(nd(rng));
        }
        expect_same_bits(bag_model(c, {}, &w, rng), idx, what + " form " + std::to_string(form) + " " +
                                                             std::to_string(bits) + "-bit");
      }
  }
}

// The gathered rows are the packed table's dequantized values exactly (what the simulation holds),
// and a bag is their sum in index order.
TEST(EmbeddingBag, SumsThePackedTablesValues) {
  std::mt19937 rng(5);
  const int64_t rows = 17, dim = 9;
  for (int bits : {3, 4, 8}) {
    const pack::QWeight w = random_qweight("emb", {rows, dim}, 0, bits, false, rng);
    const std::vector<float> table = w.dequantize();
    BagCase c{{3, 4}, {1}, true, 0, false};
    rt::Model m(bag_model(c, {}, &w, rng));
    const rt::Tensor idx = random_indices(c.idx_shape, rows, rng);
    const rt::Tensor y = m.run({idx}).at(0);
    ASSERT_EQ(y.shape, (std::vector<int64_t>{3, dim}));
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t t = 0; t < dim; ++t) {
        float s = 0;
        for (int64_t j = 0; j < 4; ++j) s += table[static_cast<size_t>(((idx.i[b * 4 + j] + rows) % rows) * dim + t)];
        EXPECT_EQ(y.f[static_cast<size_t>(b * dim + t)], s) << bits << " " << b << "," << t;
      }
  }
}

// Large enough to be split over threads (>= 64K values per thread): the bags are the same bits on
// 1 and 2 threads, and a bad index is still refused before the threads start.
TEST(EmbeddingBag, ThreadsSplitTheBagsWithTheSameBits) {
  std::mt19937 rng(9);
  const int64_t rows = 300;
  const pack::QWeight w = random_qweight("emb", {rows, 24}, 0, 5, false, rng);
  const pack::PackedModel m = bag_model(BagCase{{16, 700}, {1}, true, 0, false}, {}, &w, rng);
  rt::Tensor idx = random_indices({16, 700}, rows, rng);
  rt::ModelOptions two;
  two.threads = 2;
  rt::Model one(m), par(m, two);
  const std::vector<float> a = one.run({idx}).at(0).f;
  EXPECT_EQ(par.run({idx}).at(0).f, a);
  rt::ModelOptions plain;
  plain.fuse = false;
  EXPECT_EQ(rt::Model(m, plain).run({idx}).at(0).f, a);
  idx.i[16 * 700 - 1] = rows;
  EXPECT_THROW(par.run({idx}), Error);
}

TEST(EmbeddingBag, AnIndexOutsideTheTableNamesTheNode) {
  std::mt19937 rng(2);
  const pack::QWeight w = random_qweight("emb", {10, 4}, 0, 4, false, rng);
  rt::Model m(bag_model(BagCase{{2, 3}, {1}, true, 0, false}, {}, &w, rng));
  rt::Tensor idx = rt::Tensor::ints({2, 3});
  idx.i = {0, 1, 2, 3, 10, 4};
  try {
    m.run({idx});
    FAIL() << "an index past the table ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'emb'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("index 10 outside [-10, 9]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mixq::test
