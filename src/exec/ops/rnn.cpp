// Recurrent layers: RNN, GRU and LSTM (opset 7-18; `layout` from opset 14).
//
// Shapes (layout 0; layout 1 swaps the first two axes of X, Y, initial_h/c and Y_h/Y_c):
//   X [T, N, In]; W [D, G*H, In]; R [D, G*H, H]; B [D, 2*G*H] (Wb then Rb); sequence_lens [N];
//   initial_h/initial_c [D, N, H]; P [D, 3*H] (LSTM peepholes, order i, o, f)
//   Y [T, D, N, H]; Y_h/Y_c [D, N, H]
// with D = 2 for bidirectional else 1 and G gates: 1 (RNN), 3 (GRU: z, r, h), 4 (LSTM: i, o, f, c).
//
// Everything is at:: tensor math so autograd flows through (reconstruction runs the executor with
// grad enabled): the input projection of the whole sequence is one matmul per direction, then each
// step does one matmul with R and the gate math. Per-batch sequence_lens freeze the state of a
// finished sequence (at::where) and zero its outputs; the reverse direction walks each sequence's
// own valid prefix backwards, done by gathering that prefix in reverse order before the loop and
// scattering the outputs back after it.
#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>

#include "exec/ops/ops.h"

namespace mixq {
namespace {

using Tensors = std::vector<at::Tensor>;

enum class Cell { kRnn, kGru, kLstm };

[[noreturn]] void runtime_fail(const std::string& msg) { throw Error(ErrorKind::kRuntime, msg); }

// One activation function of the ONNX RNN family, with its alpha/beta.
struct Activation {
  enum Kind { kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh,
              kHardSigmoid, kElu, kSoftsign, kSoftplus } kind = kTanh;
  double alpha = 0, beta = 0;

  at::Tensor operator()(const at::Tensor& x) const {
    switch (kind) {
      case kRelu: return at::relu(x);
      case kTanh: return at::tanh(x);
      case kSigmoid: return at::sigmoid(x);
      case kAffine: return x * alpha + beta;
      case kLeakyRelu: return at::leaky_relu(x, alpha);
      case kThresholdedRelu: return at::where(x >= alpha, x, at::zeros_like(x));
      case kScaledTanh: return at::tanh(x * beta) * alpha;
      case kHardSigmoid: return at::clamp(x * alpha + beta, 0.0, 1.0);
      case kElu: return at::elu(x, alpha);
      case kSoftsign: return x / (x.abs() + 1);
      case kSoftplus: return at::softplus(x);
    }
    return x;
  }
};

// Parses `activations` with `activation_alpha`/`activation_beta`: each function that takes an
// alpha (beta) consumes the next value of the list, or uses its default when the list is exhausted
// (ONNX Runtime's reading of the spec). Names are matched case-insensitively.
std::vector<Activation> parse_activations(const NodeInfo& info, const std::vector<std::string>& names) {
  struct Spec { const char* name; Activation::Kind kind; int uses; double alpha, beta; };  // uses: 0/1/2
  static const Spec kSpecs[] = {
      {"relu", Activation::kRelu, 0, 0, 0},
      {"tanh", Activation::kTanh, 0, 0, 0},
      {"sigmoid", Activation::kSigmoid, 0, 0, 0},
      {"affine", Activation::kAffine, 2, 1.0, 0.0},
      {"leakyrelu", Activation::kLeakyRelu, 1, 0.01, 0},
      {"thresholdedrelu", Activation::kThresholdedRelu, 1, 1.0, 0},
      {"scaledtanh", Activation::kScaledTanh, 2, 1.0, 1.0},
      {"hardsigmoid", Activation::kHardSigmoid, 2, 0.2, 0.5},
      {"elu", Activation::kElu, 1, 1.0, 0},
      {"softsign", Activation::kSoftsign, 0, 0, 0},
      {"softplus", Activation::kSoftplus, 0, 0, 0},
  };
  const std::vector<float> alphas = info.get_floats("activation_alpha");
  const std::vector<float> betas = info.get_floats("activation_beta");
  size_t ai = 0, bi = 0;
  std::vector<Activation> acts;
  for (const std::string& name : names) {
    std::string low;
    for (char c : name) low += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const Spec* spec = nullptr;
    for (const Spec& s : kSpecs)
      if (low == s.name) spec = &s;
    if (spec == nullptr) info.unsupported("activation '" + name + "' is not an ONNX RNN activation");
    Activation a;
    a.kind = spec->kind;
    a.alpha = spec->alpha;
    a.beta = spec->beta;
    if (spec->uses >= 1 && ai < alphas.size()) a.alpha = alphas[ai++];
    if (spec->uses >= 2 && bi < betas.size()) a.beta = betas[bi++];
    acts.push_back(a);
  }
  return acts;
}

template <Cell C>
class Recurrent final : public OpKernel {
  static constexpr int64_t kGates = C == Cell::kLstm ? 4 : C == Cell::kGru ? 3 : 1;
  static constexpr size_t kActs = C == Cell::kLstm ? 3 : C == Cell::kGru ? 2 : 1;

