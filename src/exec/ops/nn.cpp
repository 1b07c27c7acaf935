#include <ATen/ATen.h>

#include "exec/ops/ops.h"

namespace mixq {
namespace {

}  // namespace

const std::vector<OpRow>& nn_op_rows() {
  static const std::vector<OpRow> rows = {
  };
  return rows;
}

}  // namespace mixq
