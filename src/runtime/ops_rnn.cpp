// Recurrent layers, float32: RNN, GRU and LSTM (ONNX opset 7-14 semantics; `layout` from 14).
//
// Shapes (layout 0; layout 1 swaps the first two axes of X, Y, initial_h/c and Y_h/Y_c):
//   X [T, N, In]; W [D, G*H, In]; R [D, G*H, H]; B [D, 2*G*H] (Wb then Rb); sequence_lens [N];
//   initial_h/initial_c [D, N, H]; P [D, 3*H] (LSTM peepholes, order i, o, f)
//   Y [T, D, N, H]; Y_h/Y_c [D, N, H]
// with D = 2 for bidirectional else 1 and G gates: 1 (RNN), 3 (GRU: z, r, h), 4 (LSTM: i, o, f, c).
//
// The input projection of the whole sequence is one sgemm per direction (X·W^T, biases added
// after); each step does one sgemm with R^T (two for GRU without linear_before_reset, whose
// h-gate recurrence reads r ⊙ h), then the gate math row by row. A quantized W is dequantized at
// load and X fake-quantized when the plan quantizes it, as the simulation's QDQ graph does (R, the
// biases and the hidden state stay float there too).
// Only the default activations (Sigmoid / Tanh / Tanh) are run: others are refused at load.
#include <algorithm>
#include <cmath>

#include "kernels/quantize.h"
#include "kernels/sgemm.h"
#include "mixq/error.h"
#include "runtime/ops.h"

namespace mixq::rt {

namespace {

enum class Cell { kRnn, kGru, kLstm };

constexpr int64_t gates_of(Cell c) { return c == Cell::kLstm ? 4 : c == Cell::kGru ? 3 : 1; }

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// w [D, rows, cols] -> per direction its transpose [cols, rows], directions stacked.
std::vector<float> transpose_dirs(const float* w, int64_t dirs, int64_t rows, int64_t cols) {
  std::vector<float> t(static_cast<size_t>(dirs * rows * cols));
  for (int64_t d = 0; d < dirs; ++d)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        t[static_cast<size_t>((d * cols + c) * rows + r)] = w[(d * rows + r) * cols + c];
  return t;
}

template <Cell C>
class RecurrentOp : public Op {
  static constexpr int64_t G = gates_of(C);

 public:
  int64_t dirs = 1;
  bool reverse_only = false;
  int64_t hidden = -1;  // attribute; -1 when absent (taken from R)
  int64_t layout = 0;
  float clip = 0;       // 0: no clipping
  bool input_forget = false;
  bool linear_before_reset = false;
  kernels::Isa isa = kernels::Isa::kRef;
  // Prepared at load when W / R are stored (or W is a quantized weight): W^T [D][In][G*H] and
  // R^T [D][H][G*H]; else transposed at run time from the inputs.
  std::vector<float> wt, rt;
  std::vector<int64_t> w_dims;  // W's shape when prepared
  bool quantized_w = false;
  const pack::QAct* qact = nullptr;  // X's quantizer, if the layer's input is quantized

  void weight_info(std::string* kernel, int64_t* bytes) const override {
    *kernel = "f32";
    *bytes = static_cast<int64_t>(wt.size() * sizeof(float));
  }

