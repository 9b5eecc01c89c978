// Predicted label volumes as NIfTI (see predictions.h).
#include "strata/brats/predictions.h"

#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/dataprep/nifti.h"

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>

namespace strata::brats {

std::string write_prediction(const std::string& dir, const std::string& case_name, const torch::Tensor& pred,
                             const std::vector<int64_t>& label_values) {
  namespace fs = std::filesystem;
  STRATA_CHECK(pred.dim() == 3 && pred.scalar_type() == torch::kByte && pred.device().is_cpu(),
               "a prediction volume is uint8 [Z, H, W] on the CPU");
  const int64_t classes = pred.numel() > 0 ? pred.max().item<int64_t>() + 1 : 0;
  STRATA_CHECK_AS(DataError, classes <= static_cast<int64_t>(label_values.size()),
                  "prediction of case {} has class {}, but only {} label values are known", case_name, classes - 1,
                  label_values.size());
  // Stored class -> BraTS label, in the voxel order NIfTI stores: (k * ny + j) * nx + i.
  torch::Tensor lut = torch::tensor(label_values, torch::kLong).to(torch::kFloat);
  torch::Tensor values = lut.index({pred.to(torch::kLong)}).contiguous();
  const dataprep::Dims3 dims{pred.size(2), pred.size(1), pred.size(0)};  // nx = W (columns), ny = H (rows), nz = Z
  dataprep::NiftiWriteOptions options;
  options.datatype = 2;  // DT_UINT8
  const fs::path target = fs::path(dir) / (case_name + ".nii.gz");
  // nifticlib picks gzip from the name's ending, so the temporary name keeps it.
  const fs::path tmp = fs::path(dir) / fmt::format(".{}.tmp-{}.nii.gz", case_name, ::getpid());
  std::error_code ec;
  try {
    dataprep::write_nifti(tmp.string(), dims, {1.0, 1.0, 1.0}, values.data_ptr<float>(), options);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  core::commit_file(tmp.string(), target.string(), fmt::format("prediction of case {}", case_name));
  return target.string();
}

eval::CasePrediction prediction_writer(const std::string& dir, std::vector<int64_t> label_values) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  STRATA_CHECK_AS(IoError, std::filesystem::is_directory(dir), "cannot create the predictions folder '{}': {}", dir,
                  ec.message());
  return [dir, values = std::move(label_values)](const std::string& case_name, const torch::Tensor& pred) {
    write_prediction(dir, case_name, pred, values);
  };
}

}  // namespace strata::brats