 public:
  explicit Recurrent(const NodeInfo& info) {
    if (!info.has_input(0) || !info.has_input(1) || !info.has_input(2))
      info.fail("inputs X, W and R are required");
    const std::string dir = info.get_string("direction", "forward");
    if (dir == "forward") num_dir_ = 1;
    else if (dir == "reverse") num_dir_ = 1, reverse_only_ = true;
    else if (dir == "bidirectional") num_dir_ = 2;
    else info.fail("attribute 'direction' must be forward, reverse or bidirectional, got '" + dir + "'");
    hidden_ = info.get_int("hidden_size", -1);
    if (info.has_attr("hidden_size") && hidden_ <= 0) info.fail("attribute 'hidden_size' must be positive");
    layout_ = info.opset() >= 14 ? info.get_int("layout", 0) : 0;
    if (layout_ != 0 && layout_ != 1) info.fail("attribute 'layout' must be 0 or 1");
    if (info.has_attr("clip")) {
      clip_ = info.get_float("clip", 0.0f);
      if (!(clip_ > 0)) info.fail("attribute 'clip' must be positive");
    }
    if (C == Cell::kLstm) input_forget_ = info.get_int("input_forget", 0) != 0;
    if (C == Cell::kGru) linear_before_reset_ = info.get_int("linear_before_reset", 0) != 0;

    std::vector<std::string> names;
    if (const Attribute* a = info.node().attr("activations")) {
      if (a->type != AttrType::kStrings) info.fail("attribute 'activations' must be a list of strings");
      names = a->strings;
    } else {
      names = C == Cell::kLstm ? std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"}
              : C == Cell::kGru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                : std::vector<std::string>{"Tanh"};
    }
    if (names.size() == kActs && num_dir_ == 2) {  // one list for both directions
      const std::vector<std::string> one = names;
      names.insert(names.end(), one.begin(), one.end());
    }
    if (names.size() != kActs * num_dir_)
      info.fail(detail::concat("attribute 'activations' has ", names.size(), " entries; expected ",
                               kActs * num_dir_, " (", kActs, " per direction)"));
    acts_ = parse_activations(info, names);

    // Constant weights are checked now, so a bad model fails at compile time naming the node.
    for (size_t i : {size_t{1}, size_t{2}}) {
      const at::Tensor* w = info.constant_input(i);
      if (w == nullptr) continue;
      const char* what = i == 1 ? "W" : "R";
      if (w->dim() != 3 || w->size(0) != num_dir_ || w->size(1) % kGates != 0)
        info.fail(detail::concat(what, " has shape ", w->sizes(), "; expected [", num_dir_, ", ",
                                 kGates, "*hidden_size, ", i == 1 ? "input_size" : "hidden_size", "]"));
      if (hidden_ > 0 && w->size(1) != kGates * hidden_)
        info.fail(detail::concat(what, " has shape ", w->sizes(), " but hidden_size is ", hidden_));
    }
    for (size_t i = 0; i < 3; ++i) has_out_[i] = info.has_output(i);
    if (C != Cell::kLstm && has_out_[2]) info.fail("has no third output");
  }

