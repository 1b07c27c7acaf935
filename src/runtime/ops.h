// The runtime's operators: one class per op kind, built once from a packed node (attributes
// parsed and weights prepared at load), run per batch. The registry is a table (ops.cpp), one row
// per ONNX op type. No libtorch.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "pack/mxq_format.h"
#include "runtime/tensor.h"

namespace mixq::rt {

struct BuildCtx {
  const pack::Node& node;
  std::string desc;                                   // "node 'conv1' (Conv)" for messages
  const std::map<std::string, const pack::Tensor*>& consts;  // every stored tensor by name
  const pack::QWeight* qweight = nullptr;             // this node's quantized weight, if a layer
  const pack::QAct* qact = nullptr;                   // the quantizer of its data input, if any
  kernels::Isa isa = kernels::Isa::kRef;
  bool lowbit = true;  // layers may keep < 8-bit weights packed (ModelOptions::lowbit)
  bool dnnl = false;   // float convolutions may run on oneDNN (ModelOptions::dnnl, fused forms only)
  bool gemm_epi = false;  // integer GEMMs may fuse their epilogue (ModelOptions::gemm_epilogue)

  int64_t int_attr(const std::string& k, int64_t def) const;
  float float_attr(const std::string& k, float def) const;
  std::vector<int64_t> ints_attr(const std::string& k, std::vector<int64_t> def = {}) const;
  // The stored tensor feeding input `idx`, or nullptr when it is computed at run time.
  const pack::Tensor* const_input(size_t idx) const;
};

// Checks a 2-D sliding window's attributes at load (Conv, MaxPool, AveragePool): kernel, strides
// and dilations in [1, 2^24] (their products cannot overflow), pads in [0, dilated kernel extent).
// A pad that large sees only padding: ONNX Runtime refuses it for pooling, and in a .mxq it is a
// corrupt or hostile file (fuzzing: pads of 134217729 on a 6x6 input made one Conv ask for 12.9 GB).
// `kernel` is {kh, kw}; the others have 2 values, pads 4 (top, left, bottom, right).
void check_window_2d(const BuildCtx& c, const std::vector<int64_t>& kernel, const std::vector<int64_t>& strides,
                     const std::vector<int64_t>& dilations, const std::vector<int64_t>& pads);

class BufferPool;

struct RunCtx {
  int threads = 1;
  // Non-null when input 0 dies at this op (its last reader, not a stored tensor or graph output):
  // an elementwise op may then reuse its buffer instead of copying (`take_input0`).
  Tensor* donor = nullptr;
  // Memory of dead values (runtime/buffer_pool.h) for outputs an op writes in full; may be null.
  BufferPool* pool = nullptr;
};

// A float tensor of `shape` whose every element the op writes: memory from the pool when there is
// one (contents unspecified), else zeroed.
Tensor output_floats(std::vector<int64_t> shape, const RunCtx& ctx);

// The OpenMP thread number inside an op's `omp parallel` loop (0 without OpenMP): its scratch.
int omp_thread();

// f(begin, end) over [0, n) in up to `threads` contiguous parts, their bounds multiples of `align`
// (so a vector kernel sees the same blocks and tail as in one call: the same bits), where the work
// (n * cost_per_item) is worth a thread (>= 64K); else f(0, n) on this thread. f must not throw.
void parallel_ranges(int threads, int64_t n, int64_t cost_per_item, int64_t align,
                     const std::function<void(int64_t, int64_t)>& f);

// Input 0's tensor to overwrite: moved from the donor when allowed, else a copy.
// (Codes of the input's value are dropped: the op changes the value.)
inline Tensor take_input0(const std::vector<const Tensor*>& in, const RunCtx& ctx) {
  Tensor t = ctx.donor ? std::move(*ctx.donor) : *in[0];
  if (t.codes) {
    t.codes = false;
    std::vector<uint8_t>().swap(t.u8);
  }
  return t;
}

class Op {
 public:
  virtual ~Op() = default;
  // in[i] is null for omitted optional inputs and for the quantized weight (held by the op).
  virtual void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) = 0;
  // Whether a quantized layer runs on the integer kernels; else `why` says what kept it float.
  virtual bool int_path(std::string* why) const { *why = "float kernels only"; return false; }
  // The kernel a layer's weight runs on ("lowbit4", "int8", "f32-lowbit3", "f32") and the bytes it
  // holds for it.
  virtual void weight_info(std::string* kernel, int64_t* bytes) const { (void)kernel; (void)bytes; }