  void run(const std::vector<const Tensor*>& in, std::vector<Tensor>& out, const RunCtx& ctx) override {
    auto opt = [&](size_t k) -> const Tensor* { return k < in.size() ? in[k] : nullptr; };
    RT_CHECK(in.size() >= 3 && in[0] && in[2] && (in[1] || !wt.empty()), this, "needs X, W and R");
    for (size_t k = 0; k < in.size(); ++k)
      RT_CHECK(!in[k] || k == 4 || in[k]->dtype == ElemType::kFloat32, this, "input ", k, " must be float32");
    const Tensor& x_in = *in[0];
    RT_CHECK(x_in.rank() == 3, this, "X must have rank 3, got shape ", shape_str(x_in.shape));
    const int64_t T = x_in.shape[layout ? 1 : 0], N = x_in.shape[layout ? 0 : 1], In = x_in.shape[2];

    // Weights: prepared, or transposed from this run's inputs.
    std::vector<int64_t> wd = in[1] ? in[1]->shape : w_dims, rd = in[2]->shape;
    RT_CHECK(rd.size() == 3 && rd[0] == dirs && rd[1] % G == 0 && rd[2] * G == rd[1], this, "R has shape ",
             shape_str(rd), "; expected [", dirs, ", ", G, "*hidden_size, hidden_size]");
    const int64_t H = rd[2], GH = G * H;
    RT_CHECK(hidden < 0 || hidden == H, this, "R has shape ", shape_str(rd), " but hidden_size is ", hidden);
    RT_CHECK(wd == std::vector<int64_t>({dirs, GH, In}), this, "W has shape ", shape_str(wd), "; expected [", dirs,
             ",", GH, ",", In, "]");
    std::vector<float> wt_run, rt_run;
    const float* WT = wt.data();
    const float* RT = rt.data();
    if (in[1] && !quantized_w && wt.empty()) {
      wt_run = transpose_dirs(in[1]->f.data(), dirs, GH, In);
      WT = wt_run.data();
    }
    if (rt.empty()) {
      rt_run = transpose_dirs(in[2]->f.data(), dirs, GH, H);
      RT = rt_run.data();
    }
    const Tensor* B = opt(3);
    const Tensor* lens = opt(4);
    const Tensor* h0 = opt(5);
    const Tensor* c0 = C == Cell::kLstm ? opt(6) : nullptr;
    const Tensor* P = C == Cell::kLstm ? opt(7) : nullptr;
    auto expect = [&](const Tensor* t, const char* what, std::vector<int64_t> shape) {
      RT_CHECK(!t || t->shape == shape, this, what, " has shape ", shape_str(t ? t->shape : shape), "; expected ",
               shape_str(shape));
    };
    expect(B, "B", {dirs, 2 * GH});
    expect(h0, "initial_h", layout ? std::vector<int64_t>{N, dirs, H} : std::vector<int64_t>{dirs, N, H});
    expect(c0, "initial_c", layout ? std::vector<int64_t>{N, dirs, H} : std::vector<int64_t>{dirs, N, H});
    expect(P, "P", {dirs, 3 * H});

    // Per-row sequence lengths (all T when sequence_lens is absent).
    std::vector<int64_t> len(static_cast<size_t>(N), T);
    if (lens && lens->numel() > 0) {
      RT_CHECK(lens->dtype == ElemType::kInt64 && lens->shape == std::vector<int64_t>{N}, this,
               "sequence_lens must be an integer tensor of shape [", N, "], got ", shape_str(lens->shape));
      for (int64_t n = 0; n < N; ++n) {
        const int64_t l = lens->i[static_cast<size_t>(n)];
        RT_CHECK(l >= 0 && l <= T, this, "sequence_lens[", n, "] = ", l, " is outside [0, ", T, "]");
        len[static_cast<size_t>(n)] = l;
      }
    }

    // X in layout 0, contiguous [T*N, In]; fake-quantized first like ConvTranspose (the runtime's
    // quantizer, kernels/quantize.h).
    std::vector<float> x_q, x_t;
    const float* X = x_in.f.data();
    if (qact) {
      x_q.resize(x_in.f.size());
      kernels::fake_quantize_f32(X, x_in.numel(), qact->scale, qact->zero_point, static_cast<float>(qact->qmin()),
                                 static_cast<float>(qact->qmax()), x_q.data());
      X = x_q.data();
    }
    if (layout) {
      x_t.resize(static_cast<size_t>(T * N * In));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t t = 0; t < T; ++t)
          std::copy_n(X + (n * T + t) * In, In, x_t.data() + (t * N + n) * In);
      X = x_t.data();
    }
    // Index helpers for the layout-dependent outputs and initial states.
    auto y_at = [&](int64_t t, int64_t d, int64_t n) { return layout ? ((n * T + t) * dirs + d) * H : ((t * dirs + d) * N + n) * H; };
    auto s_at = [&](int64_t d, int64_t n) { return layout ? (n * dirs + d) * H : (d * N + n) * H; };

