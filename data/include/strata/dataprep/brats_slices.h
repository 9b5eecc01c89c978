// What the BraTS packer writes into the generic slice layout (strata/data/format.h):
// the format name, the channels (modalities), the label map, the class names and the
// splits. SliceStore reads all of these back from the file; only the packer and the
// BraTS task (tasks/brats) know them. The on-disk values never change: files packed
// before these constants moved here read the same.
#pragma once

#include <array>

namespace strata::dataprep::brats_slices {

inline constexpr const char* kFormatName = "strata.brats.slices";  // root attribute `format`
inline constexpr const char* kVolumeFormatName = "strata.brats.volumes";  // the same, of packed volumes
inline constexpr int kChannels = 4;    // modalities per slice, in kModalities order
inline constexpr int kNumClasses = 4;  // stored label values 0..3
inline constexpr std::array<const char*, kChannels> kModalities = {"t1", "t1ce", "t2", "flair"};
// BraTS label value of each stored class: class c was BraTS label kSourceLabels[c].
inline constexpr std::array<int, kNumClasses> kSourceLabels = {0, 1, 2, 4};
inline constexpr std::array<const char*, kNumClasses> kClassNames = {"background", "necrotic core", "edema",
                                                                     "enhancing tumour"};
// The class `pack --folds` stratifies by (necrotic core): present in most BraTS cases but
// not all, and a fold without either kind would validate on an unrepresentative set.
inline constexpr int kNecrosisClass = 1;
// The splits the packer writes: train and val, and test when cases are held out (--test-fraction).
inline constexpr std::array<const char*, 3> kSplitNames = {"train", "val", "test"};

}  // namespace strata::dataprep::brats_slices
