// mixq.Runtime: a packed .mxq model on the libtorch-free runtime, as `mixq run` / `mixq bench` use it.
#include "api/rt_data.h"
#include "convert.h"
#include "mixq/error.h"
#include "module.h"

namespace mixq::py {

namespace {

struct PyRuntime {
  std::unique_ptr<rt::Model> model;
  std::string path;

  std::vector<std::string> input_names() const {
    std::vector<std::string> v;
    for (const auto& d : model->packed().inputs) v.push_back(d.name);
    return v;
  }
  std::vector<std::string> output_names() const {
    std::vector<std::string> v;
    for (const auto& d : model->packed().outputs) v.push_back(d.name);
    return v;
  }

  // `inputs`: one array per model input, in order.
  std::vector<pyb::array> run(const std::vector<pyb::array>& inputs) {
    const auto names = input_names();
    MIXQ_CHECK(inputs.size() == names.size(), ErrorKind::kInvalidData, path, ": the model takes ", names.size(),
               " inputs, got ", inputs.size());
    Batch b;
    for (size_t i = 0; i < inputs.size(); ++i) b.inputs.push_back(tensor_from_array(inputs[i], "input '" + names[i] + "'"));
    std::vector<at::Tensor> outs;
    {
      pyb::gil_scoped_release nogil;
      outs = from_runtime(model->run(to_runtime(b)));
    }
    std::vector<pyb::array> r;
    for (const auto& t : outs) r.push_back(array_from_tensor(t));
    return r;
  }
};

}  // namespace

void register_runtime(pyb::module_& m) {
  pyb::class_<PyRuntime>(m, "Runtime")
      .def(pyb::init([](const std::string& path, const std::string& isa, int threads) {
             auto r = std::make_unique<PyRuntime>();
             r->path = path;
             r->model = std::make_unique<rt::Model>(rt::Model::load(path, runtime_options(isa, threads)));
             return r;
           }),
           pyb::arg("path"), pyb::arg("isa") = "auto", pyb::arg("threads") = 0)
      .def_property_readonly("input_names", &PyRuntime::input_names)
      .def_property_readonly("output_names", &PyRuntime::output_names)
      .def_property_readonly("isa", [](const PyRuntime& r) { return std::string(kernels::isa_name(r.model->isa())); })
      .def("run", &PyRuntime::run)
      .def("layers", [](const PyRuntime& r) {
        pyb::list out;
        for (const auto& p : r.model->layer_paths()) {
          pyb::dict d;
          d["node"] = p.node;
          d["op"] = p.op;
          d["integer"] = p.int_path;
          d["why_float"] = p.why_float;
          d["kernel"] = p.kernel;
          d["weight_bytes"] = p.weight_bytes;
          out.append(d);
        }
        return out;
      });
}

}  // namespace mixq::py
