// The model zoo (models/zoo/manifest.json): real architectures from real exporters (torch.onnx,
// paddle2onnx, tf2onnx). For every member, mixq's float outputs on the committed realistic inputs
// (<data>.in.npz) must equal ONNX Runtime's (<name>.ort.npz, written by bench/zoo_ref.py):
// max|mixq - ort| / max(max|ort|, 1e-6) <= the manifest's tolerance (1e-4), output by output.
//
// Generated members (torchvision models too large to commit) are rebuilt into <build>/zoo by
// models/zoo/make_zoo.py with Debian's python3-torch; without it their tests are skipped, saying
// why. A generated file whose sha256 differs from the manifest's is a failure: the references
// were made from other bytes.
//
// A second test per member checks the graph-level view that `mixq info` and quantization start
// from (quantizable layers found; shapes and MACs from a dummy sample equal to those on the data).
//
// known_failures (per member, in the manifest): null, or per check ("float_vs_ort", "layers")
// {"reason": ..., "error": <a substring of today's error, or a list of them>}. Such a check is
// skipped while it fails with that error; it fails when it passes (remove the entry) or fails
// differently (update it), so the list never goes stale silently.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <set>

#include "data/npy.h"
#include "exec/executor.h"
#include "exec/shapes.h"
#include "graph/layers.h"
#include "exec/fold_constants.h"
#include "graph/fold_bn.h"
#include "api/quantize_job.h"
#include "pack/from_qmodel.h"
#include "quant/qdq.h"
#include "runtime/runtime.h"
#include "onnx/import.h"
#include "exec/fidelity.h"
#include "rt_test_util.h"
#include "test_util.h"

