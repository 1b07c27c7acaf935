#include "search/allocator.h"

#include "mixq/error.h"

namespace mixq {

const std::vector<AllocatorRow>& allocator_table() {
  static const std::vector<AllocatorRow> rows = {
      {"uniform", "every unpinned layer at --wbits", allocate_uniform},
      {"mixquant", "per-layer bits from weight roundoff error (MixQuant, --qem or --budget-bits)", allocate_mixquant},
  };
  return rows;
}

const AllocatorRow& find_allocator(const std::string& name) {
  for (const auto& r : allocator_table())
    if (name == r.name) return r;
  std::string names;
  for (const auto& r : allocator_table()) names += std::string(names.empty() ? "" : ", ") + r.name;
  throw Error(ErrorKind::kInvalidArgument, "unknown search '" + name + "' (available: " + names + ")");
}

void allocate_uniform(const Graph&, QuantPlan& plan, const SearchOptions& opts) {
  for (auto& L : plan.layers)
    if (!L.pinned) L.weight_scheme.bits = opts.wbits;
  plan.search = "uniform";
  plan.search_params = {{"wbits", opts.wbits}};
  update_cost(plan);
}

}  // namespace mixq
