// A minimal parallel-for over an index range with std::thread; the first exception thrown in a
// worker is rethrown in the caller after all workers have stopped.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace mgfast {

// Threads to use for a request of `threads` (0 or negative: all hardware threads).
int resolve_threads(int threads);

// Calls body(begin, end, worker) on contiguous chunks of [0, n), dynamically scheduled.
template <class F>
void parallel_for(std::int64_t n, int threads, std::int64_t chunk, F&& body) {
  const int nt = static_cast<int>(std::min<std::int64_t>(
      resolve_threads(threads), std::max<std::int64_t>(1, (n + chunk - 1) / chunk)));
  if (nt <= 1) {
    if (n > 0) body(std::int64_t{0}, n, 0);
    return;
  }
  std::atomic<std::int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](int worker) {
    try {
      for (;;) {
        const std::int64_t b = next.fetch_add(chunk);
        if (b >= n) break;
        body(b, std::min(n, b + chunk), worker);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next.store(n);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(nt - 1);
  for (int w = 1; w < nt; ++w) pool.emplace_back(run, w);
  run(0);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace mgfast