namespace mixq::test {
namespace {

std::string zoo_dir() { return models_dir() + "/zoo"; }
std::string gen_dir() { return std::string(MIXQ_BINARY_DIR) + "/zoo"; }

const nlohmann::json& manifest() {
  static const nlohmann::json m = [] {
    std::ifstream f(zoo_dir() + "/manifest.json");
    if (!f.good()) return nlohmann::json::object({{"models", nlohmann::json::array()}});
    return nlohmann::json::parse(f);
  }();
  return m;
}

const nlohmann::json& entry(const std::string& name) {
  for (const auto& e : manifest().at("models"))
    if (e.at("name") == name) return e;
  throw std::runtime_error("no zoo member " + name);
}

std::vector<std::string> zoo_names() {
  std::vector<std::string> v;
  for (const auto& e : manifest().at("models")) v.push_back(e.at("name"));
  return v;
}

// stdout of a shell command ("" on failure), and its exit status.
std::string shell(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

std::string sha256_of(const std::string& path) {
  std::string out = shell("sha256sum '" + path + "' 2>/dev/null");
  return out.size() >= 64 ? out.substr(0, 64) : "";
}

// Where the member's .onnx is, generating it when needed. Empty + *skip set: cannot be had here.
std::string model_path(const nlohmann::json& e, std::string* skip) {
  const std::string name = e.at("name");
  if (e.at("committed").get<bool>()) return source_dir() + "/" + e.at("file").get<std::string>();
  const std::string path = gen_dir() + "/" + e.at("file").get<std::string>();
  if (std::filesystem::exists(path) && sha256_of(path) == e.at("sha256")) return path;
  int st = -1;
  const char* env_py = std::getenv("MIXQ_ZOO_PYTHON");
  const std::string py = env_py && *env_py ? env_py : "/usr/bin/python3";
  shell("'" + py + "' -c 'import torch, torchvision, onnx' >/dev/null 2>&1", &st);
  if (st != 0) {
    *skip = name + " is generated at test time by models/zoo/make_zoo.py, which needs Debian's "
                   "python3-torch, python3-torchvision and python3-onnx under " + py +
            " ($MIXQ_ZOO_PYTHON overrides it); they are not importable there";
    return "";
  }
  const std::string cmd = "'" + py + "' '" + zoo_dir() + "/make_zoo.py' --threads 1 --out '" +
                          gen_dir() + "' --only " + name + " 2>&1";
  std::string log = shell(cmd, &st);
  EXPECT_EQ(st, 0) << "generating " << name << " failed: " << cmd << "\n" << log;
  return path;
}

at::Tensor as_double(const at::Tensor& t) { return t.to(at::kDouble); }

std::string os_shape(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

// Runs the member on its data: through the executor, or packed as `mixq pack --float` does
// (BatchNorm folded, every weight float) through the runtime. Throws what either throws.
std::vector<at::Tensor> run_member(const Graph& g, const std::map<std::string, at::Tensor>& data, bool runtime,
                                   std::string* stage) {
  std::vector<at::Tensor> inputs;
  for (const auto& in : g.inputs) inputs.push_back(data.at(in.name));
  if (!runtime) {
    *stage = "Executor";
    Executor ex(g);
    *stage = "run";
    return ex.run(inputs);
  }
  *stage = "pack";
  QuantizedModel qm;
  qm.graph = g;
  fold_batchnorm(qm.graph);
  rt::Model m(pack_quantized_model(qm));
  *stage = "runtime";
  std::vector<at::Tensor> outs;
  for (auto& y : m.run(to_rt(inputs))) {
    if (y.dtype == pack::ElemType::kFloat32) outs.push_back(at::tensor(y.f, at::kFloat).reshape(y.shape));
    else outs.push_back(at::tensor(y.i, at::kLong).reshape(y.shape));
  }
  return outs;
}

// One line per problem (empty: the member matches ONNX Runtime).
std::vector<std::string> compare_with_ort(const nlohmann::json& e, const std::string& path, bool runtime = false) {
  std::vector<std::string> problems;
  const double tol = e.value("tolerance", 1e-4);
  auto data = load_npz(source_dir() + "/" + e.at("data").get<std::string>());
  auto ref = load_npz(source_dir() + "/" + e.at("reference").get<std::string>());
  std::vector<at::Tensor> outs;
  Graph g;
  std::string stage = "load_model";
  try {
    g = load_model(path);
    for (const auto& in : g.inputs)
      if (!data.count(in.name)) {
        problems.push_back("input '" + in.name + "' is not in " + e.at("data").get<std::string>());
        return problems;
      }
    outs = run_member(g, data, runtime, &stage);
  } catch (const std::exception& err) {
    problems.push_back(stage + ": " + err.what());
    return problems;
  }
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    const std::string& name = g.outputs[i].name;
    auto it = ref.find(name);
    if (it == ref.end()) {
      problems.push_back("output '" + name + "' is not in " + e.at("reference").get<std::string>());
      continue;
    }
    const at::Tensor want = as_double(it->second);
    if (i >= outs.size() || !outs[i].defined()) {
      problems.push_back("output '" + name + "' was not produced");
      continue;
    }
    const at::Tensor got = as_double(outs[i]);
    if (got.sizes() != want.sizes()) {
      std::ostringstream os;
      os << "output '" << name << "': shape " << got.sizes() << ", ONNX Runtime " << want.sizes();
      problems.push_back(os.str());
      continue;
    }
    if (want.numel() == 0) continue;
    const double denom = std::max(want.abs().max().item<double>(), 1e-6);
    const double err = (got - want).abs().max().item<double>() / denom;
    std::printf("[zoo] %s: output '%s' %s max relative error %.3g\n", e.at("name").get<std::string>().c_str(),
                name.c_str(), os_shape(got).c_str(), err);
    if (!(err <= tol)) {  // NaN fails too
      std::ostringstream os;
      os << "output '" << name << "': max relative error " << err << " > " << tol
         << " (max|ort| " << denom << ")";
      problems.push_back(os.str());
    }
  }
  return problems;
}

// The graph-level view `mixq info` and quantization start from: quantizable layers found (weights
// as initializers), one dummy-sample run for shapes and MACs (symbolic dims other than the batch
// become 1), and those shapes equal to the layers' shapes on the real inputs (else MACs, BOPs and
// latency budgets are computed for a sample nobody feeds).
std::vector<std::string> check_layers(const nlohmann::json& e, const std::string& path) {
  std::vector<std::string> problems;
  std::string stage = "load_model";
  try {
    Graph g = load_model(path);
    stage = "find_layers";
    auto layers = find_layers(g);
    if (layers.empty()) problems.push_back("find_layers: no quantizable layer (weights are not initializers?)");
    stage = "Executor";
    Executor ex(g);
    // The shape pass takes dynamic dims from the data's first sample, as quantize/pareto/info --data do.
    auto data = load_npz(source_dir() + "/" + e.at("data").get<std::string>());
    InputShapes shapes;
    for (const auto& in : g.inputs)
      if (data.count(in.name)) shapes[in.name] = data.at(in.name).sizes().vec();
    stage = "annotate_macs (shapes of the data's first sample)";
    annotate_macs(ex, layers, shapes);
    stage = "run on the data";
    std::vector<at::Tensor> inputs;
    for (const auto& in : g.inputs) inputs.push_back(data.at(in.name));
    const int64_t batch = inputs.empty() || inputs[0].dim() == 0 ? 1 : inputs[0].size(0);
    std::vector<std::vector<int64_t>> real(layers.size());
    for (size_t i = 0; i < layers.size(); ++i)
      ex.add_hook(layers[i].output, [&real, i](const std::string&, at::Tensor& t) { real[i] = t.sizes().vec(); });
    ex.run(inputs);
    ex.clear_hooks();
    int mismatched = 0;
    std::string first;
    for (size_t i = 0; i < layers.size(); ++i) {
      // Per-sample sizes must agree (the batch may sit on another axis, e.g. [seq, batch, dim]
      // inside nn.MultiheadAttention, so compare element counts per sample).
      int64_t real_n = 1, pass_n = 1;
      for (auto d : real[i]) real_n *= d;
      for (auto d : layers[i].out_shape) pass_n *= d;
      if (real_n != pass_n * batch && real[i] != layers[i].out_shape) {  // equal: no batch axis (position tables)
        if (mismatched++ == 0) {
          std::ostringstream os;
          os << "layer '" << layers[i].node << "' (" << layers[i].op << "): output " << at::IntArrayRef(layers[i].out_shape)
             << " per sample at the dummy sample but " << at::IntArrayRef(real[i]) << " for " << batch
             << " samples of the data";
          first = os.str();
        }
      }
    }
    if (mismatched)
      problems.push_back("shapes/MACs: " + std::to_string(mismatched) + " of " + std::to_string(layers.size()) +
                         " layers have other shapes on the real inputs than on the dummy sample (symbolic dims "
                         "set to 1), e.g. " + first);
  } catch (const std::exception& err) {
    problems.push_back(stage + ": " + err.what());
  }
  return problems;
}

// Applies the manifest's known_failures[check] to the problems found.
void judge(const nlohmann::json& e, const std::string& check, const std::vector<std::string>& problems) {
  const std::string name = e.at("name");
  std::string all;
  for (const auto& p : problems) all += "\n  " + p;
  const auto& kfs = e.at("known_failures");
  if (kfs.is_object() && kfs.contains(check)) {
    const auto& kf = kfs.at(check);
    const std::string reason = kf.value("reason", "");
    // "error": one substring, or a list of substrings that must all appear.
    std::vector<std::string> expect;
    if (kf.at("error").is_array())
      expect = kf.at("error").get<std::vector<std::string>>();
    else
      expect.push_back(kf.at("error").get<std::string>());
    if (problems.empty()) {
      ADD_FAILURE() << name << " is listed in models/zoo/manifest.json known_failures." << check << " ("
                    << reason << ") but now passes: remove that entry";
      return;
    }
    for (const auto& x : expect)
      if (all.find(x) == std::string::npos) {
        ADD_FAILURE() << name << " fails " << check << " differently from its known_failures entry (expected an "
                      << "error containing \"" << x << "\"; update models/zoo/manifest.json):" << all;
        return;
      }
    GTEST_SKIP() << name << ": known failure of " << check << " (" << reason << "):" << all;
  }
  EXPECT_TRUE(problems.empty()) << name << " (" << e.at("family").get<std::string>() << "), " << check << ":"
                                << all;
}

class Zoo : public ::testing::TestWithParam<std::string> {
 protected:
  // The member's file, checked against the manifest's sha256; "" when it cannot be had (skip).
  std::string path_or_skip(std::string* skip) {
    const auto& e = entry(GetParam());
    const std::string path = model_path(e, skip);
    if (path.empty()) return "";
    EXPECT_TRUE(std::filesystem::exists(path)) << path << " is missing";
    const std::string sha = sha256_of(path);
    EXPECT_EQ(sha, e.at("sha256").get<std::string>())
        << GetParam() << ": " << path << " is not the file the ONNX Runtime references were made from"
        << (e.at("committed").get<bool>()
                ? " (re-run bench/zoo_ref.py after changing a model)"
                : " (make_zoo.py produced other bytes: a torch/torchvision/NumPy other than Debian 12's? "
                  "The references do not apply)");
    return sha == e.at("sha256").get<std::string>() ? path : "";
  }
};

TEST_P(Zoo, FloatOutputsMatchOnnxRuntime) {
  std::string skip;
  const std::string path = path_or_skip(&skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  if (path.empty()) return;  // failure already reported
  judge(entry(GetParam()), "float_vs_ort", compare_with_ort(entry(GetParam()), path));
}

// The packed runtime's float path (what `mixq pack --float` / `mixq run` execute) against the
// same ONNX Runtime references.
TEST_P(Zoo, PackedRuntimeMatchesOnnxRuntime) {
  std::string skip;
  const std::string path = path_or_skip(&skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  if (path.empty()) return;
  judge(entry(GetParam()), "runtime_vs_ort", compare_with_ort(entry(GetParam()), path, true));
}

// W8A8 (mixq's defaults: per-channel weights, first/last layer 8-bit) packed and run by the runtime:
// each output's SQNR against the float model within 1 dB of the fake-quant simulation's (the two
// sum in different orders and may flip an activation code at a rounding tie). Committed members
// only (the 224x224 ones take minutes to quantize here; bench/ covers them).
TEST_P(Zoo, QuantizedRuntimeMatchesSimulation) {
  const auto& e = entry(GetParam());
  if (!e.at("committed").get<bool>()) GTEST_SKIP() << GetParam() << " is generated (224x224): covered in bench/";
  const auto& kfs = e.at("known_failures");
  if (kfs.is_object() && kfs.contains("runtime_vs_ort")) GTEST_SKIP() << GetParam() << ": the runtime cannot run it";
  QuantizeJob job;
  job.model_path = source_dir() + "/" + e.at("file").get<std::string>();
  job.calib = source_dir() + "/" + e.at("data").get<std::string>();
  job.eval_float = false;
  job.search_opts.wbits = job.defaults.wbits = 8;
  job.defaults.abits = 8;
  job.qopts.progress = false;
  QuantizeResult r = run_quantize(job);
  auto data = load_npz(job.calib);
  std::string stage;
  Graph fg = load_model(job.model_path);
  const std::vector<at::Tensor> ref = run_member(fg, data, false, &stage);
  const std::vector<at::Tensor> sim = run_member(qdq_graph(r.qmodel), data, false, &stage);
  std::vector<at::Tensor> inputs;
  for (const auto& in : fg.inputs) inputs.push_back(data.at(in.name));
  rt::Model m(pack_quantized_model(r.qmodel));
  const auto got = m.run(to_rt(inputs));
  ASSERT_EQ(got.size(), ref.size());
  // SQNR of an output against the float model's (exec/fidelity.h, as reports compute it).
  auto sqnr = [](const at::Tensor& want, const at::Tensor& have) {
    FidelityAccumulator acc({"output"});
    acc.add({want}, {have});
    return acc.result().at(0).sqnr_db;
  };
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i].dtype != pack::ElemType::kFloat32) continue;
    const at::Tensor rt_out = at::tensor(got[i].f, at::kFloat).reshape(got[i].shape);
    const double a = sqnr(ref[i], sim[i]), b = sqnr(ref[i], rt_out);
    std::printf("[zoo] %s: output %zu W8A8 SQNR simulation %.2f dB, runtime %.2f dB\n", GetParam().c_str(), i, a, b);
    EXPECT_NEAR(b, a, 1.0) << GetParam() << " output " << i;
  }
}

TEST_P(Zoo, LayerInventory) {
  std::string skip;
  const std::string path = path_or_skip(&skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  if (path.empty()) return;
  judge(entry(GetParam()), "layers", check_layers(entry(GetParam()), path));
}

INSTANTIATE_TEST_SUITE_P(Models, Zoo, ::testing::ValuesIn(zoo_names()),
                         [](const auto& info) { return info.param; });

// The zoo keeps its promises: files present, inputs named after the graph inputs, committed files
// small, the breadth the issue asks for.
TEST(ZooManifest, FilesAndCoverage) {
  const auto& models = manifest().at("models");
  ASSERT_GE(models.size(), 8u) << "models/zoo/manifest.json is missing or lists too few models";
  std::set<std::string> exporters, kinds;
  std::set<int64_t> opsets;
  uintmax_t committed_bytes = 0;
  int pretrained = 0;
  for (const auto& e : models) {
    const std::string name = e.at("name");
    for (const char* key : {"data", "reference"}) {
      const std::string f = source_dir() + "/" + e.at(key).get<std::string>();
      EXPECT_TRUE(std::filesystem::exists(f)) << name << ": " << f;
      if (std::filesystem::exists(f)) committed_bytes += std::filesystem::file_size(f);
    }
    if (e.at("committed").get<bool>()) {
      const std::string f = source_dir() + "/" + e.at("file").get<std::string>();
      ASSERT_TRUE(std::filesystem::exists(f)) << name << ": " << f;
      EXPECT_LT(std::filesystem::file_size(f), 6u << 20) << name << ": committed zoo files stay small";
      committed_bytes += std::filesystem::file_size(f);
    } else {
      EXPECT_TRUE(e.at("generate").is_string()) << name << ": a generated member says how";
    }
    auto data = load_npz(source_dir() + "/" + e.at("data").get<std::string>());
    for (const auto& in : e.at("inputs")) EXPECT_TRUE(data.count(in.at("name"))) << name << ": " << in.at("name");
    exporters.insert(e.at("exporter").get<std::string>().substr(0, 8));
    opsets.insert(e.at("opset").at("ai.onnx").get<int64_t>());
    for (const auto& o : e.at("outputs")) kinds.insert(o.at("kind"));
    if (e.contains("package_sha256")) ++pretrained;
  }
  EXPECT_LT(committed_bytes, 30u << 20) << "the committed zoo should stay well under 30 MB";
  EXPECT_GE(exporters.size(), 2u);
  EXPECT_GE(pretrained, 2);
  EXPECT_GE(opsets.size(), 5u);
  for (const char* k : {"classes", "boxes", "sequence", "embedding", "segmentation map"})
    EXPECT_TRUE(kinds.count(k)) << "no zoo member has a '" << k << "' output";
}

}  // namespace
}  // namespace mixq::test
