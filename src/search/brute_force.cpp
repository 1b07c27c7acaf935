// Exhaustive solver: the reference the integer program is tested against on small tables.
#include "mixq/error.h"
#include "search/solvers.h"

namespace mixq {

std::optional<Choice> solve_brute_force(const Problem& p, int64_t max_points) {
  int64_t points = 1;
  for (const auto& u : p.units) {
    points *= static_cast<int64_t>(u.bits.size());
    MIXQ_CHECK(points <= max_points, ErrorKind::kInvalidArgument, "brute force: more than ", max_points, " choices");
  }
  Choice c(p.units.size(), 0);
  std::optional<Choice> best;
  double best_obj = 0;
  for (int64_t n = 0; n < points; ++n) {
    if (feasible(p, c)) {
      double o = objective(p, c);
      if (!best || o < best_obj) {
        best = c;
        best_obj = o;
      }
    }
    for (size_t u = 0; u < c.size(); ++u) {  // odometer increment
      if (++c[u] < static_cast<int>(p.units[u].bits.size())) break;
      c[u] = 0;
    }
  }
  return best;
}

}  // namespace mixq
