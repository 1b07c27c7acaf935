// Weight schemes for embedding tables (a Gather on a constant [rows, dim] table; plan.h
// is_embedding_table): the row-wise forms of quant/rowwise_ref.h, chosen per layer in the plan
// (weight_quant.embed_scheme) or for every table with `--embed-scheme`. kNone keeps the ordinary
// affine QScheme (per-channel over rows with an integer zero point). No libtorch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mixq {

enum class EmbedScheme { kNone, kRowwise, kRowwiseGreedy, kCodebook };

struct EmbedSchemeRow {
  EmbedScheme id;
  const char* name;  // CLI and plan JSON
  const char* what;  // one line for --help and docs
};
const std::vector<EmbedSchemeRow>& embed_scheme_rows();
const char* embed_scheme_name(EmbedScheme s);
EmbedScheme parse_embed_scheme(const std::string& s);  // kInvalidArgument listing the names

// Stored bits of a [rows, dim] table at `bits` under a row-wise scheme: codes plus, per row, an
// fp16 scale and offset (kRowwise*) or 2^bits fp16 centroids (kCodebook). Not for kNone.
double embed_table_bits(EmbedScheme s, int bits, int64_t rows, int64_t dim);

}  // namespace mixq
