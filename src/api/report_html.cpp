#include "api/report_html.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

namespace mixq {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string num(double v, int prec = 4) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", prec, v);
  return b;
}

std::string text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return num(v.get<double>(), 5);
  return v.dump();
}

double get(const nlohmann::json& o, const char* k, double dflt = NAN) {
  return o.contains(k) && o[k].is_number() ? o[k].get<double>() : dflt;
}

// A colour from a 0..1 value: five stops of a perceptually ordered ramp (dark blue -> yellow).
std::string ramp(double t) {
  static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  char b[16];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", static_cast<int>(stops[i][0] + f * (stops[i + 1][0] - stops[i][0])),
                static_cast<int>(stops[i][1] + f * (stops[i + 1][1] - stops[i][1])),
                static_cast<int>(stops[i][2] + f * (stops[i + 1][2] - stops[i][2])));
  return b;
}

// One mark's hover text: <title> for every reader, data-tip for the script.
std::string tip(const std::string& s) { return " data-tip=\"" + esc(s) + "\"><title>" + esc(s) + "</title>"; }

std::string kv_table(const nlohmann::json& o) {
  std::ostringstream h;
  h << "<table class=\"kv\">";
  for (auto it = o.begin(); it != o.end(); ++it)
    h << "<tr><th>" << esc(it.key()) << "</th><td>" << esc(text(it.value())) << "</td></tr>";
  h << "</table>\n";
  return h.str();
}

struct Axis {
  double lo, hi, px0, px1;
  double at(double v) const { return hi > lo ? px0 + (v - lo) / (hi - lo) * (px1 - px0) : (px0 + px1) / 2; }
};

Axis axis(std::vector<double> v, double px0, double px1) {
  if (v.empty()) return {0, 1, px0, px1};
  const auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  const double pad = (*mx - *mn) * 0.05 + 1e-12;
  return {*mn - pad, *mx + pad, px0, px1};
}

std::string ticks(const Axis& a, bool x, double other, double scale = 1.0) {
  std::ostringstream h;
  for (int i = 0; i <= 4; ++i) {
    const double v = a.lo + (a.hi - a.lo) * i / 4, p = a.at(v);
    if (x)
      h << "<text x=\"" << num(p) << "\" y=\"" << num(other + 16) << "\" class=\"t\" text-anchor=\"middle\">"
        << num(v * scale, 3) << "</text>";
    else
      h << "<text x=\"" << num(other - 6) << "\" y=\"" << num(p + 4) << "\" class=\"t\" text-anchor=\"end\">"
        << num(v * scale, 3) << "</text>";
  }
  return h.str();
}

std::string front_svg(const nlohmann::json& front, const nlohmann::json& chosen) {
  const double W = 720, H = 360, L = 70, R = 20, T = 20, B = 44;
  std::vector<double> xs, ys;
  for (const auto& p : front) {
    xs.push_back(get(p, "size_bytes"));
    ys.push_back(get(p, "predicted_dl"));
  }
  if (chosen.is_object() && chosen.contains("size_bytes")) {
    xs.push_back(get(chosen, "size_bytes"));
    ys.push_back(get(chosen, "predicted_dl", 0));
  }
  const Axis ax = axis(xs, L, W - R), ay = axis(ys, H - B, T);
  std::ostringstream h;
  h << "<svg viewBox=\"0 0 " << W << ' ' << H << "\" class=\"chart\" role=\"img\" aria-label=\"front\">"
    << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" class=\"frame\"/>" << ticks(ax, true, H - B, 1.0 / 1024) << ticks(ay, false, L)
    << "<text x=\"" << (W + L) / 2 << "\" y=\"" << H - 6 << "\" text-anchor=\"middle\">model size (KiB)</text>"
    << "<text x=\"14\" y=\"" << (H - B + T) / 2 << "\" transform=\"rotate(-90 14 " << (H - B + T) / 2
    << ")\" text-anchor=\"middle\">predicted loss increase</text>";
  for (const auto& p : front) {
    const std::string src = p.value("source", std::string("?"));
    h << "<circle cx=\"" << num(ax.at(get(p, "size_bytes"))) << "\" cy=\"" << num(ay.at(get(p, "predicted_dl")))
      << "\" r=\"4\" class=\"" << (src == "greedy" ? "pg" : "pi") << "\""
      << tip(src + ": " + num(get(p, "avg_wbits"), 3) + " bits, " + num(get(p, "size_bytes") / 1024, 4) +
             " KiB, predicted dL " + num(get(p, "predicted_dl")) + ", " + num(get(p, "bops") / 1e9, 4) + " GBOPs")
      << "</circle>";
  }
  if (chosen.is_object() && chosen.contains("size_bytes")) {
    const double cx = ax.at(get(chosen, "size_bytes")), cy = ay.at(get(chosen, "predicted_dl", 0));
    h << "<path d=\"M" << num(cx) << ' ' << num(cy - 8) << " l8 8 l-8 8 l-8 -8 z\" class=\"chosen\""
      << tip("chosen plan: " + num(get(chosen, "avg_wbits"), 3) + " bits, " + num(get(chosen, "size_bytes") / 1024, 4) +
             " KiB, predicted dL " + num(get(chosen, "predicted_dl", 0)))
      << "</path>";
  }
  h << "</svg><p class=\"legend\"><span class=\"sw pg\"></span> greedy curve <span class=\"sw pi\"></span> "
       "integer-program optima <span class=\"sw chosen\"></span> chosen plan</p>\n";
  return h.str();
}

