// The runtime's tensor-assembly operators: Shape (with opset-15 start/end) and Concat, on float
// and int64 tensors (the Shape -> Gather -> Concat -> Reshape chains of dynamic-batch exports,
// and feature concatenation in detection and segmentation heads).
#include <algorithm>
#include <cstdint>

#include "mixq/error.h"
#include "runtime/ops.h"

namespace mixq::rt {

namespace {

class ShapeOp : public Op {
 public:
  int64_t start = 0, end = INT64_MAX;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx&) override {
    const int64_t r = in[0]->rank();
    auto clamp = [r](int64_t i) { return std::max<int64_t>(0, std::min(r, i < 0 ? i + r : i)); };
    const int64_t b = clamp(start), e = clamp(end);
    Tensor y = Tensor::ints({std::max<int64_t>(0, e - b)});
    for (int64_t i = b; i < e; ++i) y.i[i - b] = in[0]->shape[i];
    out[0] = std::move(y);
  }
};

class ConcatOp : public Op {
 public:
  int64_t axis = 0;
  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    const Tensor* first = nullptr;
    for (const Tensor* t : in)
      if (t) first = first ? first : t;
    RT_CHECK(first, this, "has no inputs");
    const int64_t r = first->rank();
    const int64_t ax = axis < 0 ? axis + r : axis;
    RT_CHECK(ax >= 0 && ax < r, this, "axis ", axis, " outside rank ", r);
    std::vector<int64_t> shape = first->shape;
    shape[ax] = 0;
    for (const Tensor* t : in) {
      if (!t) continue;
      RT_CHECK(t->dtype == first->dtype && t->rank() == r, this, "inputs ", shape_str(first->shape), " and ",
               shape_str(t->shape), " differ in type or rank");
      for (int64_t d = 0; d < r; ++d)
        RT_CHECK(d == ax || t->shape[d] == first->shape[d], this, "inputs ", shape_str(first->shape), " and ",
                 shape_str(t->shape), " differ outside axis ", ax);
      shape[ax] += t->shape[ax];
    }
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < ax; ++d) outer *= shape[d];
    for (int64_t d = ax + 1; d < r; ++d) inner *= shape[d];
    const bool f = first->dtype == ElemType::kFloat32;
    Tensor y = f ? output_floats(shape, ctx) : Tensor::ints(shape);  // (every element written)
    int64_t offset = 0;  // along the axis
    for (const Tensor* t : in) {
      if (!t) continue;
      const int64_t rows = t->shape[ax] * inner;
      for (int64_t o = 0; o < outer; ++o) {
        const int64_t dst = (o * shape[ax] + offset) * inner, src = o * rows;
        if (f) std::copy_n(t->f.data() + src, rows, y.f.data() + dst);
        else std::copy_n(t->i.data() + src, rows, y.i.data() + dst);
      }
      offset += t->shape[ax];
    }
    out[0] = std::move(y);
  }
};

std::unique_ptr<Op> make_shape(const BuildCtx& c) {
  auto op = std::make_unique<ShapeOp>();
  op->start = c.int_attr("start", 0);
  op->end = c.int_attr("end", INT64_MAX);
  return op;
}
std::unique_ptr<Op> make_concat(const BuildCtx& c) {
  auto op = std::make_unique<ConcatOp>();
  MIXQ_CHECK(c.node.attr("axis"), ErrorKind::kInvalidModel, c.desc, ": Concat needs an axis attribute");
  op->axis = c.int_attr("axis", 0);
  return op;
}

}  // namespace

const std::vector<OpRow>& tensor_rows() {
  static const std::vector<OpRow> rows = {
      {"Shape", make_shape, 1},
      {"Concat", make_concat, 1},
  };
  return rows;
}

}  // namespace mixq::rt