  void compute(const Tensors& in, Tensors& out) override {
    auto opt = [&](size_t i) { return i < in.size() ? in[i] : at::Tensor(); };
    const at::ScalarType dt = in[0].scalar_type();
    const bool reduced = dt == at::kHalf || dt == at::kBFloat16;
    auto cvt = [&](at::Tensor t) { return reduced && t.defined() ? t.to(at::kFloat) : t; };
    at::Tensor X = cvt(in[0]), W = cvt(in[1]), R = cvt(in[2]), B = cvt(opt(3));
    at::Tensor lens = opt(4), h0 = cvt(opt(5)), c0 = C == Cell::kLstm ? cvt(opt(6)) : at::Tensor();
    at::Tensor P = C == Cell::kLstm ? cvt(opt(7)) : at::Tensor();

    if (X.dim() != 3) runtime_fail(detail::concat("X must have rank 3, got shape ", X.sizes()));
    if (layout_ == 1) {
      X = X.transpose(0, 1);
      if (h0.defined()) h0 = h0.transpose(0, 1);
      if (c0.defined()) c0 = c0.transpose(0, 1);
    }
    const int64_t T = X.size(0), N = X.size(1), In = X.size(2);
    if (R.dim() != 3) runtime_fail(detail::concat("R must have rank 3, got shape ", R.sizes()));
    const int64_t H = R.size(2);
    auto expect = [&](const at::Tensor& t, const char* what, std::vector<int64_t> shape) {
      if (t.defined() && !t.sizes().equals(shape))
        runtime_fail(detail::concat(what, " has shape ", t.sizes(), "; expected ", at::IntArrayRef(shape)));
    };
    if (hidden_ > 0 && H != hidden_)
      runtime_fail(detail::concat("R has shape ", R.sizes(), " but hidden_size is ", hidden_));
    expect(W, "W", {num_dir_, kGates * H, In});
    expect(R, "R", {num_dir_, kGates * H, H});
    expect(B, "B", {num_dir_, 2 * kGates * H});
    expect(h0, "initial_h", {num_dir_, N, H});
    expect(c0, "initial_c", {num_dir_, N, H});
    expect(P, "P", {num_dir_, 3 * H});

    // sequence_lens: a [T, N, 1] validity mask and, for the reverse direction, the time index that
    // reverses each sequence's valid prefix (an involution; padding maps onto itself).
    at::Tensor mask, rev_index;
    if (lens.defined() && lens.numel() > 0) {
      if (lens.dim() != 1 || lens.size(0) != N)
        runtime_fail(detail::concat("sequence_lens has shape ", lens.sizes(), "; expected [", N, "]"));
      at::Tensor l = lens.to(at::kLong);
      if (l.numel() > 0 && (l.min().item<int64_t>() < 0 || l.max().item<int64_t>() > T))
        runtime_fail(detail::concat("sequence_lens values must lie in [0, ", T, "]"));
      if (!l.eq(T).all().item<bool>()) {
        at::Tensor t = at::arange(T, l.options()).unsqueeze(1);  // [T, 1]
        at::Tensor valid = t < l.unsqueeze(0);                   // [T, N]
        mask = valid.unsqueeze(2);
        rev_index = at::where(valid, l.unsqueeze(0) - 1 - t, t.expand({T, N}));
      }
    }

    std::vector<at::Tensor> ys, hs, cs;
    for (int64_t d = 0; d < num_dir_; ++d) {
      const bool reverse = reverse_only_ || d == 1;
      at::Tensor x = X;
      if (reverse) x = rev_index.defined() ? gather_time(X, rev_index) : X.flip(0);
      at::Tensor h = h0.defined() ? h0[d] : at::zeros({N, H}, X.options());
      at::Tensor c = C == Cell::kLstm ? (c0.defined() ? c0[d] : at::zeros({N, H}, X.options())) : at::Tensor();
      at::Tensor y = run_direction(d, x, W[d], R[d], B.defined() ? B[d] : at::Tensor(),
                                   P.defined() ? P[d] : at::Tensor(), mask, h, c);
      if (reverse) y = rev_index.defined() ? gather_time(y, rev_index) : y.flip(0);
      ys.push_back(y);
      hs.push_back(h);
      cs.push_back(c);
    }

    auto back = [&](at::Tensor t) { return reduced ? t.to(dt) : t; };
    if (has_out_[0]) {
      at::Tensor Y = at::stack(ys, 1);  // [T, D, N, H]
      out[0] = back(layout_ == 1 ? Y.permute({2, 0, 1, 3}) : Y);
    }
    if (has_out_[1]) {
      at::Tensor Yh = at::stack(hs, 0);  // [D, N, H]
      out[1] = back(layout_ == 1 ? Yh.transpose(0, 1) : Yh);
    }
    if (C == Cell::kLstm && has_out_[2]) {
      at::Tensor Yc = at::stack(cs, 0);
      out[2] = back(layout_ == 1 ? Yc.transpose(0, 1) : Yc);
    }
  }

 private:
  static at::Tensor gather_time(const at::Tensor& x, const at::Tensor& index) {
    return x.gather(0, index.unsqueeze(2).expand({index.size(0), index.size(1), x.size(2)}));
  }

  at::Tensor clip(const at::Tensor& x) const { return clip_ > 0 ? at::clamp(x, -clip_, clip_) : x; }

