// Adam for the reconstruction loops: torch::optim::Adam's update (betas 0.9 / 0.999, eps 1e-8, no
// weight decay) in one kernel pass per tensor per step (kernels/recon.h adam_step) instead of
// seven element-wise ops with their temporaries. Parameters must be float32 and contiguous (the
// rounding variables and step sizes are).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace mixq {

class FusedAdam {
 public:
  FusedAdam(std::vector<at::Tensor> params, double lr);
  void zero_grad();  // drops the gradients (the next backward allocates them)
  void step();       // parameters without a gradient are left alone, as torch::optim::Adam does
  void set_lr(double lr) { lr_ = lr; }

 private:
  std::vector<at::Tensor> params_, m_, v_;
  double lr_;
  double beta1_ = 0.9, beta2_ = 0.999, eps_ = 1e-8;
  std::vector<int64_t> steps_;
};

}  // namespace mixq
