// libFuzzer harness: a NIfTI file as `pack` meets it. The input is written as a .nii
// (or .nii.gz when it starts with gzip's magic) and read with read_nifti; a volume that
// reads then goes through pack's validation and preparation of one case whose four
// modalities and seg are all that file: the size agreement, the label remap ({0,1,2,4}
// only), normalisation over the brain, cropping and resizing to 8x8 slices.
#include "fuzz_input.h"

#include "strata/dataprep/nifti.h"
#include "strata/dataprep/packer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata;
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  fuzz::InputFile input(data, size, gz ? ".nii.gz" : ".nii");
  fuzz::expect_clean_refusal([&] {
    dataprep::read_nifti(input.path());
    dataprep::CaseFiles files;
    files.name = "fuzz_case";
    files.modalities = {input.path(), input.path(), input.path(), input.path()};
    files.seg = input.path();
    dataprep::PackOptions options;
    options.size = 8;
    options.keep_empty = 1.0;
    dataprep::prepare_case(files, options);
  });
  return 0;
}
