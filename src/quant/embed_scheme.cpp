#include "quant/embed_scheme.h"

#include "mixq/error.h"

namespace mixq {

const std::vector<EmbedSchemeRow>& embed_scheme_rows() {
  static const std::vector<EmbedSchemeRow> rows = {
      {EmbedScheme::kNone, "none", "the ordinary weight scheme (--granularity, integer zero point)"},
      {EmbedScheme::kRowwise, "rowwise", "per row: fp16 scale (max-min)/(2^b-1) and fp16 offset min"},
      {EmbedScheme::kRowwiseGreedy, "rowwise-greedy",
       "rowwise with the greedy range search (200 bins, range shrunk by at most 16%, lowest L2 error)"},
      {EmbedScheme::kCodebook, "codebook", "per row: k-means with 2^b fp16 centroids, codes index them"},
  };
  return rows;
}

const char* embed_scheme_name(EmbedScheme s) {
  for (const auto& r : embed_scheme_rows())
    if (r.id == s) return r.name;
  return "?";
}

EmbedScheme parse_embed_scheme(const std::string& s) {
  std::string names;
  for (const auto& r : embed_scheme_rows()) {
    if (s == r.name) return r.id;
    names += names.empty() ? r.name : std::string(", ") + r.name;
  }
  throw Error(ErrorKind::kInvalidArgument, "unknown embedding-table scheme '" + s + "' (use " + names + ")");
}

double embed_table_bits(EmbedScheme s, int bits, int64_t rows, int64_t dim) {
  const double codes = double(rows) * double(dim) * bits;
  if (s == EmbedScheme::kCodebook) return codes + double(rows) * double(int64_t(1) << bits) * 16;
  return codes + double(rows) * 2 * 16;
}

}  // namespace mixq
