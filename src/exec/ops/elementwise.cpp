#include <ATen/ATen.h>

#include "exec/ops/ops.h"

namespace mixq {
namespace {

class Relu final : public OpKernel {
 public:
  explicit Relu(const NodeInfo&) {}
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::relu(in[0]);
  }
};

class Add final : public OpKernel {
 public:
  explicit Add(const NodeInfo& info) {
    if (info.opset() < 7 && info.has_attr("broadcast")) info.unsupported("legacy 'broadcast' attribute");
  }
  void compute(const std::vector<at::Tensor>& in, std::vector<at::Tensor>& out) override {
    out[0] = at::add(in[0], in[1]);
  }
};

}  // namespace

const std::vector<OpRow>& elementwise_op_rows() {
  static const std::vector<OpRow> rows = {
      {"Relu", 6, 17, make_kernel<Relu>},
      {"Add", 7, 17, make_kernel<Add>},
  };
  return rows;
}

}  // namespace mixq
