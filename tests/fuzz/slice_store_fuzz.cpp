// libFuzzer harness: a packed HDF5 slice file (data/FORMAT.md) as training and
// evaluation meet it. The input is written as a .h5 and opened with SliceStore through
// both read paths (direct preadv of the chunks, and HDF5's own reads); a file that
// opens has its splits, case sources and first and last slices read, then verify().
#include "fuzz_input.h"

#include "strata/data/slice_store.h"

#include <c10/util/Half.h>

#include <vector>

namespace {

void read_everything(const strata::data::SliceStore& store) {
  for (const auto& name : store.split_names()) store.split_info(name);
  for (int32_t c = 0; store.has_case_sources() && c < store.num_cases(); ++c) store.case_source(c);
  const int64_t n = store.num_slices();
  if (n > 0) {
    const int64_t idx[2] = {0, n - 1};
    std::vector<c10::Half> images(static_cast<size_t>(2 * store.image_bytes() / 2));
    std::vector<uint8_t> labels(static_cast<size_t>(2 * store.label_bytes()));
    store.read(idx, 2, images.data(), labels.data());
    store.describe_slice(n - 1);
  }
  store.verify();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  fuzz::InputFile input(data, size, ".h5");
  for (auto path : {data::ReadPath::kDirect, data::ReadPath::kHdf5}) {
    fuzz::expect_clean_refusal([&] { read_everything(data::SliceStore(input.path(), {path})); });
  }
  return 0;
}
