// libFuzzer harness: pack's --split-file (JSON: {"train": [...], "val": [...]} or a
// list of them, nnU-Net's splits_final.json) against four case names, entry 0 and 1.
#include "fuzz_input.h"

#include "strata/dataprep/packer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  static const std::vector<std::string> kCases{"BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002", "case 3"};
  fuzz::InputFile input(data, size, ".json");
  for (int fold : {0, 1}) {
    fuzz::expect_clean_refusal([&] { dataprep::splits_from_file(kCases, input.path(), fold); });
  }
  return 0;
}
