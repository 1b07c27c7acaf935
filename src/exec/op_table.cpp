// The op registry: the concatenation of each ops/ file's table. Adding an op = one kernel class in
// the right ops/ file plus one row in that file's table.
#include <cstring>

#include "exec/ops/ops.h"

namespace mixq {

namespace {

// Opset 18 changed none of the ops whose rows live in elementwise.cpp and nn_conv.cpp (it changed
// Reduce*, Split, Pad, Resize, ScatterElements/ScatterND, LpPool and the Optional ops), so their
// rows that end at 17 also cover 18. Those two files are being reworked in parallel; this keeps
// the change out of them until their rows can simply say 18.
bool rows_end_at_17_for_now(const OpRow& r) {
  return std::strcmp(r.op_type, "Conv") == 0 || std::strcmp(r.op_type, "ConvTranspose") == 0;
}

}  // namespace

const std::vector<OpRow>& op_table() {
  static const std::vector<OpRow> table = [] {
    std::vector<OpRow> all = elementwise_op_rows();
    for (OpRow& r : all)
      if (r.until == 17) r.until = 18;
    for (OpRow r : nn_op_rows()) {
      if (rows_end_at_17_for_now(r) && r.until == 17) r.until = 18;
      all.push_back(r);
    }
    for (const auto* part : {&shape_op_rows(), &rnn_op_rows(), &elementwise_more_op_rows(),
                             &misc_op_rows()})
      all.insert(all.end(), part->begin(), part->end());
    return all;
  }();
  return table;
}

}  // namespace mixq