  // Runs one direction over x [T, N, In] (already in processing order); h (and c) hold the initial
  // state and end as the final one. Returns the outputs [T, N, H] in processing order.
  at::Tensor run_direction(int64_t d, const at::Tensor& x, const at::Tensor& w, const at::Tensor& r,
                           const at::Tensor& b, const at::Tensor& p, const at::Tensor& mask,
                           at::Tensor& h, at::Tensor& c) const {
    const int64_t T = x.size(0), H = r.size(1);
    const Activation* act = &acts_[d * kActs];
    // Input projection of every step at once, with the biases that are simply added.
    at::Tensor xp = at::matmul(x, w.t());  // [T, N, G*H]
    at::Tensor rb_h;                        // GRU: the h-gate recurrence bias, added inside r * (...)
    at::Tensor rt = r.t();                  // [H, G*H]
    at::Tensor rt_zr, rt_h;
    if (b.defined()) {
      at::Tensor wb = b.narrow(0, 0, kGates * H), rb = b.narrow(0, kGates * H, kGates * H);
      if (C == Cell::kGru) {
        // z and r take both biases; h takes Wbh outside and Rbh next to the recurrence.
        xp = xp + (wb + at::cat({rb.narrow(0, 0, 2 * H), at::zeros({H}, rb.options())}));
        rb_h = rb.narrow(0, 2 * H, H);
      } else {
        xp = xp + (wb + rb);
      }
    }
    if (C == Cell::kGru) {
      rt_zr = rt.narrow(1, 0, 2 * H);
      rt_h = rt.narrow(1, 2 * H, H);
    }
    at::Tensor p_i, p_o, p_f;
    if (C == Cell::kLstm && p.defined()) {
      p_i = p.narrow(0, 0, H);
      p_o = p.narrow(0, H, H);
      p_f = p.narrow(0, 2 * H, H);
    }

    std::vector<at::Tensor> ys;
    ys.reserve(T);
    for (int64_t t = 0; t < T; ++t) {
      const at::Tensor xt = xp[t];
      at::Tensor h_new, c_new;
      if (C == Cell::kRnn) {
        h_new = act[0](clip(xt + at::matmul(h, rt)));
      } else if (C == Cell::kGru) {
        at::Tensor zr = xt.narrow(1, 0, 2 * H) + at::matmul(h, rt_zr);
        at::Tensor z = act[0](clip(zr.narrow(1, 0, H)));
        at::Tensor rg = act[0](clip(zr.narrow(1, H, H)));
        at::Tensor xh = xt.narrow(1, 2 * H, H);
        at::Tensor hh;
        if (linear_before_reset_) {
          at::Tensor rec = at::matmul(h, rt_h);
          if (rb_h.defined()) rec = rec + rb_h;
          hh = act[1](clip(xh + rg * rec));
        } else {
          at::Tensor rec = at::matmul(rg * h, rt_h);
          if (rb_h.defined()) rec = rec + rb_h;
          hh = act[1](clip(xh + rec));
        }
        h_new = (1 - z) * hh + z * h;
      } else {
        at::Tensor g = xt + at::matmul(h, rt);
        at::Tensor gi = g.narrow(1, 0, H), go = g.narrow(1, H, H), gf = g.narrow(1, 2 * H, H),
                   gc = g.narrow(1, 3 * H, H);
        if (p_i.defined()) {
          gi = gi + p_i * c;
          gf = gf + p_f * c;
        }
        at::Tensor i = act[0](clip(gi));
        at::Tensor f = input_forget_ ? 1 - i : act[0](clip(gf));
        at::Tensor cc = act[1](clip(gc));
        c_new = f * c + i * cc;
        if (p_o.defined()) go = go + p_o * c_new;
        at::Tensor o = act[0](clip(go));
        h_new = o * act[2](c_new);
      }
      if (mask.defined()) {
        const at::Tensor m = mask[t];  // [N, 1]
        ys.push_back(at::where(m, h_new, at::zeros_like(h_new)));
        h = at::where(m, h_new, h);
        if (C == Cell::kLstm) c = at::where(m, c_new, c);
      } else {
        ys.push_back(h_new);
        h = h_new;
        if (C == Cell::kLstm) c = c_new;
      }
    }
    if (T == 0) return at::zeros({0, x.size(1), H}, x.options());
    return at::stack(ys, 0);
  }

  int64_t num_dir_ = 1;
  bool reverse_only_ = false;
  int64_t hidden_ = -1;
  int64_t layout_ = 0;
  double clip_ = -1;
  bool input_forget_ = false;
  bool linear_before_reset_ = false;
  std::vector<Activation> acts_;
  bool has_out_[3] = {false, false, false};
};

}  // namespace

const std::vector<OpRow>& rnn_op_rows() {
  static const std::vector<OpRow> rows = {
      {"RNN", 7, 18, make_kernel<Recurrent<Cell::kRnn>>},
      {"GRU", 7, 18, make_kernel<Recurrent<Cell::kGru>>},
      {"LSTM", 7, 18, make_kernel<Recurrent<Cell::kLstm>>},
  };
  return rows;
}

}  // namespace mixq
