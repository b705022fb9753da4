// Thread-count policy for the CPU paths.
#include "parallel.hpp"

namespace mgfast {

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

}  // namespace mgfast
