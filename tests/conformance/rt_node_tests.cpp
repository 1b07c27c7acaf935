// Runs ONNX's own operator test suite (Debian's libonnx-testdata) through the packed runtime: each
// case whose operators the runtime registers is imported, packed as a float model (the path
// `mixq pack --float` takes) and run by rt::Model on the stored inputs, outputs compared with
// ONNX's backend-test tolerances (rtol 1e-3, atol 1e-7; exact for integers). The runtime holds
// float32 and int64 tensors only: a case with other dtypes is "unsupported (dtype)". Outcomes as in
// onnx_node_tests.cpp: pass, unsupported (an explicit kUnsupported/kInvalidModel refusal at load,
// reason printed), xfail (known_failures_rt.txt), FAIL (wrong numbers or any other error).
//
// Usage: rt_node_tests [--data DIR] [--filter SUBSTR] [--summary FILE] [--known FILE] [-v]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "node_suite.h"
#include "onnx/import.h"
#include "pack/from_qmodel.h"
#include "runtime/ops.h"
#include "runtime/runtime.h"

namespace fs = std::filesystem;
using namespace mixq;
using node_suite::load_series;

namespace {

struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The runtime holds bool and int32 values as int64 (bool as 0 / 1).
bool held_as_int64(at::ScalarType s) { return s == at::kLong || s == at::kInt || s == at::kBool; }

rt::Tensor to_rt(const at::Tensor& t0) {
  at::Tensor t = held_as_int64(t0.scalar_type()) ? t0.to(at::kLong).contiguous() : t0.contiguous();
  rt::Tensor r;
  r.shape.assign(t.sizes().begin(), t.sizes().end());
  if (t.scalar_type() == at::kFloat) {
    r.f.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  } else if (t.scalar_type() == at::kLong) {
    r.dtype = pack::ElemType::kInt64;
    r.i.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  } else {
    throw Unsupported(std::string("dtype ") + c10::toString(t.scalar_type()));
  }
  return r;
}

std::string compare(const at::Tensor& want0, const rt::Tensor& got) {
  std::ostringstream os;
  const at::Tensor want = held_as_int64(want0.scalar_type()) ? want0.to(at::kLong).contiguous() : want0.contiguous();
  if (!want.sizes().equals(at::IntArrayRef(got.shape))) {
    os << "shape " << rt::shape_str(got.shape) << ", expected " << want.sizes();
    return os.str();
  }
  const bool is_float = want.scalar_type() == at::kFloat;
  if (is_float != (got.dtype == pack::ElemType::kFloat32)) return "dtype differs";
  for (int64_t k = 0; k < want.numel(); ++k) {
    if (is_float) {
      const double w = want.data_ptr<float>()[k], g = got.f[static_cast<size_t>(k)];
      if (std::isnan(w) != std::isnan(g) || (std::isinf(w) && w != g) ||
          (std::isfinite(w) && !(std::fabs(w - g) <= 1e-7 + 1e-3 * std::fabs(w)))) {
        os << "values differ at flat index " << k << ": got " << g << ", expected " << w;
        return os.str();
      }
    } else if (want.data_ptr<int64_t>()[k] != got.i[static_cast<size_t>(k)]) {
      os << "values differ at flat index " << k << ": got " << got.i[static_cast<size_t>(k)] << ", expected "
         << want.data_ptr<int64_t>()[k];
      return os.str();
    }
  }
  return "";
}

// Layers whose weights (every input after the first) the runtime needs stored, as exported models
// store them: the node tests feed them as graph inputs, so they become initializers here.
bool weights_stored(const std::string& op) {
  return op == "Conv" || op == "ConvTranspose" || op == "Gemm" || op == "BatchNormalization";
}

// "pass", or what differs; throws Unsupported / mixq::Error.
std::string run_case(const fs::path& dir, const Graph& g) {
  for (const auto& set : fs::directory_iterator(dir)) {
    if (!set.is_directory() || set.path().filename().string().rfind("test_data_set_", 0) != 0) continue;
    auto inputs = load_series(set.path(), "input_");
    auto want = load_series(set.path(), "output_");
    if (inputs.size() != g.inputs.size()) throw Unsupported("test data omits optional inputs");
    for (const auto& w : want)
      if (w.scalar_type() != at::kFloat && !held_as_int64(w.scalar_type()))
        throw Unsupported(std::string("output dtype ") + c10::toString(w.scalar_type()));
    QuantizedModel qm;
    qm.graph = g;
    std::set<std::string> stored;
    for (const auto& n : g.nodes)
      if (weights_stored(n.op_type))
        for (size_t k = 1; k < n.inputs.size(); ++k) stored.insert(n.inputs[k]);
    std::vector<rt::Tensor> in;
    qm.graph.inputs.clear();
    for (size_t k = 0; k < g.inputs.size(); ++k) {
      if (stored.count(g.inputs[k].name)) {
        qm.graph.initializers[g.inputs[k].name] = inputs[k];
      } else {
        qm.graph.inputs.push_back(g.inputs[k]);
        in.push_back(to_rt(inputs[k]));
      }
    }
    rt::Model model(pack_quantized_model(qm));
    auto got = model.run(in);
    if (got.size() != want.size()) return "produced " + std::to_string(got.size()) + " outputs";
    for (size_t i = 0; i < want.size(); ++i) {
      std::string d = compare(want[i], got[i]);
      if (!d.empty()) return "output " + std::to_string(i) + ": " + d;
    }
  }
  return "pass";
}

}  // namespace

