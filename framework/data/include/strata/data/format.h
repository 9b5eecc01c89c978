// The packed slice format (data/FORMAT.md), version 3: object and attribute names and
// versions, shared by the writer (data/, `brats_recipe pack`) and the reader
// (SliceStore). The layout only: what the slices hold (channel names, class names and
// the label map, the split names) is recorded in the file by its writer and read back
// from it; the BraTS packer's values are in strata/dataprep/brats_slices.h. A change to
// the layout that an old reader cannot read bumps kFormatVersion; readers refuse
// versions outside [kOldestReadableVersion, kFormatVersion] with a DataError. Version
// 2 adds the per-case source geometry (the case_* datasets below); version 1 files lack
// it and serve training and evaluation in the packed geometry only. Version 3 stores
// case names as fixed-length strings in a checksummed chunk (no HDF5 global heap
// anywhere in the file, whose variable-length strings a damaged byte turned into a
// crash inside libhdf5), writes every string attribute fixed-length, and adds the root
// attribute `metadata_checksum`.
#pragma once

#include <cstdint>

namespace strata::data::format {

// Root attribute `format`: "strata.<content>.slices", <content> named by the writer
// (the BraTS packer writes "strata.brats.slices"); the reader takes any <content>.
inline constexpr const char* kFormatPrefix = "strata.";
inline constexpr const char* kFormatSuffix = ".slices";
inline constexpr int64_t kFormatVersion = 3;          // root attribute `format_version`
inline constexpr int64_t kOldestReadableVersion = 1;  // version 1: no case_* geometry

// Datasets (paths from the file's root).
inline constexpr const char* kImages = "images";          // float16 [N, channels, H, W], one slice per chunk
inline constexpr const char* kLabels = "labels";          // uint8 [N, H, W] class indices, one slice per chunk
inline constexpr const char* kSliceCase = "slice_case";   // int32 [N]: case index of each slice
inline constexpr const char* kSliceZ = "slice_z";         // int32 [N]: axial index (third voxel axis) in its case
// Case names: version 3 fixed-length UTF-8 strings [C], chunked with Fletcher-32;
// versions 1 and 2 variable-length strings (in HDF5's global heap), contiguous.
inline constexpr const char* kCaseNames = "case_names";
inline constexpr const char* kSplits = "splits";          // group: one int64 dataset of slice indices per split
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
inline constexpr const char* kAttrModalities = "modalities";         // strings [channels]: what each channel holds
inline constexpr const char* kAttrLabelValues = "label_source_values";  // int64 [K]: source label of class k
inline constexpr const char* kAttrClassNames = "class_names";        // strings [K]: stored label k means class k
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
// int64, optional (absent: 1): the packer kept the neighbours a `context`-slice input
// needs, (context - 1) / 2 on each side of every split slice, as slices in no split.
inline constexpr const char* kAttrContext = "context";
// Cross-validation folds (`pack --folds K`, or a split file listing every fold; absent
// otherwise, and in every older file): root attribute `folds` (int64 K), /case_folds
// (int32 [C]: each case's fold 0..K-1, or kTestFold for a case held out in split
// kTestSplit) and /case_class_voxels (int64 [C, classes]: pixels or voxels of each class
// over the case's split data), one chunk each with Fletcher-32. The splits kTrainSplit
// and kValSplit hold one fold in val and the others in train; a reader re-partitions
// them for another fold from these datasets alone (FORMAT.md, "Folds").
inline constexpr const char* kAttrFolds = "folds";
inline constexpr const char* kCaseFolds = "case_folds";
inline constexpr const char* kCaseClassVoxels = "case_class_voxels";
inline constexpr int32_t kTestFold = -1;  // /case_folds of a case in no fold
inline constexpr const char* kTrainSplit = "train";
inline constexpr const char* kValSplit = "val";
inline constexpr const char* kTestSplit = "test";
// Version 3: CRC-32 of all metadata (metadata_checksum.h), int64.
inline constexpr const char* kAttrMetadataChecksum = "metadata_checksum";
inline constexpr int64_t kFirstChecksummedVersion = 3;  // fixed-length names, metadata checksum
// Attributes of each split dataset.
inline constexpr const char* kAttrSplitCases = "cases";                // int64: cases in the split
inline constexpr const char* kAttrSplitClassVoxels = "class_voxels";  // int64 [K]: pixels per class

// Packed volumes (FORMAT.md, "Packed volumes"; read by VolumeStore, volume_store.h):
// whole cases cropped to the brain, one group per case. Its own version line: the root
// datasets case_names and case_dims .. case_sform, /splits and the root attributes
// above are shared with the slices where they apply (/splits holds case indices).
inline constexpr const char* kVolumeFormatSuffix = ".volumes";  // `format`: "strata.<content>.volumes"
inline constexpr int64_t kVolumeFormatVersion = 1;              // root attribute `format_version`
inline constexpr const char* kCases = "cases";                  // group: one group per case, named "0", "1", ...
inline constexpr const char* kCaseImage = "image";              // float16 [C, D, H, W], in each case group
inline constexpr const char* kCaseLabel = "label";              // uint8 [D, H, W] class indices
inline constexpr const char* kCaseClassLocations = "class_locations";  // group: int32 [n, 3] per class "1" .. "K-1"
inline constexpr int64_t kVolumeChunk = 32;                     // chunk side along D, H and W (clipped to the shape)
inline constexpr const char* kCaseCropLo = "case_crop_lo";      // int32 [C, 3]: first source voxel (k, j, i) stored
inline constexpr const char* kCaseShape = "case_shape";         // int32 [C, 3]: stored D, H, W

}  // namespace strata::data::format
