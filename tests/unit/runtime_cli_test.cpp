// `mixq pack --plan` / `quantize --pack` / `run` / `bench` end to end through the CLI, and the
// errors a user sees for a bad .mxq file: one `error:` line naming the file, exit code 3 (invalid
// model) or 7 (unreadable), never a crash.
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace mixq::test {
namespace {

TEST(RuntimeCli, PackWithPlanRunAndBench) {
  TempDir d;
  const std::string plan = d.file("plan.json"), a = d.file("a.mxq"), b = d.file("b.mxq");
  CliResult q = run_cli({"quantize", fixture("fmnist-mlp"), "--calib", "fmnist:train:256", "--wbits", "3",
                         "--plan-out", plan, "--pack", a, "--eval", "fmnist:test:500", "--no-float-eval", "--json", "-q"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const auto jq = nlohmann::json::parse(q.out);
  EXPECT_EQ(jq["pack"]["predicted_bytes"], jq["size_bytes"]);
  // The plan predicts the whole file (payload + measured structure) to within zlib's few bytes.
  EXPECT_NEAR(jq["pack"]["file_bytes"].get<double>(), jq["size_bytes"].get<double>(), 16);
  // The MLP has no Constant nodes: the payload is exactly the per-layer cost + other initializers.
  EXPECT_EQ(jq["pack"]["payload_bytes"].get<int64_t>(),
            jq["size_bytes"].get<int64_t>() - jq["pack"]["predicted_structure_bytes"].get<int64_t>());
  CliResult p = run_cli({"pack", fixture("fmnist-mlp"), "--plan", plan, "--calib", "fmnist:train:256", "-o", b,
                         "--json", "-q"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_EQ(read_file(a), read_file(b));  // same plan, same calibration: the same bytes
  CliResult r = run_cli({"run", b, "--data", "fmnist:test:500", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto jr = nlohmann::json::parse(r.out);
  EXPECT_NEAR(jr["top1"].get<double>(), jq["top1_quant"].get<double>(), 0.2 + 1e-9);  // one image of 500
  EXPECT_EQ(jr["integer_layers"], 3);
  CliResult bb = run_cli({"bench", b, "--runs", "3", "--runs64", "1", "--json", "-q"});
  ASSERT_EQ(bb.exit_code, 0) << bb.err;
  EXPECT_GT(nlohmann::json::parse(bb.out)["batch1_ms"].get<double>(), 0);
}

TEST(RuntimeCli, BadFilesGetOneClearError) {
  TempDir d;
  const std::string good = d.file("g.mxq");
  CliResult q = run_cli({"pack", fixture("fmnist-mlp"), "--calib", "fmnist:train:64", "-o", good, "-q"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const std::string bytes = read_file(good);
  struct Case {
    std::string name, content, needle;
  };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  const Case cases[] = {{"trunc.mxq", bytes.substr(0, bytes.size() / 3), "truncated"},
                        {"flip.mxq", flipped, "checksum mismatch"},
                        {"text.mxq", "hello, not a model", "not a .mxq file"},
                        {"empty.mxq", "", "truncated"}};
  for (const Case& c : cases) {
    write_file(d.file(c.name), c.content);
    CliResult r = run_cli({"run", d.file(c.name), "--data", "fmnist:test:10"});
    EXPECT_EQ(r.exit_code, 3) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find("error: " + d.file(c.name)), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
  }
  CliResult m = run_cli({"bench", d.file("missing.mxq")});
  EXPECT_EQ(m.exit_code, 7) << m.err;
  CliResult isa = run_cli({"run", good, "--isa", "sse9", "--data", "fmnist:test:10"});
  EXPECT_EQ(isa.exit_code, 2) << isa.err;
}

// `profile X.mxq`: per-node time, multiply-accumulates, GOP/s and share of the measured peak.
TEST(RuntimeCli, ProfileOfAPackedModelShowsRatesAndPeakShare) {
  TempDir d;
  const std::string mxq = d.file("r.mxq");
  CliResult p = run_cli({"pack", fixture("fmnist-resnet"), "--calib", "fmnist:train:64", "-o", mxq, "-q"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  CliResult r = run_cli({"profile", mxq, "--runs", "3", "--data", "fmnist:test:4", "--batch", "2", "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["batch"], 2);
  int64_t macs = 0;
  int convs = 0;
  for (const auto& n : j["nodes"]) {
    EXPECT_GE(n["ms"].get<double>(), 0.0);
    if (n["op"] != "Conv") continue;
    ++convs;
    EXPECT_EQ(n["path"], "int8") << n["node"];
    EXPECT_GT(n["gops"].get<double>(), 0.0) << n["node"];
    if (j["isa"] != "ref") {
      EXPECT_GT(n["peak_share"].get<double>(), 0.0) << n["node"];
      EXPECT_LT(n["peak_share"].get<double>(), 1.5) << n["node"];  // the loop is the peak (noise aside)
    }
    macs += n["macs"].get<int64_t>();
  }
  EXPECT_GT(convs, 0);
  // The model's MACs as `info` counts them (per sample), times the batch.
  CliResult info = run_cli({"info", fixture("fmnist-resnet"), "--json", "-q"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  int64_t conv_macs = 0;
  const auto ji = nlohmann::json::parse(info.out);
  for (const auto& L : ji["layers"])
    if (L["op"] == "Conv") conv_macs += L["macs"].get<int64_t>();
  EXPECT_EQ(macs, 2 * conv_macs);
}

TEST(RuntimeCli, ProfileWritesALatencyTable) {
  TempDir d;
  CliResult r = run_cli({"profile", fixture("fmnist-mlp"), "--bits", "4,8", "--runs", "3", "--rounds", "1", "-o",
                         d.file("lat.json"), "--json", "-q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_file(d.file("lat.json")));
  auto printed = nlohmann::json::parse(r.out);
  EXPECT_GT(printed["peak_rss_mb"].get<double>(), 0.0);  // the CLI adds it to every --json result
  printed.erase("peak_rss_mb");
  EXPECT_EQ(j, printed);
  ASSERT_EQ(j["layers"].size(), 3u);
  for (const auto& L : j["layers"]) {
    for (const char* b : {"32", "4", "8"}) EXPECT_GT(L["ms"][b].get<double>(), 0.0) << L["name"] << " " << b;
    EXPECT_FALSE(L["integer"]["32"].get<bool>());
    EXPECT_TRUE(L["integer"]["4"].get<bool>());
  }
  EXPECT_EQ(run_cli({"profile", fixture("fmnist-mlp"), "--bits", "4,9"}).exit_code, 2);
  // The profile is a latency table: a latency budget between the all-4-bit and all-8-bit sums is
  // met by the IP, in the table's own numbers.
  double lo = 0, hi = 0;
  for (const auto& L : j["layers"]) {
    lo += L["ms"]["4"].get<double>();
    hi += L["ms"]["8"].get<double>();
  }
  const double budget = std::max(lo, hi) * 0.999;
  CliResult q = run_cli({"quantize", fixture("fmnist-mlp"), "--calib", "fmnist:train:128", "--search", "ip",
                         "--pin-bits", "0", "--sens-samples", "64", "--latency-table", d.file("lat.json"),
                         "--budget-latency-ms", std::to_string(budget), "--json", "-q"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const auto jq = nlohmann::json::parse(q.out);
  double used = 0;
  for (const auto& L : jq["layers"])
    for (const auto& P : j["layers"])
      if (P["name"] == L["name"]) used += P["ms"][std::to_string(L["wbits"].get<int>())].get<double>();
  EXPECT_LE(used, budget + 1e-9);
  EXPECT_FALSE(jq["search_params"].contains("infeasible"));
}

}  // namespace
}  // namespace mixq::test
