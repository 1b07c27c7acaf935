// mixq.info, mixq.supported_ops and mixq.bench: api/info.h and api/bench.h as `mixq info` and
// `mixq bench` call them (JSON crosses as text; the package parses it).
#include "api/bench.h"
#include "api/info.h"
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
}

}  // namespace mixq::py
