// libmgfast's own translation unit: the library's version. Everything else in libmgfast is the
// core (src/core, src/cpu), linked in whole.
#include <string>

#include "mgfast/model.hpp"

namespace mgfast {

std::string version() { return MGFAST_VERSION; }

}  // namespace mgfast
