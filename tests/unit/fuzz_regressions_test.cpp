// Every input a fuzz target found a bug with (issue 21, item 1; docs/reliability.md, "Fuzzing") is
// committed under tests/fuzz_regressions/TARGET/ and fed here through the same reader call as the
// target (fuzz/TARGET.cpp): each must now end in a clean mixq::Error (or be accepted), never a
// crash, an internal error or another exception. The .mxq and runtime inputs are in the targets'
// unpacked form (fuzz/mxq_input.h), turned into .mxq bytes the same way.
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../../fuzz/mxq_input.h"
#include "../../fuzz/plan_template.h"
#include "data/npy.h"
#include "onnx/import.h"
#include "onnx/tensor_proto.h"
#include "pack/mxq_format.h"
#include "runtime/runtime.h"
#include "search/hw_spec.h"
#include "search/sensitivity.h"
#include "test_util.h"

namespace mixq::test {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs(const std::string& target) {
  std::vector<fs::path> v;
  const fs::path d = fs::path(source_dir()) / "tests" / "fuzz_regressions" / target;
  if (fs::is_directory(d))
    for (const auto& e : fs::directory_iterator(d))
      if (e.is_regular_file()) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// `f` must return or throw a mixq::Error that is not kInternal.
template <typename F>
void expect_clean(const fs::path& input, F&& f) {
  SCOPED_TRACE(input.string());
  try {
    f();
  } catch (const Error& e) {
    EXPECT_NE(e.kind(), ErrorKind::kInternal) << e.what();
    EXPECT_FALSE(std::string(e.what()).empty());
    std::printf("  %s: %s\n", input.filename().c_str(), e.what());  // the message a user would see
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a mixq::Error: " << e.what();
  }
}

// Copies the input into a temporary directory as `name` (the readers that take paths).
struct Staged {
  TempDir dir;
  std::string path;
  Staged(const fs::path& input, const std::string& name) {
    path = dir.file(name);
    fs::create_directories(fs::path(path).parent_path());
    fs::copy_file(input, path);
  }
};

TEST(FuzzRegressions, OnnxImport) {
  for (const auto& in : inputs("onnx_import")) {
    TempDir empty;
    expect_clean(in, [&] { load_onnx_bytes(read_bytes(in), in.filename().string(), empty.path()); });
  }
}

TEST(FuzzRegressions, ExternalData) {
  static const char* const kNames[4] = {"weights.bin", "sub/w.bin", "x.data", "w.bin"};
  for (const auto& in : inputs("external_data")) {
    const std::string b = read_bytes(in);
    TempDir dir;
    size_t pos = 0;
    if (b.empty()) continue;
    const int files = uint8_t(b[pos++]) % 4;
    bool whole = true;
    for (int k = 0; k < files && whole; ++k) {
      if (pos + 3 > b.size()) { whole = false; break; }
      const fs::path p = fs::path(dir.path()) / kNames[uint8_t(b[pos]) % 4];
      size_t len = uint8_t(b[pos + 1]) | (size_t(uint8_t(b[pos + 2])) << 8);
      pos += 3;
      len = std::min(len, b.size() - pos);
      fs::create_directories(p.parent_path());
      std::ofstream(p, std::ios::binary).write(b.data() + pos, std::streamsize(len));
      pos += len;
    }
    onnx::TensorProto tp;
    if (!whole || !tp.ParseFromArray(b.data() + pos, int(b.size() - pos))) continue;
    expect_clean(in, [&] { tensor_from_proto(tp, dir.path(), "initializer 'w' in fuzz.onnx"); });
  }
}

TEST(FuzzRegressions, Npy) {
  for (const auto& in : inputs("npy")) {
    const std::string b = read_bytes(in);
    if (b.rfind("PK", 0) == 0) {
      Staged s(in, "in.npz");
      expect_clean(in, [&] { load_npz(s.path); });
    } else {
      expect_clean(in, [&] { parse_npy(b, in.filename().string()); });
    }
  }
}

TEST(FuzzRegressions, TensorPb) {
  for (const auto& in : inputs("tensor_pb")) {
    Staged s(in, "input_0.pb");
    expect_clean(in, [&] { load_tensor_pb(s.path); });
  }
}

TEST(FuzzRegressions, PlanJson) {
  for (const auto& in : inputs("plan_json")) {
    Staged s(in, "plan.json");
    expect_clean(in, [&] { load_plan(s.path, fuzz::plan_model().plan); });
  }
}

TEST(FuzzRegressions, SensitivityTable) {
  for (const auto& in : inputs("sens_table")) {
    Staged s(in, "table.json");
    expect_clean(in, [&] { load_table(s.path); });
  }
}

TEST(FuzzRegressions, HwSpec) {
  const auto& pm = fuzz::plan_model();
  for (const auto& in : inputs("hw_spec")) {
    Staged s(in, "hw.json");
    expect_clean(in, [&] {
      HwSpec hw = load_hw_spec(s.path);
      QuantPlan plan = pm.plan;
      fit_plan_to_spec(plan, hw);
      for (const auto& L : plan.layers) allowed_wbits(hw, L);
      shared_groups(hw, pm.g, plan);
      check_plan_against_spec(plan, hw, pm.g);
    });
  }
}

TEST(FuzzRegressions, Mxq) {
  for (const auto& in : inputs("mxq")) {
    const std::string b = read_bytes(in);
    const std::string bytes = fuzz::mxq_from_fuzz_input(reinterpret_cast<const uint8_t*>(b.data()), b.size());
    expect_clean(in, [&] { pack::write_mxq(pack::read_mxq(bytes, in.filename().string())); });
  }
}

TEST(FuzzRegressions, Runtime) {
  for (const auto& in : inputs("runtime")) {
    const std::string b = read_bytes(in);
    const std::string bytes = fuzz::mxq_from_fuzz_input(reinterpret_cast<const uint8_t*>(b.data()), b.size());
    expect_clean(in, [&] {
      pack::PackedModel pm = pack::read_mxq(bytes, in.filename().string());
      std::vector<rt::Tensor> xs;
      for (const auto& d : pm.inputs) {
        std::vector<int64_t> shape;
        for (int64_t v : d.dims) shape.push_back(v < 0 ? 1 : v);
        if (d.dtype == pack::ElemType::kInt64) {
          auto t = rt::Tensor::ints(shape);
          for (size_t k = 0; k < t.i.size(); ++k) t.i[k] = int64_t(k % 3);
          xs.push_back(std::move(t));
        } else {
          auto t = rt::Tensor::floats(shape);
          for (size_t k = 0; k < t.f.size(); ++k) t.f[k] = std::sin(0.37f * float(k));
          xs.push_back(std::move(t));
        }
      }
      rt::ModelOptions opts;
      opts.threads = 1;
      rt::Model m(std::move(pm), opts);
      m.run(xs);
    });
  }
}

}  // namespace
}  // namespace mixq::test