std::string bits_svg(const nlohmann::json& layers) {
  const double n = static_cast<double>(layers.size()), L = 40, T = 14, Hp = 200, B = 24;
  const double bw = std::max(6.0, std::min(28.0, 680.0 / std::max(1.0, n))), W = L + bw * n + 10;
  std::ostringstream h;
  h << "<svg viewBox=\"0 0 " << num(W) << ' ' << Hp + T + B << "\" class=\"chart\" role=\"img\" aria-label=\"bits\">";
  for (int b = 2; b <= 8; b += 2)
    h << "<line x1=\"" << L << "\" x2=\"" << num(W - 10) << "\" y1=\"" << num(T + Hp - Hp * b / 8) << "\" y2=\""
      << num(T + Hp - Hp * b / 8) << "\" class=\"grid\"/><text x=\"" << L - 6 << "\" y=\""
      << num(T + Hp - Hp * b / 8 + 4) << "\" class=\"t\" text-anchor=\"end\">" << b << "</text>";
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    const double wb = get(l, "wbits", 0), ab = get(l, "abits", 0), x = L + bw * static_cast<double>(i);
    const std::string name = l.value("name", std::string("?"));
    h << "<rect x=\"" << num(x + 1) << "\" y=\"" << num(T + Hp - Hp * wb / 8) << "\" width=\"" << num(bw - 2)
      << "\" height=\"" << num(Hp * wb / 8) << "\" fill=\"" << ramp((wb - 1) / 7) << "\" class=\"bar\""
      << tip(name + " (" + l.value("op", std::string("")) + "): " + num(wb) + "-bit weights, " +
             (ab > 0 ? num(ab) + "-bit input" : std::string("float input")) + ", " + num(get(l, "params", 0), 6) +
             " params" + (l.value("pinned", false) ? ", pinned" : ""))
      << "</rect>";
    if (ab > 0)
      h << "<line x1=\"" << num(x + 1) << "\" x2=\"" << num(x + bw - 1) << "\" y1=\"" << num(T + Hp - Hp * ab / 8)
        << "\" y2=\"" << num(T + Hp - Hp * ab / 8) << "\" class=\"abit\"/>";
  }
  h << "<text x=\"" << L << "\" y=\"" << Hp + T + 18 << "\">layers in network order (" << layers.size()
    << ")</text></svg><p class=\"legend\">bar: weight bits (colour by bits); tick: input activation bits</p>\n";
  return h.str();
}

std::string heatmap(const nlohmann::json& s) {
  const auto& cands = s["candidates"];
  const auto& names = s["layers"];
  const auto& vals = s["values"];
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& row : vals)
    for (const auto& v : row)
      if (v.is_number() && v.get<double>() > 0) {
        lo = std::min(lo, std::log10(v.get<double>()));
        hi = std::max(hi, std::log10(v.get<double>()));
      }
  const double cw = 44, ch = 14, L = 260, T = 22;
  std::ostringstream h;
  h << "<svg viewBox=\"0 0 " << num(L + cw * static_cast<double>(cands.size()) + 10) << ' '
    << num(T + ch * static_cast<double>(names.size()) + 6) << "\" class=\"chart heat\" role=\"img\" aria-label=\"sensitivity\">";
  for (size_t j = 0; j < cands.size(); ++j)
    h << "<text x=\"" << num(L + cw * (static_cast<double>(j) + 0.5)) << "\" y=\"14\" text-anchor=\"middle\" class=\"t\">"
      << text(cands[j]) << " bit</text>";
  for (size_t i = 0; i < names.size(); ++i) {
    const double y = T + ch * static_cast<double>(i);
    std::string nm = text(names[i]);
    if (nm.size() > 40) nm = "..." + nm.substr(nm.size() - 37);
    h << "<text x=\"" << L - 6 << "\" y=\"" << num(y + ch - 3) << "\" text-anchor=\"end\" class=\"t\">" << esc(nm)
      << "</text>";
    for (size_t j = 0; j < cands.size() && i < vals.size() && j < vals[i].size(); ++j) {
      const auto& v = vals[i][j];
      const bool pos = v.is_number() && v.get<double>() > 0;
      const std::string fill = !v.is_number() ? "#eee" : pos ? ramp(hi > lo ? (std::log10(v.get<double>()) - lo) / (hi - lo) : 0.5) : "#fff";
      h << "<rect x=\"" << num(L + cw * static_cast<double>(j)) << "\" y=\"" << num(y) << "\" width=\"" << cw - 1
        << "\" height=\"" << ch - 1 << "\" fill=\"" << fill << "\""
        << tip(text(names[i]) + " at " + text(cands[j]) + " bits: " + (v.is_number() ? num(v.get<double>()) : "not measured"))
        << "</rect>";
    }
  }
  h << "</svg><p class=\"legend\">colour: log10 of the " << esc(text(s["signal"]))
    << " increase (dark: small, yellow: large); white: no increase; grey: not measured</p>\n";
  return h.str();
}