    Tensor Y = Tensor::floats(layout ? std::vector<int64_t>{N, T, dirs, H} : std::vector<int64_t>{T, dirs, N, H});
    Tensor Yh = Tensor::floats(layout ? std::vector<int64_t>{N, dirs, H} : std::vector<int64_t>{dirs, N, H});
    Tensor Yc = Tensor::floats(Yh.shape);

    std::vector<float> xp(static_cast<size_t>(T * N * GH)), rec(static_cast<size_t>(N * GH));
    std::vector<float> h(static_cast<size_t>(N * H)), c(static_cast<size_t>(N * H)), rh;
    if (C == Cell::kGru && !linear_before_reset) rh.resize(static_cast<size_t>(N * H));
    auto clamp = [&](float v) { return clip > 0 ? std::clamp(v, -clip, clip) : v; };
    last_macs = 0;
    for (int64_t d = 0; d < dirs; ++d) {
      const bool reverse = reverse_only || d == 1;
      const float* wt_d = WT + d * In * GH;
      const float* rt_d = RT + d * H * GH;
      if (T * N > 0) kernels::sgemm(X, In, wt_d, GH, xp.data(), GH, T * N, GH, In, false, ctx.threads, isa);
      last_macs += T * N * GH * In + T * N * GH * H;
      // Biases that are simply added (GRU's h-gate Rb sits next to the recurrence instead).
      std::vector<float> bias(static_cast<size_t>(GH), 0.0f), rb_h(static_cast<size_t>(H), 0.0f);
      if (B) {
        const float* b = B->f.data() + d * 2 * GH;
        for (int64_t j = 0; j < GH; ++j) {
          const bool h_gate = C == Cell::kGru && j >= 2 * H;
          bias[static_cast<size_t>(j)] = b[j] + (h_gate ? 0.0f : b[GH + j]);
          if (h_gate) rb_h[static_cast<size_t>(j - 2 * H)] = b[GH + j];
        }
      }
      const float* p = P ? P->f.data() + d * 3 * H : nullptr;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < H; ++k) {
          h[static_cast<size_t>(n * H + k)] = h0 ? h0->f[static_cast<size_t>(s_at(d, n) + k)] : 0.0f;
          c[static_cast<size_t>(n * H + k)] = c0 ? c0->f[static_cast<size_t>(s_at(d, n) + k)] : 0.0f;
        }
      for (int64_t s = 0; s < T && N > 0; ++s) {
        // Recurrence of every row at once; rows whose sequence has ended are computed and ignored.
        if (C == Cell::kGru && !linear_before_reset) {
          kernels::sgemm(h.data(), H, rt_d, GH, rec.data(), GH, N, 2 * H, H, false, ctx.threads, isa);
        } else {
          kernels::sgemm(h.data(), H, rt_d, GH, rec.data(), GH, N, GH, H, false, ctx.threads, isa);
        }
        for (int64_t n = 0; n < N; ++n) {
          const int64_t l = len[static_cast<size_t>(n)];
          if (s >= l) continue;
          const int64_t t = reverse ? l - 1 - s : s;
          const float* xr = xp.data() + (t * N + n) * GH;
          float* r = rec.data() + n * GH;
          float* hr = h.data() + n * H;
          float* cr = c.data() + n * H;
          // GRU's h gate takes its input part separately (the reset gate scales only the recurrence).
          const int64_t added = C == Cell::kGru ? 2 * H : GH;
          for (int64_t k = 0; k < added; ++k) r[k] += xr[k] + bias[static_cast<size_t>(k)];
          if constexpr (C == Cell::kRnn) {
            for (int64_t k = 0; k < H; ++k) hr[k] = std::tanh(clamp(r[k]));
          } else if constexpr (C == Cell::kLstm) {
            for (int64_t k = 0; k < H; ++k) {
              float gi = r[k], go = r[H + k], gf = r[2 * H + k];
              const float gc = r[3 * H + k];
              if (p) {
                gi += p[k] * cr[k];
                gf += p[2 * H + k] * cr[k];
              }
              const float i = sigmoid(clamp(gi));
              const float f = input_forget ? 1.0f - i : sigmoid(clamp(gf));
              const float cn = f * cr[k] + i * std::tanh(clamp(gc));
              if (p) go += p[H + k] * cn;
              cr[k] = cn;
              hr[k] = sigmoid(clamp(go)) * std::tanh(cn);
            }
          } else if (linear_before_reset) {  // GRU, h-gate: Xh + r ⊙ (h·Rh^T + Rbh)
            for (int64_t k = 0; k < H; ++k) {
              const float z = sigmoid(clamp(r[k])), rg = sigmoid(clamp(r[H + k]));
              const float hh = std::tanh(clamp(xr[2 * H + k] + bias[static_cast<size_t>(2 * H + k)] +
                                               rg * (r[2 * H + k] + rb_h[static_cast<size_t>(k)])));
              hr[k] = (1.0f - z) * hh + z * hr[k];
            }
          } else {  // GRU: r and z now, the h gate after (r ⊙ h)·Rh^T below
            for (int64_t k = 0; k < H; ++k) {
              r[k] = sigmoid(clamp(r[k]));
              rh[static_cast<size_t>(n * H + k)] = sigmoid(clamp(r[H + k])) * hr[k];
            }
          }
        }
        if (C == Cell::kGru && !linear_before_reset) {
          // rec[:, 2H:3H] = (r ⊙ h)·Rh^T for every row, then the h gate and the new state.
          kernels::sgemm(rh.data(), H, rt_d + 2 * H, GH, rec.data() + 2 * H, GH, N, H, H, false, ctx.threads, isa);
          for (int64_t n = 0; n < N; ++n) {
            const int64_t l = len[static_cast<size_t>(n)];
            if (s >= l) continue;
            const int64_t t = reverse ? l - 1 - s : s;
            const float* xr = xp.data() + (t * N + n) * GH;
            const float* r = rec.data() + n * GH;
            float* hr = h.data() + n * H;
            for (int64_t k = 0; k < H; ++k) {
              const float hh = std::tanh(clamp(xr[2 * H + k] + bias[static_cast<size_t>(2 * H + k)] + r[2 * H + k] +
                                               rb_h[static_cast<size_t>(k)]));
              hr[k] = (1.0f - r[k]) * hh + r[k] * hr[k];
            }
          }
        }
        for (int64_t n = 0; n < N; ++n) {
          const int64_t l = len[static_cast<size_t>(n)];
          if (s >= l) continue;  // outputs past a sequence's end stay 0
          const int64_t t = reverse ? l - 1 - s : s;
          std::copy_n(h.data() + n * H, H, Y.f.data() + y_at(t, d, n));
        }
      }
      for (int64_t n = 0; n < N; ++n) {
        std::copy_n(h.data() + n * H, H, Yh.f.data() + s_at(d, n));
        std::copy_n(c.data() + n * H, H, Yc.f.data() + s_at(d, n));
      }
    }
    if (out.size() > 0) out[0] = std::move(Y);
    if (out.size() > 1) out[1] = std::move(Yh);
    if (out.size() > 2) out[2] = std::move(Yc);
  }
};

