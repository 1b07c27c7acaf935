// The op registry: the concatenation of each ops/ file's table. Adding an op = one kernel class in
// the right ops/ file plus one row in that file's table.
#include "exec/ops/ops.h"

namespace mixq {

const std::vector<OpRow>& op_table() {
  static const std::vector<OpRow> table = [] {
    std::vector<OpRow> all;
    for (const auto* part : {&elementwise_op_rows(), &nn_op_rows(), &shape_op_rows()})
      all.insert(all.end(), part->begin(), part->end());
    return all;
  }();
  return table;
}

}  // namespace mixq
