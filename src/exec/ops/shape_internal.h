// Helpers shared by the shape_*.cpp kernel files, and the row tables they contribute to
// shape_op_rows().
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "exec/kernel.h"

namespace mixq {
namespace shape_ops {

// The elements of an integer tensor (any integer dtype, any rank) as int64 values.
std::vector<int64_t> int_values(const at::Tensor& t);
// The elements of a floating tensor as doubles.
std::vector<double> float_values(const at::Tensor& t);

// axis in [-rank, rank) -> [0, rank); a bad axis is a run-time error (the rank is only known then).
int64_t norm_axis(int64_t axis, int64_t rank, const char* what = "axis");

// An int-list operand that comes either from an attribute, from an initializer (both parsed once at
// construction) or from a tensor computed at run time.
class IntList {
 public:
  // From input `index`, when the node has it.
  void from_input(const NodeInfo& info, size_t index);
  // From an attribute value known at construction.
  void set(std::vector<int64_t> v) {
    present_ = constant_ = true;
    values_ = std::move(v);
  }
  // True when the node supplies the operand at all (an empty run-time tensor still counts).
  bool present() const { return present_; }
  const std::vector<int64_t>& get(const std::vector<at::Tensor>& in) {
    if (!constant_) values_ = in[index_].defined() ? int_values(in[index_]) : std::vector<int64_t>{};
    return values_;
  }

 private:
  bool present_ = false;
  bool constant_ = false;
  size_t index_ = 0;
  std::vector<int64_t> values_;
};

[[noreturn]] void runtime_fail(const std::string& msg);

// Row tables of the shape_*.cpp parts.
const std::vector<OpRow>& index_rows();   // shape_index.cpp: Slice, Gather*, Pad
const std::vector<OpRow>& reduce_rows();  // shape_reduce.cpp: Reduce*, ArgMax/ArgMin
const std::vector<OpRow>& resize_rows();  // shape_resize.cpp: Resize, Upsample
// shape_index_more.cpp: GatherND, Scatter*, OneHot, NonZero, TopK, CumSum, Trilu, ...
const std::vector<OpRow>& index_more_rows();

}  // namespace shape_ops
}  // namespace mixq
