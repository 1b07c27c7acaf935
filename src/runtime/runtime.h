// The libtorch-free runtime: loads a .mxq model and runs it on float32 (and int64) tensors.
//
//   rt::Model m = rt::Model::load("model.mxq");        // or Model(PackedModel)
//   std::vector<rt::Tensor> y = m.run({x});            // x: [batch, ...] float32
//
// Load checks the graph (every value defined before use, every op supported, weights attached to
// the layer that reads them) and prepares each op once (weights unpacked for the chosen ISA). A
// Model is not safe to run from two threads at once; `threads` sets the kernels' thread count.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "pack/mxq_format.h"
#include "runtime/buffer_pool.h"
#include "runtime/ops.h"
#include "runtime/tensor.h"

namespace mixq::rt {

struct ModelOptions {
  kernels::Isa isa = kernels::default_isa();  // MIXQ_ISA or the best this CPU has
  int threads = 1;
  bool lowbit = true;  // keep < 8-bit weights packed where the runtime's rule says (ops_linear.cpp)
  // Fuse Relu/Clip into integer layers and pass codes / channels-last values between them
  // (runtime/forms.h). Off: every value is NCHW float, as the scalar reference of the forms (the
  // outputs are the same bits either way). MIXQ_RT_UNFUSED=1 turns it off.
  bool fuse = true;
  // Float convolutions (layers the plan leaves float, the fp32 configuration) on oneDNN, with the
  // fused forms only; off (or MIXQ_RT_DNNL=0): our own im2col + sgemm, bit-identical to the
  // reference. oneDNN sums in another order (and with FMA), so outputs differ within float rounding.
  bool dnnl = true;
  // Integer GEMMs with 8-bit weights run their epilogue inside the register tiles (kernels/gemm_epi.h,
  // AVX-512) instead of storing int32 sums for a second pass; the same bits either way. Off (or
  // MIXQ_RT_GEMM_EPI=0): the two passes, for comparisons.
  bool gemm_epilogue = true;
  // MatMul -> scale -> Softmax -> MatMul as one op (kernels/attention.h; with the fused forms only),
  // the Transposes around it folded into its strides: no score tensor, no copies, but not the same
  // bits as the chain (float rounding, within a few ulp). On the ViT fixture it takes a fifth off
  // the whole model at batch 1 (BENCHMARKS.md). MIXQ_RT_ATTENTION=0 / =1 overrides.
  bool fuse_attention = true;
};

struct LayerPath {  // which kernel path each quantized layer takes (for --verbose and tests)
  std::string node, op;
  bool int_path = false;
  std::string why_float;
  std::string kernel;        // "lowbit4", "int8", "f32-lowbit3", "f32"
  int64_t weight_bytes = 0;  // what the layer holds for its weight at run time
};

class Model {
 public:
  explicit Model(pack::PackedModel m, ModelOptions opts = {});
  static Model load(const std::string& path, ModelOptions opts = {});

  // One tensor per graph input (in order); returns the graph outputs.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs);

  const pack::PackedModel& packed() const { return *pm_; }
  const std::vector<LayerPath>& layer_paths() const { return paths_; }
  // How many activations were fused and values kept as codes / channels-last (runtime/forms.h).
  struct Forms {
    int fused_acts = 0, fused_adds = 0, codes_outputs = 0, nhwc_outputs = 0, dual_outputs = 0;
    int layernorms = 0;  // LayerNorm chains fused into one op (runtime/fuse_chains.h)
    int gelus = 0;       // GELU (erf) chains fused into one op
    int attentions = 0;  // MatMul-scale-Softmax-MatMul chains fused into one op
    int biases = 0;      // bias Adds after MatMul / Gemm taken into the layer
    int embedding_bags = 0;  // Gather -> ReduceSum / ReduceMean pairs fused into one op
  };
  Forms forms() const { return forms_; }
  void set_threads(int t) { threads_ = t < 1 ? 1 : t; }
  kernels::Isa isa() const { return isa_; }
  // Per-node wall time of the last runs, accumulated while profiling is on.
  void set_profile(bool on) { profile_ = on; }
  std::vector<std::pair<std::string, double>> profile() const;  // (node name, seconds)
  struct OpProfile {
    std::string node, op;  // op: the ONNX op, or "fused into <producer>" ops report nothing
    double seconds = 0;    // accumulated while profiling was on
    int64_t macs = 0;      // multiply-accumulates of the last run (Conv, Gemm, MatMul)
    bool integer = false;  // ran on the integer kernels
    bool skipped = false;  // fused into another op (its time is that op's)
  };
  std::vector<OpProfile> op_profile() const;

 private:
  std::unique_ptr<pack::PackedModel> pm_;  // ops point into it
  kernels::Isa isa_;
  int threads_ = 1;
  std::vector<std::unique_ptr<Op>> ops_;
  std::vector<std::vector<int>> op_in_, op_out_;  // value slots (-1: none / held by the op)
  std::vector<std::vector<int>> frees_;           // slots to release after op i (into pool_)
  std::unique_ptr<BufferPool> pool_;
  std::vector<bool> donate_;                      // op i may reuse input 0's buffer
  std::vector<bool> skip_;                        // op i was fused into its producer
  std::vector<Tensor> slots_;
  std::vector<bool> is_const_;
  std::vector<int> input_slots_, output_slots_;
  std::vector<LayerPath> paths_;
  bool profile_ = false;
  Forms forms_;
  std::vector<double> seconds_;
};

}  // namespace mixq::rt
