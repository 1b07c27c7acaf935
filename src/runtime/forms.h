// Load-time planning of how values travel between the runtime's ops (runtime.cpp calls it once):
//   1. a Relu / Clip (constant bounds) that is the only reader of an integer convolution's output
//      is fused into the convolution's epilogue and skipped; so is a residual Add that is the only
//      reader (its other operand computed earlier becomes an input of the convolution), and a
//      Relu / Clip after that Add;
//   2. each integer convolution writes its output as uint8 codes (NHWC) when every reader is an
//      integer layer with the same input quantizer, both forms when every reader takes one of them,
//      else channels-last float when every reader may take it, else NCHW float. Graph outputs are
//      always NCHW float.
// Readers that cannot take a form at run time get an NCHW copy (Model::run), so a wrong guess here
// costs a transpose, never a wrong result. No libtorch.
#pragma once

#include <memory>
#include <vector>

#include "runtime/ops.h"

namespace mixq::rt {

struct FormStats {
  int fused_acts = 0, fused_adds = 0, codes_outputs = 0, nhwc_outputs = 0, dual_outputs = 0;
};

// ops[i] reads slots op_in[i] (-1: none) and writes op_out[i]; `skip[i]` is set for fused ops
// (their input/output lists are cleared and the producer writes their output slot instead).
FormStats plan_forms(std::vector<std::unique_ptr<Op>>& ops, std::vector<std::vector<int>>& op_in,
                     std::vector<std::vector<int>>& op_out, std::vector<bool>& skip,
                     const std::vector<int>& output_slots, size_t n_slots);

// An NCHW float copy of x's value (x itself when already NCHW float). Codes are an internal error:
// only readers that take them receive them.
void to_nchw(Tensor& x);

}  // namespace mixq::rt