  // --- Value forms between integer layers (tensor.h; planned at load by runtime.cpp) ---
  // Run time: whether input `idx` may be handed over channels-last (`in` as it will be passed).
  // The default: no, the caller converts it to NCHW first.
  virtual bool takes_nhwc(size_t idx, const std::vector<const Tensor*>& in) const {
    (void)idx; (void)in;
    return false;
  }
  // Load time: whether input `idx` can be read channels-last at all (a producer writes NHWC only when
  // every reader may take it).
  virtual bool may_take_nhwc(size_t idx) const { (void)idx; return false; }
  // Load time: the quantizer under which input `idx` may arrive as uint8 codes (integer layers,
  // their data input), else null.
  virtual const kernels::OutQuant* codes_quant(size_t idx) const { (void)idx; return nullptr; }
  // Load time, producers: fuse a following Relu/Clip; write output 0 in a form. False: not supported.
  virtual bool fuse_act(kernels::ActClamp act) { (void)act; return false; }
  enum class Form { kNchw, kNhwc, kCodes, kNhwcAndCodes };
  // Load time, integer layers: take a residual Add into the epilogue, its other operand arriving as
  // input `idx` (appended by the planner); then the Relu/Clip after the Add.
  virtual bool fuse_add(size_t idx) { (void)idx; return false; }
  virtual bool fuse_post_act(kernels::ActClamp act) { (void)act; return false; }
  // Load time, linear layers: add a constant per-output-column vector (the Add after a MatMul) to
  // the bias. False where the bias is already baked into a library primitive (oneDNN).
  virtual bool fuse_bias(const std::vector<float>& b) { (void)b; return false; }
  virtual bool is_add() const { return false; }
  virtual bool set_output_form(Form form, const kernels::OutQuant* q) { (void)q; return form == Form::kNchw; }
  // Load time, Relu / Clip with constant bounds: the clamp they apply to input 0.
  virtual bool act_clamp(kernels::ActClamp* act) const { (void)act; return false; }
  // Whether the last run took the integer kernels (layers) and the multiply-accumulates it did
  // (Conv, Gemm, MatMul; 0 for the rest): what `mixq profile` divides by the time.
  virtual bool ran_int() const { return false; }
  int64_t last_macs = 0;
  std::string desc;
};

using OpFactory = std::unique_ptr<Op> (*)(const BuildCtx&);
struct OpRow {
  const char* op;
  OpFactory make;
  int min_inputs;  // inputs 0 .. min_inputs-1 must be present (checked at load, so ops can rely on it)
};

const std::vector<OpRow>& elementwise_rows();  // ops_elementwise.cpp
const std::vector<OpRow>& shape_rows();        // ops_shape.cpp
const std::vector<OpRow>& conv_rows();         // ops_conv.cpp (Conv)
const std::vector<OpRow>& linear_rows();       // ops_linear.cpp (Gemm, MatMul, BN)
const std::vector<OpRow>& pool_rows();         // ops_pool.cpp (MaxPool, AveragePool)
const std::vector<OpRow>& tensor_rows();       // ops_tensor.cpp (Shape, Concat)
const std::vector<OpRow>& select_rows();       // ops_select.cpp (Equal, Less, Greater, Where, Max, Min, Expand,
                                               // ReduceMax, GlobalMaxPool)
const std::vector<OpRow>& upsample_rows();     // ops_upsample.cpp (Resize, ConvTranspose)
const std::vector<OpRow>& slice_rows();        // ops_slice.cpp (Slice, Split, ConstantOfShape, Range)
const std::vector<OpRow>& rnn_rows();         // ops_rnn.cpp (LSTM, GRU, RNN)
const std::vector<OpRow>& multipoint_rows();   // ops_multipoint.cpp (MultipointSum, mixq's own)
// ops_shape.cpp: Gather -> ReduceSum | ReduceMean as one op (an embedding bag: gathered rows summed
// into the output, no [.., bag, row] tensor; the same bits), built from the two ops (`gather` must
// outlive it; `reduce` is taken on success) and the reduction's constant axes input, if any. Null
// when they are not those ops.
std::unique_ptr<Op> make_embedding_bag(Op* gather, std::unique_ptr<Op>& reduce, const Tensor* axes);
// The row for `op`, or nullptr.
const OpRow* find_op(const std::string& op);
std::vector<std::string> supported_ops();

// Run-time checks inside ops: kRuntime naming the op.
#define RT_CHECK(cond, op, ...) MIXQ_CHECK(cond, ::mixq::ErrorKind::kRuntime, (op)->desc, ": ", __VA_ARGS__)

}  // namespace mixq::rt
