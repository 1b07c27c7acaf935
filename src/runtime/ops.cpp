#include "runtime/ops.h"

#include <algorithm>
#include <sstream>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mixq/error.h"
#include "runtime/buffer_pool.h"

namespace mixq::rt {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "]";
  return os.str();
}

int omp_thread() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

void parallel_ranges(int threads, int64_t n, int64_t cost_per_item, int64_t align,
                     const std::function<void(int64_t, int64_t)>& f) {
  constexpr int64_t kMinWork = int64_t{1} << 16;
  align = std::max<int64_t>(align, 1);
  const int64_t parts = std::min<int64_t>({threads, n / align, n * cost_per_item / kMinWork});
  if (parts <= 1) {
    if (n > 0) f(0, n);
    return;
  }
  auto bound = [&](int64_t p) { return p == parts ? n : n * p / parts / align * align; };
#pragma omp parallel for num_threads(static_cast<int>(parts)) schedule(static)
  for (int64_t p = 0; p < parts; ++p) f(bound(p), bound(p + 1));
}

Tensor output_floats(std::vector<int64_t> shape, const RunCtx& ctx) {
  if (!ctx.pool) return Tensor::floats(std::move(shape));
  Tensor t;
  t.shape = std::move(shape);
  t.f = ctx.pool->floats(static_cast<size_t>(t.numel()));
  return t;
}

int64_t BuildCtx::int_attr(const std::string& k, int64_t def) const {
  const pack::Attr* a = node.attr(k);
  if (!a) return def;
  MIXQ_CHECK(a->type == pack::Attr::kInt, ErrorKind::kInvalidModel, desc, ": attribute '", k, "' is not an int");
  return a->i;
}

float BuildCtx::float_attr(const std::string& k, float def) const {
  const pack::Attr* a = node.attr(k);
  if (!a) return def;
  MIXQ_CHECK(a->type == pack::Attr::kFloat, ErrorKind::kInvalidModel, desc, ": attribute '", k, "' is not a float");
  return a->f;
}

std::vector<int64_t> BuildCtx::ints_attr(const std::string& k, std::vector<int64_t> def) const {
  const pack::Attr* a = node.attr(k);
  if (!a) return def;
  MIXQ_CHECK(a->type == pack::Attr::kInts, ErrorKind::kInvalidModel, desc, ": attribute '", k, "' is not ints");
  return a->ints;
}

void check_window_2d(const BuildCtx& c, const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
                     const std::vector<int64_t>& dilations, const std::vector<int64_t>& pads) {
  constexpr int64_t kMaxWindow = int64_t(1) << 24;
  MIXQ_CHECK(kernel.size() == 2 && strides.size() == 2 && dilations.size() == 2 && pads.size() == 4,
             ErrorKind::kInvalidModel, c.desc, ": kernel_shape/strides/dilations/pads do not match a 2-D window");
  for (int d = 0; d < 2; ++d) {
    for (auto [name, v] : {std::pair{"kernel", kernel[d]}, {"stride", strides[d]}, {"dilation", dilations[d]}})
      MIXQ_CHECK(v >= 1 && v <= kMaxWindow, ErrorKind::kInvalidModel, c.desc, ": ", name, " ", v,
                 " is outside [1, ", kMaxWindow, "] (corrupt file?)");
    const int64_t extent = dilations[d] * (kernel[d] - 1) + 1;
    for (int64_t p : {pads[d], pads[d + 2]})
      MIXQ_CHECK(p >= 0 && p < extent, ErrorKind::kInvalidModel, c.desc, ": pads ", shape_str(pads),
                 " must be >= 0 and smaller than the (dilated) kernel extent ", extent,
                 " on each side (a larger pad sees only padding; re-export the model)");
  }
}

const pack::Tensor* BuildCtx::const_input(size_t idx) const {
  if (idx >= node.inputs.size() || node.inputs[idx].empty()) return nullptr;
  auto it = consts.find(node.inputs[idx]);
  return it == consts.end() ? nullptr : it->second;
}

const OpRow* find_op(const std::string& op) {
  for (const auto* rows : {&elementwise_rows(), &shape_rows(), &conv_rows(), &linear_rows(), &pool_rows(), &tensor_rows(), &select_rows(),
                            &slice_rows(), &upsample_rows(), &rnn_rows(), &multipoint_rows()})
    for (const auto& r : *rows)
      if (op == r.op) return &r;
  return nullptr;
}

std::vector<std::string> supported_ops() {
  std::vector<std::string> v;
  for (const auto* rows : {&elementwise_rows(), &shape_rows(), &conv_rows(), &linear_rows(), &pool_rows(), &tensor_rows(), &select_rows(),
                            &slice_rows(), &upsample_rows(), &rnn_rows(), &multipoint_rows()})
    for (const auto& r : *rows) v.push_back(r.op);
  return v;
}

}  // namespace mixq::rt
