// The HTML report (api/report_html.h): self-contained (no network reference of any kind), every
// section its data asks for, one mark per front point / layer / table cell, names escaped; and
// `quantize --report-html` / `pareto --report-html` write it (never over the input model).
#include <gtest/gtest.h>

#include <string>

#include "api/report_html.h"
#include "test_util.h"

namespace mixq::test {
namespace {

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

void expect_self_contained(const std::string& h) {
  EXPECT_EQ(h.rfind("<!DOCTYPE html>", 0), 0u);
  for (const char* ref : {"http://", "https://", "src=", "href=", "<link", "@import", "url("})
    EXPECT_EQ(h.find(ref), std::string::npos) << ref;
  EXPECT_EQ(count(h, "<svg"), count(h, "</svg>"));
}

TEST(ReportHtml, SectionsMarksAndEscaping) {
  nlohmann::json r = {
      {"title", "mixq quantize <m>.onnx"},
      {"summary", {{"top1_quant", 91.5}, {"size_bytes", 1234}}},
      {"settings", {{"search", "ip"}, {"calib", "a&b"}}},
      {"layers",
       {{{"name", "conv<script>alert(1)</script>"}, {"op", "Conv"}, {"wbits", 8}, {"abits", 8}, {"params", 10}, {"pinned", true}},
        {{"name", "fc"}, {"op", "Gemm"}, {"wbits", 3}, {"abits", 0}, {"params", 100}}}},
      {"front",
       {{{"source", "greedy"}, {"size_bytes", 1000}, {"predicted_dl", 0.5}, {"avg_wbits", 2.0}, {"bops", 1e6}},
        {{"source", "ip@4.00"}, {"size_bytes", 2000}, {"predicted_dl", 0.1}, {"avg_wbits", 4.0}, {"bops", 2e6}},
        {{"source", "ip@8.00"}, {"size_bytes", 4000}, {"predicted_dl", 0.0}, {"avg_wbits", 8.0}, {"bops", 4e6}}}},
      {"chosen", {{"size_bytes", 2100}, {"avg_wbits", 4.1}, {"predicted_dl", 0.09}}},
      {"sensitivity",
       {{"signal", "kl"}, {"candidates", {2, 4, 8}}, {"layers", {"conv", "fc"}}, {"values", {{0.3, 0.01, 0.0}, {1.2, nullptr, 0.0}}}}},
      {"predicted_vs_measured", {{"predicted_dl", 0.09}, {"measured_dl", 0.12}}}};
  const std::string h = render_report_html(r);
  expect_self_contained(h);
  for (const char* sec : {"Summary", "Size vs predicted loss", "Bits per layer", "Sensitivity table",
                          "Predicted vs measured", "Settings"})
    EXPECT_NE(h.find(std::string("<h2>") + sec), std::string::npos) << sec;
  EXPECT_EQ(count(h, "<circle"), 3);           // one per front point
  EXPECT_EQ(count(h, "class=\"chosen\""), 1);  // the chosen plan
  EXPECT_EQ(count(h, "class=\"bar\""), 2);     // one bar per layer
  EXPECT_EQ(count(h, "class=\"abit\""), 1);    // activation tick only where the input is quantized
  EXPECT_EQ(count(h, " at 2 bits: ") + count(h, " at 4 bits: ") + count(h, " at 8 bits: "), 2 * 6);  // cells x (title + tip)
  EXPECT_NE(h.find("not measured"), std::string::npos);
  EXPECT_EQ(h.find("<script>alert"), std::string::npos);
  EXPECT_NE(h.find("conv&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(h.find("a&amp;b"), std::string::npos);
  // Sections without data are left out.
  const std::string bare = render_report_html({{"title", "t"}, {"summary", {{"a", 1}}}});
  expect_self_contained(bare);
  EXPECT_EQ(bare.find("<svg"), std::string::npos);
}

TEST(ReportHtml, QuantizeAndParetoWriteIt) {
  TempDir d;
  const std::string model = fixture("fmnist-resnet");
  CliResult q = run_cli({"quantize", model, "--search", "ip", "--budget-bits", "4", "--sens-samples", "32",
                         "--calib", "fmnist:train:64", "--eval", "fmnist:test:64", "--report-html", d.file("q.html"), "-q"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const std::string h = read_file(d.file("q.html"));
  expect_self_contained(h);
  for (const char* sec : {"Size vs predicted loss", "Bits per layer", "Sensitivity table", "Predicted vs measured"})
    EXPECT_NE(h.find(sec), std::string::npos) << sec;
  EXPECT_EQ(count(h, "class=\"bar\""), 12);  // the fixture's 12 layers
  EXPECT_EQ(count(h, "class=\"chosen\""), 1);
  CliResult p = run_cli({"pareto", model, "--table-out", d.file("t.json"), "--sens-samples", "32", "--calib",
                         "fmnist:train:64", "--report-html", d.file("p.html"), "-q"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  const std::string ph = read_file(d.file("p.html"));
  expect_self_contained(ph);
  EXPECT_NE(ph.find("Sensitivity table"), std::string::npos);
  EXPECT_GT(count(ph, "<circle"), 5);
  // A uniform plan has no table: the report keeps bits per layer and leaves the front out.
  CliResult u = run_cli({"quantize", model, "--wbits", "4", "--calib", "fmnist:train:64", "--report-html",
                         d.file("u.html"), "-q"});
  ASSERT_EQ(u.exit_code, 0) << u.err;
  const std::string uh = read_file(d.file("u.html"));
  EXPECT_NE(uh.find("Bits per layer"), std::string::npos);
  EXPECT_EQ(uh.find("Size vs predicted loss"), std::string::npos);
  // Never over the input model.
  CliResult bad = run_cli({"quantize", model, "--report-html", model, "-q"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("refusing to overwrite the input model"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace mixq::test
