// Epoch permutations, rank shards and by-case balancing (see shard_sampler.h).
#include "strata/data/shard_sampler.h"

#include "strata/core/error.h"
#include "strata/data/random.h"

#include <algorithm>
#include <map>
#include <numeric>

namespace strata::data {

const char* tail_policy_name(TailPolicy tail) { return tail == TailPolicy::kPad ? "pad" : "drop"; }

TailPolicy parse_tail_policy(std::string_view name) {
  if (name == "pad") return TailPolicy::kPad;
  if (name == "drop") return TailPolicy::kDrop;
  STRATA_THROW(ConfigError, "unknown tail policy '{}' (expected pad or drop)", name);
}

namespace {

void check_world(int rank, int world_size, int64_t batch_size) {
  STRATA_CHECK_AS(ConfigError, world_size >= 1 && rank >= 0 && rank < world_size,
                  "sampler: rank {} is outside a world of {} ranks", rank, world_size);
  STRATA_CHECK_AS(ConfigError, batch_size >= 1, "sampler: batch size must be >= 1, got {}", batch_size);
}

}  // namespace

ShardSampler::ShardSampler(int64_t num_items, int rank, int world_size, SamplerOptions options)
    : num_items_(num_items), rank_(rank), world_size_(world_size), options_(options) {
  check_world(rank, world_size, options.batch_size);
  STRATA_CHECK_AS(ConfigError, num_items >= 0, "sampler: negative item count {}", num_items);
  const int64_t group = static_cast<int64_t>(world_size) * options.batch_size;
  if (options.tail == TailPolicy::kPad) {
    num_batches_ = (num_items + group - 1) / group;
  } else {
    num_batches_ = num_items / group;
    STRATA_CHECK_AS(ConfigError, num_items == 0 || num_batches_ > 0,
                    "sampler: tail=drop with {} items, {} ranks and batch size {} leaves no batch (use tail=pad or a "
                    "smaller batch)", num_items, world_size, options.batch_size);
  }
  num_valid_ = num_batches_ * options.batch_size;
}

ShardSampler ShardSampler::by_case(const std::vector<int32_t>& item_case, int rank, int world_size,
                                   int64_t batch_size) {
  check_world(rank, world_size, batch_size);
  ShardSampler s;
  s.num_items_ = static_cast<int64_t>(item_case.size());
  s.rank_ = rank;
  s.world_size_ = world_size;
  s.options_.batch_size = batch_size;
  s.options_.shuffle = false;
  s.by_case_ = true;

  std::map<int32_t, std::vector<int64_t>> items_of;  // case -> its items, ascending
  for (size_t i = 0; i < item_case.size(); ++i) {
    STRATA_CHECK_AS(DataError, item_case[i] >= 0, "sampler: negative case id {} for item {}", item_case[i], i);
    items_of[item_case[i]].push_back(static_cast<int64_t>(i));
  }
  // Largest case first to the least loaded rank: the classic LPT balance, within
  // one largest case of the best split.
  std::vector<std::pair<int64_t, int32_t>> order;
  for (const auto& [c, items] : items_of) order.emplace_back(-static_cast<int64_t>(items.size()), c);
  std::sort(order.begin(), order.end());
  std::vector<int64_t> load(static_cast<size_t>(world_size), 0);
  std::map<int32_t, int> owner;
  for (const auto& [neg, c] : order) {
    auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += -neg;
    owner[c] = static_cast<int>(r);
  }
  for (const auto& [c, r] : owner) {
    if (r == rank) s.cases_.push_back(c);  // std::map iterates in ascending case order
  }
  for (int32_t c : s.cases_) {
    const auto& items = items_of[c];
    s.case_items_.insert(s.case_items_.end(), items.begin(), items.end());
  }
  const int64_t max_load = *std::max_element(load.begin(), load.end());
  s.num_batches_ = (max_load + batch_size - 1) / batch_size;
  s.num_valid_ = static_cast<int64_t>(s.case_items_.size());
  return s;
}

std::vector<int64_t> ShardSampler::permutation(int64_t epoch) const {
  std::vector<int64_t> perm(static_cast<size_t>(num_items_));
  std::iota(perm.begin(), perm.end(), 0);
  if (options_.shuffle && num_items_ > 1) {
    // Fisher-Yates from a stream that depends on (seed, epoch) only.
    Rng rng(mix64(options_.seed ^ mix64(static_cast<uint64_t>(epoch) + 0x51ed270b27f3c36bull)));
    for (int64_t i = num_items_ - 1; i > 0; --i) {
      std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(rng.below(i + 1))]);
    }
  }
  return perm;
}

std::vector<IndexBatch> ShardSampler::epoch(int64_t epoch) const {
  const int64_t b = options_.batch_size;
  std::vector<IndexBatch> batches(static_cast<size_t>(num_batches_));
  if (num_batches_ == 0) return batches;
  if (by_case_) {
    // Repeat the last real item to fill the batches; a rank without cases repeats
    // item 0 (any readable item: its rows are all padding).
    const int64_t filler = case_items_.empty() ? 0 : case_items_.back();
    for (int64_t k = 0; k < num_batches_; ++k) {
      IndexBatch& batch = batches[static_cast<size_t>(k)];
      for (int64_t j = 0; j < b; ++j) {
        const int64_t at = k * b + j;
        if (at < num_valid_) {
          batch.indices.push_back(case_items_[static_cast<size_t>(at)]);
          ++batch.num_valid;
        } else {
          batch.indices.push_back(filler);
        }
      }
    }
    return batches;
  }
  return epoch_from(epoch, 0);
}

int64_t ShardSampler::num_batches_from(int64_t start) const {
  const int64_t group = static_cast<int64_t>(world_size_) * options_.batch_size;
  const int64_t left = std::max<int64_t>(0, num_items_ - start);
  return options_.tail == TailPolicy::kPad ? (left + group - 1) / group : left / group;
}

std::vector<IndexBatch> ShardSampler::epoch_from(int64_t epoch, int64_t start) const {
  STRATA_CHECK(!by_case_, "epoch_from() is for training mode");
  STRATA_CHECK(start >= 0, "negative start {}", start);
  const int64_t b = options_.batch_size;
  const int64_t batches_left = num_batches_from(start);
  std::vector<IndexBatch> batches(static_cast<size_t>(batches_left));
  if (batches_left == 0 || num_items_ == 0) return batches;
  const std::vector<int64_t> perm = permutation(epoch);
  const int64_t w = world_size_;
  for (int64_t k = 0; k < batches_left; ++k) {
    IndexBatch& batch = batches[static_cast<size_t>(k)];
    batch.indices.reserve(static_cast<size_t>(b));
    for (int64_t j = 0; j < b; ++j) {
      // Row (k, j) of this rank is position start + (k * b + j) * w + rank of the padded
      // permutation; kPad wraps past the end, kDrop never gets there.
      const int64_t pos = start + (k * b + j) * w + rank_;
      batch.indices.push_back(perm[static_cast<size_t>(pos % num_items_)]);
    }
    batch.num_valid = b;
  }
  return batches;
}

std::vector<IndexBatch> map_indices(std::vector<IndexBatch> batches, const std::vector<int64_t>& split) {
  for (auto& batch : batches) {
    for (auto& i : batch.indices) {
      STRATA_CHECK(i >= 0 && i < static_cast<int64_t>(split.size()), "item {} outside a split of {}", i,
                   split.size());
      i = split[static_cast<size_t>(i)];
    }
  }
  return batches;
}

}  // namespace strata::data
