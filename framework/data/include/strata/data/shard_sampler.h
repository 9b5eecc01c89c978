// ShardSampler: which items each rank reads, batch by batch, in an epoch.
//
// Contract: every rank constructs its sampler from the same arguments except `rank`,
// and then gets the same number of batches of the same size in every epoch, so a
// collective per step can never hang on an uneven shard. No communication is needed:
// each rank derives its share from (num_items, world_size, seed, epoch) alone.
//
// Training mode: each epoch draws one permutation of the items from (seed, epoch),
// identical on every rank (identity when shuffle is off). The permutation is padded
// by wrapping around (TailPolicy::kPad) or cut (kDrop) to a multiple of
// world_size * batch_size, and rank r takes positions r, r + W, r + 2W, ... of it, so
// all batches are full. With kPad a few items appear twice in an epoch; with kDrop a
// few (different ones every epoch) are skipped.
//
// By-case mode (evaluation): whole cases go to ranks, largest first to the least
// loaded rank (ties to the lowest rank), so slice counts are balanced. A rank reads its
// cases in ascending case order and each case's items in ascending order. Batches are
// padded to the common count and size by repeating the rank's last real item; the
// padding rows are marked by IndexBatch::num_valid and must be ignored by the consumer.
//
// Thread safety: immutable after construction; epoch() may be called from any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace strata::data {

enum class TailPolicy { kPad, kDrop };
const char* tail_policy_name(TailPolicy tail);
// "pad" | "drop"; anything else is a ConfigError.
TailPolicy parse_tail_policy(std::string_view name);

// One batch of a rank's epoch.
struct IndexBatch {
  std::vector<int64_t> indices;  // item positions (from a sampler) or slice indices (after map_indices)
  int64_t num_valid = 0;         // rows [0, num_valid) are real; rows after it pad the batch (by-case mode)
};

struct SamplerOptions {
  int64_t batch_size = 16;            // items per batch on each rank
  uint64_t seed = 0;                  // permutation seed: the same on every rank
  bool shuffle = true;                // false: the items in order, every epoch
  TailPolicy tail = TailPolicy::kPad;  // pad by wrapping around, or drop the remainder
};

class ShardSampler {
 public:
  // Training mode over items 0..num_items-1. A ConfigError when rank, world size or
  // batch size are out of range, or when kDrop would leave no batch at all.
  ShardSampler(int64_t num_items, int rank, int world_size, SamplerOptions options);

  // By-case mode: item i belongs to case item_case[i] (any non-negative ids). For a
  // split: by_case(store.cases_of(store.split("val")), rank, world, batch), then
  // map_indices(sampler.epoch(0), store.split("val")).
  static ShardSampler by_case(const std::vector<int32_t>& item_case, int rank, int world_size, int64_t batch_size);

  int64_t num_items() const { return num_items_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int64_t batch_size() const { return options_.batch_size; }
  bool is_by_case() const { return by_case_; }
  int64_t num_batches() const { return num_batches_; }  // per epoch, the same on every rank
  // Real (not padding) rows of this rank per epoch: num_batches * batch_size in
  // training mode, this rank's slice count in by-case mode.
  int64_t num_valid_items() const { return num_valid_; }
  // By-case mode: the case ids this rank holds, ascending (empty in training mode).
  const std::vector<int32_t>& cases() const { return cases_; }

  // This rank's batches in `epoch` (by-case mode: the same every epoch).
  std::vector<IndexBatch> epoch(int64_t epoch) const;
  // Training mode: the rest of `epoch` from global position `start` of its permutation
  // (start = steps done x world size x batch size of the run that stopped, whatever its
  // world size was): the remaining items are dealt to this sampler's ranks as epoch()
  // deals them, padded or cut by the tail policy. epoch_from(e, 0) == epoch(e), and for
  // the same world and batch, epoch_from(e, k * W * B) is epoch(e) without its first k
  // batches. So a run resumed at another world size trains every item of the epoch
  // once (plus the tail's padding).
  std::vector<IndexBatch> epoch_from(int64_t epoch, int64_t start) const;
  // Batches epoch_from(·, start) returns.
  int64_t num_batches_from(int64_t start) const;
  // The permutation of epoch `epoch` that every rank shares (training mode).
  std::vector<int64_t> permutation(int64_t epoch) const;

 private:
  ShardSampler() = default;
  int64_t num_items_ = 0;
  int rank_ = 0;
  int world_size_ = 1;
  SamplerOptions options_;
  bool by_case_ = false;
  int64_t num_batches_ = 0;
  int64_t num_valid_ = 0;
  std::vector<int32_t> cases_;
  std::vector<int64_t> case_items_;  // by-case mode: this rank's items, in reading order
};

// Replaces item positions by the slice indices they stand for: indices[k] becomes
// split[indices[k]] (split as SliceStore::split returns it).
std::vector<IndexBatch> map_indices(std::vector<IndexBatch> batches, const std::vector<int64_t>& split);

}  // namespace strata::data
