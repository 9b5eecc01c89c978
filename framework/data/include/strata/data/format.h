// The packed slice format (data/FORMAT.md), version 3: object names, attribute names
// and the label map, shared by the writer (data/, `brats_recipe pack`) and the reader
// (SliceStore). A change to the layout that an old reader cannot read bumps
// kFormatVersion; readers refuse versions outside [kOldestReadableVersion,
// kFormatVersion] with a DataError. Version 2 adds the per-case source geometry (the
// case_* datasets below); version 1 files lack it and serve training and evaluation in
// the packed geometry only. Version 3 stores case names as fixed-length strings in a
// checksummed chunk (no HDF5 global heap anywhere in the file, whose variable-length
// strings a damaged byte turned into a crash inside libhdf5), writes every string
// attribute fixed-length, and adds the root attribute `metadata_checksum`.
#pragma once

#include <array>
#include <cstdint>

namespace strata::data::format {

inline constexpr const char* kFormatName = "strata.brats.slices";  // root attribute `format`
inline constexpr int64_t kFormatVersion = 3;                        // root attribute `format_version`
inline constexpr int64_t kOldestReadableVersion = 1;                // version 1: no case_* geometry

inline constexpr int kChannels = 4;    // modalities per slice, in kModalities order
inline constexpr int kNumClasses = 4;  // stored label values 0..3
inline constexpr std::array<const char*, kChannels> kModalities = {"t1", "t1ce", "t2", "flair"};
// BraTS label value of each stored class: class c was BraTS label kSourceLabels[c].
inline constexpr std::array<int, kNumClasses> kSourceLabels = {0, 1, 2, 4};
inline constexpr std::array<const char*, kNumClasses> kClassNames = {"background", "necrotic core", "edema",
                                                                     "enhancing tumour"};

// Datasets (paths from the file's root).
inline constexpr const char* kImages = "images";          // float16 [N, 4, H, W], one slice per chunk
inline constexpr const char* kLabels = "labels";          // uint8 [N, H, W], one slice per chunk
inline constexpr const char* kSliceCase = "slice_case";   // int32 [N]: case index of each slice
inline constexpr const char* kSliceZ = "slice_z";         // int32 [N]: axial index (third voxel axis) in its case
// Case names: version 3 fixed-length UTF-8 strings [C], chunked with Fletcher-32;
// versions 1 and 2 variable-length strings (in HDF5's global heap), contiguous.
inline constexpr const char* kCaseNames = "case_names";
inline constexpr const char* kSplits = "splits";          // group: one int64 dataset of slice indices per split
inline constexpr std::array<const char*, 2> kSplitNames = {"train", "val"};
// Version 2: where each case came from, to map its slices back (one row per case).
inline constexpr const char* kCaseDims = "case_dims";              // int32 [C, 3]: nx, ny, nz of the source
inline constexpr const char* kCaseSpacing = "case_spacing";        // float64 [C, 3]: pixdim along i, j, k (mm)
inline constexpr const char* kCaseXformCodes = "case_xform_codes"; // int32 [C, 2]: qform_code, sform_code
inline constexpr const char* kCaseQform = "case_qform";            // float64 [C, 4, 4]: voxel -> world (quaternion)
inline constexpr const char* kCaseSform = "case_sform";            // float64 [C, 4, 4]: voxel -> world (srow)
inline constexpr const char* kCaseCrop = "case_crop";              // int32 [C, 3]: crop_i, crop_j, side
inline constexpr const char* kCaseScale = "case_scale";            // float64 [C]: resize factor = H / side

// Attributes of the root group.
inline constexpr const char* kAttrFormat = "format";
inline constexpr const char* kAttrVersion = "format_version";
inline constexpr const char* kAttrHeight = "height";
inline constexpr const char* kAttrWidth = "width";
inline constexpr const char* kAttrModalities = "modalities";
inline constexpr const char* kAttrLabelValues = "label_source_values";
inline constexpr const char* kAttrClassNames = "class_names";
inline constexpr const char* kAttrNormalisation = "normalisation";
inline constexpr const char* kAttrResize = "resize";
inline constexpr const char* kAttrOrientation = "orientation";
inline constexpr const char* kAttrSelection = "slice_selection";
inline constexpr const char* kAttrSource = "source";
inline constexpr const char* kAttrTool = "tool";
inline constexpr const char* kAttrSeed = "seed";
inline constexpr const char* kAttrValFraction = "val_fraction";
inline constexpr const char* kAttrKeepEmpty = "keep_empty";
inline constexpr const char* kAttrSplitMethod = "split_method";  // how cases were split (absent before it existed)
// Version 3: CRC-32 of all metadata (metadata_checksum.h), int64.
inline constexpr const char* kAttrMetadataChecksum = "metadata_checksum";
inline constexpr int64_t kFirstChecksummedVersion = 3;  // fixed-length names, metadata checksum
// Attributes of each split dataset.
inline constexpr const char* kAttrSplitCases = "cases";                // int64: cases in the split
inline constexpr const char* kAttrSplitClassVoxels = "class_voxels";  // int64 [4]: pixels per class

}  // namespace strata::data::format
