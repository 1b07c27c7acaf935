// Runs ONNX's own operator test suite (Debian's libonnx-testdata) through mixq's executor.
//
// Every case whose operators mixq registers is run and compared with the stored outputs using
// ONNX's backend-test tolerances (rtol 1e-3, atol 1e-7; exact for integers and bools). A case ends
// as one of:
//   pass        outputs match
//   unsupported mixq refused it with an explicit kUnsupported error (e.g. a dtype or an attribute
//               value mixq does not implement); the reason is printed
//   xfail       listed in known_failures.txt with the reason
//   FAIL        wrong numbers, wrong shape/dtype, or any other error: the run fails
// Cases that use an operator mixq does not register are counted as "op not implemented".
//
// Usage: onnx_node_tests [--data DIR] [--filter SUBSTR] [--summary FILE] [--known FILE] [-v]
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

#include "exec/executor.h"
#include "node_suite.h"
#include "onnx/import.h"

namespace fs = std::filesystem;
using namespace mixq;
using node_suite::load_series;

namespace {

struct Outcome {
  std::string status;  // pass, unsupported, xfail, FAIL
  std::string reason;
};

std::string lower_no_us(std::string s) {
  std::string out;
  for (char c : s)
    if (c != '_') out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The operator a case is about: the longest op type among its nodes that prefixes the case name.
std::string primary_op(const Graph& g, const std::string& case_name) {
  std::string key = lower_no_us(case_name.substr(5));  // strip "test_"
  std::string best;
  for (const auto& n : g.nodes) {
    std::string op = lower_no_us(n.op_type);
    if (key.rfind(op, 0) == 0 && n.op_type.size() > best.size()) best = n.op_type;
  }
  return best.empty() ? (g.nodes.empty() ? "?" : g.nodes.front().op_type) : best;
}

std::string compare(const at::Tensor& want, const at::Tensor& got) {
  std::ostringstream os;
  if (want.scalar_type() != got.scalar_type()) {
    os << "dtype " << got.scalar_type() << ", expected " << want.scalar_type();
    return os.str();
  }
  if (!want.sizes().equals(got.sizes())) {
    os << "shape " << got.sizes() << ", expected " << want.sizes();
    return os.str();
  }
  if (want.numel() == 0) return "";
  if (at::isFloatingType(want.scalar_type())) {
    at::Tensor w = want.to(at::kDouble), g = got.to(at::kDouble);
    at::Tensor nan_w = w.isnan(), nan_g = g.isnan();
    if (!at::equal(nan_w, nan_g)) return "NaN positions differ";
    w = w.masked_fill(nan_w, 0);
    g = g.masked_fill(nan_g, 0);
    at::Tensor inf_w = w.isinf();
    if (!at::equal(inf_w, g.isinf()) || !at::equal(w.masked_select(inf_w), g.masked_select(inf_w)))
      return "infinities differ";
    w = w.masked_fill(inf_w, 0);
    g = g.masked_fill(inf_w, 0);
    at::Tensor err = (w - g).abs();
    at::Tensor tol = 1e-7 + 1e-3 * w.abs();
    if ((err > tol).any().item<bool>()) {
      auto idx = (err - tol).argmax().item<int64_t>();
      os << "values differ: max |err| " << err.max().item<double>() << " (at flat index " << idx
         << ": got " << g.flatten()[idx].item<double>() << ", expected "
         << w.flatten()[idx].item<double>() << ")";
      return os.str();
    }
    return "";
  }
  if (!at::equal(want, got)) {
    at::Tensor ne = want.ne(got).flatten();
    auto idx = ne.to(at::kInt).argmax().item<int64_t>();
    os << "values differ at flat index " << idx << ": got "
       << got.flatten()[idx].item<double>() << ", expected " << want.flatten()[idx].item<double>();
    return os.str();
  }
  return "";
}

Outcome run_case(const fs::path& dir, const Graph& graph) {
  Executor ex(graph);  // may throw (unsupported attribute, opset...)
  for (const auto& set : fs::directory_iterator(dir)) {
    if (!set.is_directory() || set.path().filename().string().rfind("test_data_set_", 0) != 0)
      continue;
    auto inputs = load_series(set.path(), "input_");
    auto want = load_series(set.path(), "output_");
    // Some cases feed fewer inputs than the graph declares (optional inputs at the end).
    if (inputs.size() != graph.inputs.size())
      return {"FAIL", "test data has " + std::to_string(inputs.size()) + " inputs, graph has " +
                          std::to_string(graph.inputs.size())};
    auto got = ex.run(inputs);
    if (got.size() != want.size())
      return {"FAIL", "produced " + std::to_string(got.size()) + " outputs, expected " +
                          std::to_string(want.size())};
    for (size_t i = 0; i < want.size(); ++i) {
      std::string diff = compare(want[i], got[i].contiguous());
      if (!diff.empty()) return {"FAIL", "output " + std::to_string(i) + ": " + diff};
    }
  }
  return {"pass", ""};
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

  struct OpStats { int pass = 0, unsupported = 0, xfail = 0, fail = 0; std::vector<std::string> notes; };
  std::map<std::string, OpStats> per_op;
  std::map<std::string, int> not_implemented;  // op -> cases
  int n_fail = 0, n_run = 0;
  std::set<std::string> seen_known;

  for (const auto& dir : cases) {
    std::string name = dir.filename().string();
    Graph g;
    try {
      g = load_onnx((dir / "model.onnx").string());
    } catch (const Error& e) {
      // The importer refused the model itself (e.g. a sequence-typed input): listed under
      // "(import)" with the reason; anything but an explicit kUnsupported is a failure.
      std::string reason = e.what();
      auto pos = reason.find("model.onnx: ");
      if (pos != std::string::npos) reason = reason.substr(pos + 12);
      OpStats& st = per_op["(import)"];
      ++n_run;
      if (e.kind() == ErrorKind::kUnsupported) {
        st.unsupported++;
        st.notes.push_back("  unsupported " + name + ": " + reason);
      } else {
        st.fail++;
        n_fail++;
        st.notes.push_back("  FAIL " + name + ": " + reason);
        std::cout << "FAIL " << name << ": " << reason << "\n";
      }
      continue;
    }
    std::string missing;
    for (const auto& n : g.nodes)
      if (!op_known(n.op_type)) { missing = n.op_type; break; }
    if (!missing.empty()) {
      not_implemented[missing]++;
      continue;
    }
    std::string op = primary_op(g, name);
    Outcome oc;
    try {
      oc = run_case(dir, g);
    } catch (const Error& e) {
      oc = {e.kind() == ErrorKind::kUnsupported ? "unsupported" : "FAIL", e.what()};
    } catch (const std::exception& e) {
      oc = {"FAIL", std::string("exception: ") + e.what()};
    }
    // Strip the long model path prefix from messages.
    auto pos = oc.reason.find("model.onnx: ");
    if (pos != std::string::npos) oc.reason = oc.reason.substr(pos + 12);
    if (oc.status == "FAIL" && known.count(name)) oc = {"xfail", known[name]};
    if (known.count(name)) seen_known.insert(name);
    if (oc.status == "pass" && known.count(name))
      oc = {"FAIL", "listed in known_failures but passes now: remove it from the list"};
    ++n_run;
    OpStats& st = per_op[op];
    if (oc.status == "pass") st.pass++;
    else if (oc.status == "unsupported") st.unsupported++;
    else if (oc.status == "xfail") st.xfail++;
    else { st.fail++; n_fail++; }
    if (oc.status != "pass") st.notes.push_back("  " + oc.status + " " + name + ": " + oc.reason);
    if (verbose || oc.status == "FAIL") std::cout << oc.status << " " << name << (oc.reason.empty() ? "" : ": " + oc.reason) << "\n";
  }

  std::ostringstream sum;
  int tp = 0, tu = 0, tx = 0;
  sum << "ONNX node tests (" << data << "): per operator, cases run by mixq\n";
  for (const auto& [op, st] : per_op) {
    int total = st.pass + st.unsupported + st.xfail + st.fail;
    tp += st.pass; tu += st.unsupported; tx += st.xfail;
    char line[256];
    std::snprintf(line, sizeof line, "%-24s %3d/%-3d pass", op.c_str(), st.pass, total);
    sum << line;
    if (st.unsupported) sum << ", " << st.unsupported << " unsupported";
    if (st.xfail) sum << ", " << st.xfail << " known failure" << (st.xfail > 1 ? "s" : "");
    if (st.fail) sum << ", " << st.fail << " FAILED";
    sum << "\n";
    for (const auto& n : st.notes) sum << n << "\n";
  }
  int skipped = 0;
  for (const auto& kv : not_implemented) skipped += kv.second;
  sum << "cases run: " << n_run << " (pass " << tp << ", unsupported " << tu << ", known failures "
      << tx << ", FAILED " << n_fail << "); cases using operators mixq does not implement: "
      << skipped << "\n";
  std::cout << sum.str();
  if (!summary_path.empty()) {
    std::ofstream f(summary_path);
    f << sum.str();
  }
  std::cout << tp << " passed, " << n_fail << " failed, " << (tu + tx) << " skipped\n";
  return n_fail == 0 ? 0 : 1;
}
