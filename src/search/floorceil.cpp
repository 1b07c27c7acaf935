// The bit side of floor/ceil rounding (seed 004; METHODS.md): the paper quantizes each layer's
// weights and its input at the same bit level (hardware multiplies two operands of one type).
// This row runs the base allocator (--floorceil-base: uniform at --wbits by default, or any other
// row, e.g. ip under a budget), then sets every layer's input bits to its weight bits; readers of
// one tensor share one quantizer, so a shared input takes the highest bits among its readers
// (unify_shared_inputs). The rounding search itself runs after quantization
// (quant/methods/floorceil.h): `--search floorceil` turns it on in the quantization job.
#include "core/log.h"
#include "mixq/error.h"
#include "search/allocator.h"

namespace mixq {

void allocate_floorceil(AllocContext& ctx) {
  const std::string base = ctx.opts.floorceil_base;
  MIXQ_CHECK(base != "floorceil", ErrorKind::kInvalidArgument, "--floorceil-base cannot be floorceil itself");
  find_allocator(base).run(ctx);
  nlohmann::json base_params = ctx.plan.search_params;
  int tied = 0;
  for (auto& L : ctx.plan.layers) {
    if (!L.quantize_input || L.input_scheme.bits == L.weight_scheme.bits) continue;
    L.input_scheme.bits = L.weight_scheme.bits;
    // SPARQ cuts 4-bit windows from 8-bit codes only.
    if (L.input_scheme.bits != 8) L.input_sparq = SparqScheme{};
    ++tied;
  }
  unify_shared_inputs(ctx.plan);
  update_cost(ctx.plan);
  ctx.plan.search = "floorceil";
  ctx.plan.search_params = {{"base", base}, {"base_params", base_params}, {"inputs_tied_to_weight_bits", tied}};
  log::verbose("floorceil: " + base + " bits, " + std::to_string(tied) + " layer inputs set to their weight bits");
}

}  // namespace mixq
