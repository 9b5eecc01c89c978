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
inline constexpr std::array<const char*, 2> kSplitNames = {"train", "val"};  // the splits the packer writes

}  // namespace strata::dataprep::brats_slices
