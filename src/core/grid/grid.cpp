// Checks that the tabulated arm sizes follow the grid rule, once, when the library loads.
#include "grid.hpp"

#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mgfast::grid {

int arm_npix_from_rule(int arm) {
  // The tiny tolerance keeps an edge that lands exactly on a pixel centre from being lost to
  // rounding in log().
  return static_cast<int>(std::floor(std::log(kArmHi[arm] / kArmLo[arm]) / kDlnLambda + 1e-9)) + 1;
}

namespace {
struct RuleCheck {
  RuleCheck() {
    int start = 0;
    for (int a = 0; a < kNumArms; ++a) {
      if (arm_npix_from_rule(a) != kArmNPix[a] || kArmStart[a] != start) {
        std::fprintf(stderr,
                     "mgfast: internal error: grid table disagrees with its rule (arm %d)\n", a);
        std::abort();
      }
      start += kArmNPix[a];
    }
    if (start != kNPix) std::abort();
  }
};
const RuleCheck rule_check;
}  // namespace

}  // namespace mgfast::grid