template <Cell C>
std::unique_ptr<Op> make_recurrent(const BuildCtx& c) {
  auto op = std::make_unique<RecurrentOp<C>>();
  constexpr int64_t G = gates_of(C);
  auto fail = [&](const std::string& msg) { throw Error(ErrorKind::kUnsupported, c.desc + ": " + msg); };
  auto bad = [&](const std::string& msg) { throw Error(ErrorKind::kInvalidModel, c.desc + ": " + msg); };
  const pack::Attr* dir_a = c.node.attr("direction");
  const std::string dir = dir_a ? dir_a->s : "forward";
  if (dir_a && dir_a->type != pack::Attr::kString) bad("attribute 'direction' is not a string");
  if (dir == "forward") op->dirs = 1;
  else if (dir == "reverse") op->dirs = 1, op->reverse_only = true;
  else if (dir == "bidirectional") op->dirs = 2;
  else bad("attribute 'direction' must be forward, reverse or bidirectional, got '" + dir + "'");
  op->hidden = c.int_attr("hidden_size", -1);
  if (c.node.attr("hidden_size") && op->hidden <= 0) bad("attribute 'hidden_size' must be positive");
  op->layout = c.int_attr("layout", 0);
  if (op->layout != 0 && op->layout != 1) bad("attribute 'layout' must be 0 or 1");
  if (c.node.attr("clip")) {
    op->clip = c.float_attr("clip", 0.0f);
    if (!(op->clip > 0)) bad("attribute 'clip' must be positive");
  }
  // Only the default activations have kernels (exported PyTorch/Keras layers use them). A list of
  // names cannot be stored in .mxq today, so any 'activations' attribute is refused.
  if (c.node.attr("activations"))
    fail(std::string("attribute 'activations' is not supported (the runtime runs the defaults: ") +
         (C == Cell::kLstm ? "Sigmoid, Tanh, Tanh" : C == Cell::kGru ? "Sigmoid, Tanh" : "Tanh") + ")");
  if (C == Cell::kLstm) op->input_forget = c.int_attr("input_forget", 0) != 0;
  if (C == Cell::kGru) op->linear_before_reset = c.int_attr("linear_before_reset", 0) != 0;
  if (C != Cell::kLstm && c.node.outputs.size() > 2) bad("has no third output");
  op->isa = c.isa;
  op->qact = c.qact;

  // Weights known at load are transposed once. W may be a quantized weight (input 1, dequantized).
  if (c.qweight) {
    MIXQ_CHECK(c.node.inputs.size() > 1 && c.node.inputs[1] == c.qweight->tensor, ErrorKind::kInvalidModel, c.desc,
               ": its quantized weight must be input 1 (W)");
    const auto& d = c.qweight->dims;
    if (d.size() != 3 || d[0] != op->dirs || d[1] % G != 0) bad("quantized W has shape " + shape_str(d));
    std::vector<float> w = c.qweight->dequantize();
    op->w_dims = d;
    op->quantized_w = true;
    op->wt = transpose_dirs(w.data(), d[0], d[1], d[2]);
  } else if (const pack::Tensor* w = c.const_input(1)) {
    if (w->dims.size() != 3 || w->dims[0] != op->dirs || w->dims[1] % G != 0 || w->dtype != pack::ElemType::kFloat32)
      bad("W has shape " + shape_str(w->dims) + "; expected [num_directions, gates*hidden_size, input_size]");
    op->w_dims = w->dims;
    op->wt = transpose_dirs(w->f.data(), w->dims[0], w->dims[1], w->dims[2]);
  }
  if (const pack::Tensor* r = c.const_input(2)) {
    if (r->dims.size() != 3 || r->dims[0] != op->dirs || r->dims[1] != G * r->dims[2] ||
        r->dtype != pack::ElemType::kFloat32)
      bad("R has shape " + shape_str(r->dims) + "; expected [num_directions, gates*hidden_size, hidden_size]");
    op->rt = transpose_dirs(r->f.data(), r->dims[0], r->dims[1], r->dims[2]);
  }
  return op;
}

}  // namespace

const std::vector<OpRow>& rnn_rows() {
  static const std::vector<OpRow> rows = {
      {"RNN", make_recurrent<Cell::kRnn>, 3},
      {"GRU", make_recurrent<Cell::kGru>, 3},
      {"LSTM", make_recurrent<Cell::kLstm>, 3},
  };
  return rows;
}

}  // namespace mixq::rt
