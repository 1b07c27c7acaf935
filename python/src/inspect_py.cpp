// mixq.info, supported_ops, bench and profile: api/info.h, api/bench.h and api/profile.h as
// `mixq info`, `mixq bench` and `mixq profile` call them (JSON crosses as text; the package parses it).
#include "api/bench.h"
#include "api/info.h"
#include "api/profile.h"
#include "api/rt_data.h"
#include "module.h"

namespace mixq::py {

void register_inspect(pyb::module_& m) {
  m.def(
      "info",
      [](const std::string& model, const std::string& data, const std::vector<std::string>& input_shapes, bool blocks) {
        pyb::gil_scoped_release nogil;
        if (blocks) return model_units(model).dump();
        return model_info(InfoOptions{model, data, {}, input_shapes}).dump();
      },
      pyb::arg("model"), pyb::arg("data"), pyb::arg("input_shapes"), pyb::arg("blocks"));
  m.def("supported_ops", []() { return supported_ops().dump(); });
  m.def(
      "bench",
      [](const std::string& model, const std::string& data, int runs, int runs64, const std::string& onnx,
         const std::string& isa, int threads, bool node_profile) {
        BenchOptions o;
        o.model = model;
        o.data = data;
        o.runs = runs;
        o.runs64 = runs64;
        o.onnx = onnx;
        o.node_profile = node_profile;
        pyb::gil_scoped_release nogil;
        return bench_packed(o, runtime_options(isa, threads)).dump();
      },
      pyb::arg("model"), pyb::arg("data"), pyb::arg("runs"), pyb::arg("runs64"), pyb::arg("onnx"), pyb::arg("isa"),
      pyb::arg("threads"), pyb::arg("node_profile"));
  m.def(
      "profile_packed",
      [](const std::string& model, const std::string& data, int batch, int runs, const std::string& isa, int threads,
         const std::string& out) {
        pyb::gil_scoped_release nogil;
        const nlohmann::json j = profile_packed(PackedProfileOptions{model, data, batch, runs}, runtime_options(isa, threads));
        if (!out.empty()) save_profile(out, model, j);
        return j.dump();
      },
      pyb::arg("model"), pyb::arg("data"), pyb::arg("batch"), pyb::arg("runs"), pyb::arg("isa"), pyb::arg("threads"),
      pyb::arg("out"));
  m.def(
      "latency_table",
      [](const std::string& model, const std::string& calib, const std::vector<int>& bits, int abits, int runs,
         int rounds, const std::string& isa, int threads, const std::string& out) {
        LatencyTableOptions o;
        o.model = model;
        o.calib = calib;
        o.bits = bits;
        o.abits = abits;
        o.runs = runs;
        o.rounds = rounds;
        pyb::gil_scoped_release nogil;
        const nlohmann::json j = latency_table(o, runtime_options(isa, threads));
        if (!out.empty()) save_profile(out, model, j);
        return j.dump();
      },
      pyb::arg("model"), pyb::arg("calib"), pyb::arg("bits"), pyb::arg("abits"), pyb::arg("runs"), pyb::arg("rounds"),
      pyb::arg("isa"), pyb::arg("threads"), pyb::arg("out"));
}

}  // namespace mixq::py
