#include "quant/embed_quant.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "mixq/error.h"
#include "quant/multipoint.h"
#include "quant/quantizer.h"
#include "quant/rowwise_ref.h"

namespace mixq {

void quantize_table(const at::Tensor& w, EmbedScheme embed, int bits, QuantizedWeight& qw, const std::string& what) {
  MIXQ_CHECK(embed != EmbedScheme::kNone, ErrorKind::kInvalidArgument, what, ": no row-wise scheme given");
  MIXQ_CHECK(w.dim() == 2, ErrorKind::kInvalidArgument, what, ": --embed-scheme ", embed_scheme_name(embed),
             " quantizes a [rows, dim] table, but the weight has shape ", w.sizes());
  MIXQ_CHECK(bits >= 2 && bits <= 8, ErrorKind::kInvalidArgument, what, ": --embed-scheme ", embed_scheme_name(embed),
             " takes 2..8 bits (got ", bits, ")");
  const at::Tensor x = w.to(at::kFloat).contiguous();
  const int64_t rows = x.size(0), dim = x.size(1);
  MIXQ_CHECK(dim >= 1, ErrorKind::kInvalidArgument, what, ": the table has rows of 0 values");
  qw.embed = embed;
  qw.scheme.bits = bits;
  qw.scheme.symmetric = false;
  qw.scheme.granularity = Granularity::kPerChannel;
  qw.scheme.axis = 0;
  qw.scheme.rounding = Rounding::kNearest;
  qw.codes = at::empty({rows, dim}, at::kFloat);
  at::Tensor scale = at::ones({rows, 1}, at::kFloat);
  qw.params.zero_point = at::zeros({rows, 1}, at::kFloat);
  const float* src = x.data_ptr<float>();
  float* q = qw.codes.data_ptr<float>();
  if (embed == EmbedScheme::kCodebook) {
    qw.codebook = at::empty({rows, int64_t(1) << bits}, at::kFloat);
    float* c = qw.codebook.data_ptr<float>();
    at::parallel_for(0, rows, 64, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) ref::codebook_row(src + r * dim, dim, bits, c + (r << bits), q + r * dim);
    });
  } else {
    qw.offset = at::empty({rows, 1}, at::kFloat);
    float* s = scale.data_ptr<float>();
    float* o = qw.offset.data_ptr<float>();
    const bool greedy = embed == EmbedScheme::kRowwiseGreedy;
    at::parallel_for(0, rows, 64, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const float* row = src + r * dim;
        const ref::RowParams p = greedy ? ref::rowwise_greedy(row, dim, bits) : ref::rowwise_minmax(row, dim, bits);
        ref::rowwise_quantize_row(row, dim, bits, p, q + r * dim);
        // A constant row (or one whose scale underflows fp16) has every code 0: any scale gives
        // the same x~ = offset, and 1 keeps the stored scale > 0 as DequantizeLinear expects.
        s[r] = p.scale > 0 ? p.scale : 1.0f;
        o[r] = p.offset;
      }
    });
  }
  qw.params.scale = scale;
}

at::Tensor dequantize_weight(const QuantizedWeight& qw) {
  switch (qw.embed) {
    case EmbedScheme::kNone: {
      at::Tensor w = dequantize(qw.codes, qw.params, qw.scheme);
      // Multipoint levels, added one after another in float32 (the QDQ export's Add chain).
      for (size_t m = 0; m < qw.extra.size(); ++m) w = w + extra_level_values(qw, m);
      return w;
    }
    case EmbedScheme::kCodebook:
      return at::gather(qw.codebook, 1, qw.codes.to(at::kLong));
    case EmbedScheme::kRowwise:
    case EmbedScheme::kRowwiseGreedy:
      // One multiply then one add, in float32: what the reference and the QDQ graph compute.
      return qw.codes * qw.params.scale + qw.offset;
  }
  return at::Tensor();
}

}  // namespace mixq