int main(int argc, char** argv) {
  node_suite::Args args;
  if (int rc = node_suite::parse_args(argc, argv, args)) return rc;
  const std::string& data = args.data;
  const std::string& summary_path = args.summary_path;
  const bool verbose = args.verbose;
  auto& known = args.known;
  const std::vector<fs::path>& cases = args.cases;

  std::map<std::string, std::map<std::string, int>> per_op;  // op -> status -> count
  std::vector<std::string> notes;
  int n_fail = 0;
  for (const auto& dir : cases) {
    const std::string name = dir.filename().string();
    Graph g;
    try {
      g = load_onnx((dir / "model.onnx").string());
    } catch (const Error&) {
      continue;  // the importer's own refusals are onnx_node_tests' business
    }
    std::string op;
    bool all = !g.nodes.empty();
    for (const auto& n : g.nodes) {
      all = all && rt::find_op(n.op_type) != nullptr;
      if (op.empty() || name.find("test_" + n.op_type) == 0) op = n.op_type;
    }
    if (!all) continue;
    std::string status, reason;
    try {
      reason = run_case(dir, g);
      status = reason == "pass" ? "pass" : "FAIL";
    } catch (const Unsupported& e) {
      status = "unsupported", reason = e.what();
    } catch (const Error& e) {
      const bool refusal = e.kind() == ErrorKind::kUnsupported || e.kind() == ErrorKind::kInvalidModel;
      status = refusal ? "unsupported" : "FAIL", reason = e.what();
    } catch (const std::exception& e) {
      status = "FAIL", reason = std::string("exception: ") + e.what();
    }
    if (status == "FAIL" && known.count(name)) status = "xfail", reason = known[name];
    else if (status == "pass" && known.count(name)) status = "FAIL", reason = "listed as a known failure but passes";
    per_op[op][status]++;
    if (status == "FAIL") ++n_fail;
    if (status != "pass") notes.push_back("  " + status + " " + name + ": " + reason);
    if (verbose || status == "FAIL") std::cout << status << " " << name << ": " << reason << "\n";
  }
  std::ostringstream sum;
  int tp = 0, total = 0;
  sum << "ONNX node tests through the packed runtime (" << data << "), per operator:\n";
  for (const auto& [op, st] : per_op) {
    int n = 0;
    for (const auto& kv : st) n += kv.second;
    total += n;
    tp += st.count("pass") ? st.at("pass") : 0;
    char line[160];
    std::snprintf(line, sizeof line, "%-22s %3d/%-3d pass", op.c_str(), st.count("pass") ? st.at("pass") : 0, n);
    sum << line;
    for (const auto& [s, c] : st)
      if (s != "pass") sum << ", " << c << " " << s;
    sum << "\n";
  }
  for (const auto& n : notes) sum << n << "\n";
  sum << "cases run: " << total << ", pass " << tp << ", FAILED " << n_fail << "\n";
  std::cout << sum.str();
  if (!summary_path.empty()) std::ofstream(summary_path) << sum.str();
  return n_fail == 0 ? 0 : 1;
}
