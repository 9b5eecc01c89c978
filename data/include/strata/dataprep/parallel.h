// run_ordered: the worker pool of synth and pack. Items 0..n-1 are produced on worker
// threads, in any order, and consumed on the calling thread in index order, so the
// output (an HDF5 file, a summary) is identical whatever the thread count.
//
// At most `window` items are produced ahead of the consumer, which bounds memory.
// The first exception, from a producer or from the consumer, stops the pool: workers
// finish the item in hand, are joined, and the exception is rethrown to the caller.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace strata::dataprep {

// Worker threads to use for `requested` (0: one per hardware thread), at most `items`.
inline int resolve_workers(int requested, int64_t items) {
  int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int w = requested > 0 ? requested : hw;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(w, std::max<int64_t>(items, 1))));
}

template <class T>
void run_ordered(int64_t n, int workers, int64_t window, const std::function<T(int64_t)>& produce,
                 const std::function<void(int64_t, T&&)>& consume) {
  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, T> ready;
  int64_t next_claim = 0, consumed = 0;
  bool stop = false;
  std::exception_ptr error;
  window = std::max<int64_t>(window, workers);

  auto fail = [&](std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(mu);
    if (!error) error = e;
    stop = true;
    cv.notify_all();
  };
  auto worker = [&] {
    for (;;) {
      int64_t i;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || next_claim >= n || next_claim < consumed + window; });
        if (stop || next_claim >= n) return;
        i = next_claim++;
      }
      try {
        T item = produce(i);
        std::lock_guard<std::mutex> lock(mu);
        ready.emplace(i, std::move(item));
        cv.notify_all();
      } catch (...) {
        fail(std::current_exception());
        return;
      }
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < workers; ++t) threads.emplace_back(worker);
  try {
    for (int64_t i = 0; i < n; ++i) {
      std::optional<T> item;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return error || ready.count(i) > 0; });
        if (error) break;
        item.emplace(std::move(ready.at(i)));
        ready.erase(i);
      }
      consume(i, std::move(*item));
      std::lock_guard<std::mutex> lock(mu);
      consumed = i + 1;
      cv.notify_all();
    }
  } catch (...) {
    fail(std::current_exception());
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace strata::dataprep