const char* kStyle =
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222}"
    "h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}"
    "table.kv{border-collapse:collapse}table.kv th{text-align:left;padding:2px 12px 2px 0;font-weight:600}"
    "table.kv td{padding:2px 0;font-family:monospace}.chart{width:100%;height:auto}.heat{max-width:100%}"
    ".frame{fill:none;stroke:#999}.t{font-size:11px;fill:#555}.grid{stroke:#eee}.pg{fill:#3b528b}"
    ".pi{fill:#21918c}.chosen{fill:#d62728}.sw.pg{background:#3b528b}.sw.pi{background:#21918c}"
    ".sw.chosen{background:#d62728}.abit{stroke:#d62728;stroke-width:2}.legend{font-size:12px;color:#555}"
    ".sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}.hl{stroke:#000;stroke-width:2}"
    "#tip{position:fixed;display:none;background:#222;color:#fff;padding:4px 8px;border-radius:4px;"
    "font-size:12px;pointer-events:none;max-width:480px}";
const char* kScript =
    "(function(){var t=document.getElementById('tip');document.querySelectorAll('[data-tip]').forEach("
    "function(e){e.addEventListener('mousemove',function(v){t.textContent=e.getAttribute('data-tip');"
    "t.style.display='block';t.style.left=(v.clientX+12)+'px';t.style.top=(v.clientY+12)+'px';"
    "e.classList.add('hl')});e.addEventListener('mouseleave',function(){t.style.display='none';"
    "e.classList.remove('hl')})})})();";

}  // namespace

nlohmann::json sensitivity_matrix(const SensitivityTable& t, const std::string& signal) {
  std::vector<int> cands;
  for (const LayerSens& l : t.layers)
    for (const auto& [b, e] : l.bits) cands.push_back(b);
  std::sort(cands.begin(), cands.end());
  cands.erase(std::unique(cands.begin(), cands.end()), cands.end());
  nlohmann::json names = nlohmann::json::array(), values = nlohmann::json::array();
  for (const LayerSens& l : t.layers) {
    names.push_back(l.name);
    nlohmann::json row = nlohmann::json::array();
    for (int b : cands) {
      auto it = l.bits.find(b);
      row.push_back(it == l.bits.end() ? nlohmann::json(nullptr) : nlohmann::json(signal_value(it->second, signal)));
    }
    values.push_back(row);
  }
  return {{"signal", signal}, {"candidates", cands}, {"layers", names}, {"values", values}};
}

std::string render_report_html(const nlohmann::json& r) {
  const std::string title = r.value("title", std::string("mixq report"));
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << esc(title)
    << "</title><style>" << kStyle << "</style></head><body>\n<h1>" << esc(title) << "</h1>\n";
  // One <section id=...> per part: linkable (report.html#bits), and what the rendering check
  // (bench/report_screenshots.py) photographs one at a time.
  auto section = [&h](const char* id, const char* heading, const std::string& body) {
    h << "<section id=\"" << id << "\"><h2>" << heading << "</h2>\n" << body << "</section>\n";
  };
  if (r.contains("summary")) section("summary", "Summary", kv_table(r["summary"]));
  if (r.contains("front") && !r["front"].empty())
    section("front", "Size vs predicted loss (the front)", front_svg(r["front"], r.value("chosen", nlohmann::json())));
  if (r.contains("layers") && !r["layers"].empty()) section("bits", "Bits per layer", bits_svg(r["layers"]));
  if (r.contains("sensitivity") && !r["sensitivity"]["layers"].empty())
    section("sensitivity", "Sensitivity table", heatmap(r["sensitivity"]));
  if (r.contains("predicted_vs_measured")) {
    const auto& p = r["predicted_vs_measured"];
    section("predicted", "Predicted vs measured",
            "<p>Calibration loss increase of the chosen plan: predicted (sum of single-layer increases from the "
            "sensitivity table) <b>" + num(get(p, "predicted_dl")) + "</b>, measured <b>" +
                num(get(p, "measured_dl")) + "</b>.</p>\n");
  }
  if (r.contains("settings")) section("settings", "Settings", kv_table(r["settings"]));
  h << "<div id=\"tip\"></div><script>" << kScript << "</script>\n</body></html>\n";
  return h.str();
}

}  // namespace mixq
