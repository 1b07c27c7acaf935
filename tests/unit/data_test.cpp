// Datasets: Fashion-MNIST, .npy/.npz, TensorProto .pb, and the preprocessing metadata.
#include <ATen/ATen.h>
#include <onnx/onnx_pb.h>
#include <zip.h>

#include "data/dataset.h"
#include "data/npy.h"
#include "onnx/import.h"
#include "graph_util.h"
#include "test_util.h"

namespace mixq::test {
namespace {

ValueInfo image_input() { return float_value("input", {-1, 1, 28, 28}, {"batch", "", "", ""}); }
ValueInfo vec_input(int64_t n) { return float_value("x", {-1, n}); }

TEST(Fmnist, LoadsBothSplitsWithLabels) {
  auto train = open_dataset("fmnist:train", {image_input()});
  auto test = open_dataset("fmnist:test", {image_input()});
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  Batch b = test->get(0, 3);
  ASSERT_EQ(b.inputs.size(), 1u);
  EXPECT_EQ(b.inputs[0].sizes(), at::IntArrayRef({3, 1, 28, 28}));
  EXPECT_EQ(b.labels.scalar_type(), at::kLong);
  // The first test images are an ankle boot (9), a pullover (2) and trousers (1).
  EXPECT_EQ(b.labels[0].item<int64_t>(), 9);
  EXPECT_EQ(b.labels[1].item<int64_t>(), 2);
  EXPECT_EQ(b.labels[2].item<int64_t>(), 1);
  // Default preprocessing: pixel/255 in [0, 1].
  EXPECT_GE(b.inputs[0].min().item<float>(), 0.0f);
  EXPECT_LE(b.inputs[0].max().item<float>(), 1.0f);
  EXPECT_EQ(open_dataset("fmnist:train:100", {image_input()})->size(), 100);
}

TEST(Fmnist, AppliesNormalizationInFloat32Order) {
  Preprocess pp;
  pp.mean = {0.2860f};
  pp.std = {0.3530f};
  auto raw = open_dataset("fmnist:test:4", {image_input()});
  auto norm = open_dataset("fmnist:test:4", {image_input()}, pp);
  at::Tensor x = raw->get(0, 4).inputs[0];
  at::Tensor want = (x - 0.2860f) / 0.3530f;
  EXPECT_TRUE(at::equal(norm->get(0, 4).inputs[0], want));
}

TEST(Fmnist, RejectsBadSpecs) {
  EXPECT_THROW(open_dataset("fmnist:valid", {image_input()}), Error);
  EXPECT_THROW(open_dataset("fmnist:test:-3", {image_input()}), Error);
  EXPECT_THROW(open_dataset("fmnist:test:abc", {image_input()}), Error);
  EXPECT_THROW(open_dataset("fmnist:test", {vec_input(4)}), Error);
}

TEST(Npy, RoundTripsEveryDtype) {
  TempDir dir;
  std::vector<std::pair<std::string, at::ScalarType>> types = {
      {"<f4", at::kFloat}, {"<f8", at::kDouble}, {"<f2", at::kHalf}, {"<i8", at::kLong},
      {"<i4", at::kInt},   {"<i2", at::kShort},  {"|i1", at::kChar}, {"|u1", at::kByte},
      {"|b1", at::kBool}};
  for (const auto& [descr, st] : types) {
    at::Tensor t = (at::arange(30) % 7).reshape({2, 3, 5}).to(st);
    std::string path = dir.file("a.npy");
    write_npy(path, descr, {2, 3, 5}, t.data_ptr(), static_cast<size_t>(t.nbytes()));
    at::Tensor back = load_npy(path);
    EXPECT_EQ(back.scalar_type(), st) << descr;
    EXPECT_TRUE(at::equal(back, t)) << descr;
  }
  // 1-D and 0-length shapes.
  std::vector<float> v = {1, 2, 3};
  write_npy(dir.file("v.npy"), "<f4", {3}, v.data(), 12);
  EXPECT_EQ(load_npy(dir.file("v.npy")).sizes(), at::IntArrayRef({3}));
  write_npy(dir.file("e.npy"), "<f4", {0, 4}, nullptr, 0);
  EXPECT_EQ(load_npy(dir.file("e.npy")).sizes(), at::IntArrayRef({0, 4}));
}

TEST(Npy, SaveLoadRoundTrip) {
  TempDir dir;
  for (auto st : {at::kFloat, at::kDouble, at::kLong, at::kByte, at::kBool}) {
    at::Tensor t = (at::arange(24) % 5).reshape({2, 3, 4}).to(st);
    save_npy(dir.file("t.npy"), t.transpose(0, 2));  // non-contiguous input is made contiguous
    EXPECT_TRUE(at::equal(load_npy(dir.file("t.npy")), t.transpose(0, 2).contiguous())) << st;
  }
  save_npy(dir.file("v.npy"), at::ones({5}));
  EXPECT_EQ(load_npy(dir.file("v.npy")).sizes(), at::IntArrayRef({5}));
}

TEST(Npy, RejectsBigEndianFortranAndGarbage) {
  TempDir dir;
  std::vector<float> v(4, 1.0f);
  write_npy(dir.file("be.npy"), ">f4", {4}, v.data(), 16);
  EXPECT_THROW(load_npy(dir.file("be.npy")), Error);
  write_npy(dir.file("c.npy"), "<c8", {2}, v.data(), 16);
  EXPECT_THROW(load_npy(dir.file("c.npy")), Error);
  write_file(dir.file("g.npy"), "not numpy at all");
  EXPECT_THROW(load_npy(dir.file("g.npy")), Error);
  std::string fortran = read_file(dir.file("be.npy"));
  fortran.replace(fortran.find(">f4"), 3, "<f4");
  fortran.replace(fortran.find("False"), 5, "True ");
  write_file(dir.file("f.npy"), fortran);
  EXPECT_THROW(load_npy(dir.file("f.npy")), Error);
}

// Writes an .npz with the given (name, npy bytes) entries, stored or deflated.
void write_npz(const std::string& path, const std::vector<std::pair<std::string, std::string>>& entries,
               bool deflate) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(z, nullptr);
  std::vector<std::string> keep;
  keep.reserve(entries.size());
  for (const auto& [name, bytes] : entries) {
    keep.push_back(bytes);
    zip_source_t* src = zip_source_buffer(z, keep.back().data(), keep.back().size(), 0);
    zip_int64_t idx = zip_file_add(z, (name + ".npy").c_str(), src, ZIP_FL_OVERWRITE);
    ASSERT_GE(idx, 0);
    zip_set_file_compression(z, static_cast<zip_uint64_t>(idx), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(z), 0);
}

TEST(Npz, FindsInputsByNameOrAliasAndLabels) {
  TempDir dir;
  for (bool deflate : {false, true}) {
    at::Tensor x = at::randn({6, 4});
    at::Tensor y = at::arange(6) % 3;
    write_npy(dir.file("x.npy"), "<f4", {6, 4}, x.data_ptr(), 96);
    write_npy(dir.file("y.npy"), "<i8", {6}, y.data_ptr(), 48);
    write_npz(dir.file("d.npz"), {{"x", read_file(dir.file("x.npy"))}, {"labels", read_file(dir.file("y.npy"))}},
              deflate);
    auto ds = open_dataset(dir.file("d.npz"), {vec_input(4)});
    EXPECT_EQ(ds->size(), 6);
    ASSERT_TRUE(ds->has_labels());
    Batch b = ds->get(2, 5);
    EXPECT_TRUE(at::equal(b.inputs[0], x.slice(0, 2, 5)));
    EXPECT_TRUE(at::equal(b.labels, y.slice(0, 2, 5)));
  }
  // Named after the model input, no labels.
  at::Tensor x = at::randn({2, 4});
  write_npy(dir.file("x.npy"), "<f4", {2, 4}, x.data_ptr(), 32);
  write_npz(dir.file("n.npz"), {{"x", read_file(dir.file("x.npy"))}}, true);
  EXPECT_FALSE(open_dataset(dir.file("n.npz"), {vec_input(4)})->has_labels());
  // Wrong feature size.
  EXPECT_THROW(open_dataset(dir.file("n.npz"), {vec_input(5)}), Error);
  // Garbage archive.
  write_file(dir.file("bad.npz"), "PK\x03\x04 broken");
  EXPECT_THROW(open_dataset(dir.file("bad.npz"), {vec_input(4)}), Error);
}

TEST(TensorPb, LoadsOnnxTestDataLayout) {
  TempDir dir;
  onnx::TensorProto tp;
  tp.set_name("x");
  tp.set_data_type(onnx::TensorProto::FLOAT);
  tp.add_dims(3);
  tp.add_dims(4);
  for (int i = 0; i < 12; ++i) tp.add_float_data(static_cast<float>(i));
  write_file(dir.file("input_0.pb"), tp.SerializeAsString());
  auto ds = open_dataset(dir.path(), {vec_input(4)});
  EXPECT_EQ(ds->size(), 3);
  EXPECT_FALSE(ds->has_labels());
  EXPECT_TRUE(at::equal(ds->get(0, 3).inputs[0], at::arange(12, at::kFloat).reshape({3, 4})));
  auto single = open_dataset(dir.file("input_0.pb"), {vec_input(4)});
  EXPECT_EQ(single->size(), 3);
  write_file(dir.file("junk.pb"), "\xff\xff\xff");
  EXPECT_THROW(open_dataset(dir.file("junk.pb"), {vec_input(4)}), Error);
}

TEST(Preprocess, ReadsModelMetadata) {
  Graph g;
  g.metadata["mixq.input_mean"] = "0.5";
  g.metadata["mixq.input_std"] = "0.25";
  bool found = false;
  Preprocess pp = preprocess_from_metadata(g, &found);
  EXPECT_TRUE(found);
  EXPECT_FLOAT_EQ(pp.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(pp.std[0], 0.25f);
  EXPECT_FLOAT_EQ(pp.scale, 1.0f / 255.0f);
  g.metadata["mixq.input_std"] = "zero";
  EXPECT_THROW(preprocess_from_metadata(g), Error);
}

}  // namespace
}  // namespace mixq::test
