#include "api/rt_data.h"

#include <ATen/ATen.h>

#include <cstdlib>

#include "mixq/error.h"

namespace mixq {

std::unique_ptr<Dataset> open_dataset_for(const pack::PackedModel& m, const std::string& spec,
                                          const PreprocessOverride& pre) {
  Graph g;  // only what open_dataset and preprocess_from_metadata read
  g.metadata = m.metadata;
  for (const auto& d : m.inputs) {
    ValueInfo v;
    v.name = d.name;
    // .mxq declares every integer input int64 (the runtime's one integer type); int32 / bool data
    // for it is widened by to_runtime, so only float inputs pin their dtype here.
    v.dtype = d.dtype == pack::ElemType::kFloat32 ? DType::kFloat : DType::kUndefined;
    v.has_shape = true;
    v.dims = d.dims;
    v.dim_names.assign(d.dims.size(), "");
    g.inputs.push_back(v);
  }
  return open_dataset(spec, g.inputs, pre.over(preprocess_from_metadata(g)));
}

std::vector<at::Tensor> from_runtime(const std::vector<rt::Tensor>& v) {
  std::vector<at::Tensor> out;
  for (const auto& t : v) {
    if (t.dtype == pack::ElemType::kFloat32)
      out.push_back(at::tensor(at::ArrayRef<float>(t.f), at::kFloat).reshape(t.shape));
    else
      out.push_back(at::tensor(at::ArrayRef<int64_t>(t.i), at::kLong).reshape(t.shape));
  }
  return out;
}

std::vector<rt::Tensor> to_runtime(const Batch& b) {
  std::vector<rt::Tensor> v;
  for (const at::Tensor& t0 : b.inputs) {
    rt::Tensor t;
    t.shape.assign(t0.sizes().begin(), t0.sizes().end());
    if (at::isFloatingType(t0.scalar_type())) {
      at::Tensor c = t0.to(at::kFloat).contiguous();
      t.f.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    } else {
      at::Tensor c = t0.to(at::kLong).contiguous();
      t.dtype = pack::ElemType::kInt64;
      t.i.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
    }
    v.push_back(std::move(t));
  }
  return v;
}

kernels::Isa parse_isa(const std::string& s) {
  if (s.empty() || s == "auto") return kernels::default_isa();
  for (kernels::Isa isa : {kernels::Isa::kRef, kernels::Isa::kAvx2, kernels::Isa::kAvx512})
    if (s == kernels::isa_name(isa)) {
      MIXQ_CHECK(kernels::isa_supported(isa), ErrorKind::kInvalidArgument, "--isa ", s, ": this CPU lacks it (best: ",
                 kernels::isa_name(kernels::detect_isa()), ")");
      return isa;
    }
  throw Error(ErrorKind::kInvalidArgument, "--isa must be auto, ref, avx2 or avx512 (got '" + s + "')");
}

rt::ModelOptions runtime_options(const std::string& isa, int threads) {
  rt::ModelOptions mo;
  mo.isa = parse_isa(isa);
  mo.threads = threads > 0 ? threads : 1;
  // MIXQ_LOWBIT=0 keeps every integer layer on int8 weights: the before/after of the low-bit
  // kernels, measured on one build (BENCHMARKS.md).
  if (const char* e = std::getenv("MIXQ_LOWBIT")) mo.lowbit = std::string(e) != "0";
  return mo;
}

}  // namespace mixq
