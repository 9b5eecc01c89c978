// Predicted label volumes as NIfTI (see predictions.h).
#include "strata/brats/predictions.h"

#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/nifti.h"

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <set>

namespace strata::brats {

namespace {

// Writes through a temporary name in the target's folder (created), renamed into place;
// `write` gets the temporary path. nifticlib picks gzip from the name's ending, so the
// temporary name keeps it.
template <class Write>
void write_atomically(const std::string& path, const std::string& what, Write&& write) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  STRATA_CHECK_AS(IoError, fs::is_directory(dir), "cannot create the folder '{}' for {}: {}", dir.string(), what,
                  ec.message());
  const fs::path tmp = dir / fmt::format(".{}.tmp-{}.nii.gz", target.filename().string(), ::getpid());
  try {
    write(tmp.string());
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  core::commit_file(tmp.string(), target.string(), what);
}

}  // namespace

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
  const std::string target = (fs::path(dir) / (case_name + ".nii.gz")).string();
  write_atomically(target, fmt::format("prediction of case {}", case_name), [&](const std::string& tmp) {
    dataprep::write_nifti(tmp, dims, {1.0, 1.0, 1.0}, values.data_ptr<float>(), options);
  });
  return target;
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


std::string probabilities_path(const std::string& out, const std::string& case_name) {
  return (std::filesystem::path(out) / "probabilities" / (case_name + ".nii.gz")).string();
}

std::vector<uint8_t> classes_of(const torch::Tensor& probabilities) {
  STRATA_CHECK(probabilities.dim() == 4, "classes_of: probabilities [K, nz, ny, nx], got {}", probabilities.sizes());
  torch::Tensor c = probabilities.argmax(0).to(torch::kByte).contiguous();
  return {c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel()};
}

std::vector<uint8_t> source_labels(const std::vector<uint8_t>& classes) {
  constexpr auto& kLabels = dataprep::brats_slices::kSourceLabels;
  std::vector<uint8_t> labels(classes.size());
  for (size_t i = 0; i < classes.size(); ++i) {
    STRATA_CHECK(classes[i] < std::size(kLabels), "class {} has no BraTS label", classes[i]);
    labels[i] = static_cast<uint8_t>(kLabels[classes[i]]);
  }
  return labels;
}

void write_labels_file(const std::string& path, const std::string& reference, const dataprep::Dims3& dims,
                       const std::vector<uint8_t>& labels) {
  STRATA_CHECK(static_cast<int64_t>(labels.size()) == dims[0] * dims[1] * dims[2], "{} labels for {}x{}x{}",
               labels.size(), dims[0], dims[1], dims[2]);
  write_atomically(path, "the labels " + path, [&](const std::string& tmp) {
    dataprep::write_labels_like(tmp, reference, dims, labels.data());
  });
}

void write_probabilities_file(const std::string& path, const std::string& reference, const dataprep::Dims3& dims,
                              const torch::Tensor& probabilities) {
  STRATA_CHECK(probabilities.dim() == 4 && probabilities.size(1) == dims[2] && probabilities.size(2) == dims[1] &&
                   probabilities.size(3) == dims[0],
               "probabilities of shape {} for a volume of {}x{}x{}", probabilities.sizes(), dims[0], dims[1], dims[2]);
  torch::Tensor p = probabilities.to(torch::kCPU, torch::kFloat).contiguous();
  write_atomically(path, "the probabilities " + path, [&](const std::string& tmp) {
    dataprep::write_series_like(tmp, reference, dims, p.size(0), p.data_ptr<float>());
  });
}

torch::Tensor read_probabilities_file(const std::string& path, int64_t classes, dataprep::Dims3* dims) {
  dataprep::VolumeSeries s = dataprep::read_nifti_series(path);
  const dataprep::Dims3& d = s.grid.dims;
  STRATA_CHECK_AS(DataError, s.volumes == classes,
                  "{}: holds {} volume(s) along the 4th dimension, but probabilities of {} classes are {} volumes (a "
                  "file of predict --save-probabilities)", path, s.volumes, classes, classes);
  torch::Tensor p = torch::from_blob(s.grid.data.data(), {classes, d[2], d[1], d[0]}, torch::kFloat).clone();
  const double low = p.min().item<double>();
  const double off = (p.sum(0) - 1.0).abs().max().item<double>();
  STRATA_CHECK_AS(DataError, low >= 0.0 && off <= 1e-3,
                  "{}: not class probabilities (the smallest value is {}, and a voxel's values sum to 1 off by up to "
                  "{}): a file of predict --save-probabilities is expected", path, low, off);
  if (dims) *dims = d;
  return p;
}

namespace {

// The probabilities folder of an `ensemble` input: <dir>/probabilities, or <dir> itself.
std::string probabilities_dir(const std::string& input) {
  const std::filesystem::path nested = std::filesystem::path(input) / "probabilities";
  std::error_code ec;
  return std::filesystem::is_directory(nested, ec) ? nested.string() : input;
}

}  // namespace

std::vector<std::string> ensemble_cases(const std::vector<std::string>& inputs) {
  STRATA_CHECK_AS(ConfigError, !inputs.empty(), "ensemble: no --input folder");
  std::vector<std::set<std::string>> held;
  for (const auto& in : inputs) {
    const std::string dir = probabilities_dir(in);
    core::require_folder<core::DataError>(dir, "ensemble --input");
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      const std::string file = e.path().filename().string();
      const std::string ext = ".nii.gz";
      if (e.is_regular_file() && file[0] != '.' && file.size() > ext.size() &&
          file.compare(file.size() - ext.size(), ext.size(), ext) == 0) {
        names.insert(file.substr(0, file.size() - ext.size()));
      }
    }
    STRATA_CHECK_AS(DataError, !names.empty(),
                    "ensemble --input '{}': no <case>.nii.gz probabilities in {} (write them with predict "
                    "--save-probabilities)", in, dir);
    held.push_back(std::move(names));
  }
  for (size_t a = 0; a < inputs.size(); ++a) {
    for (size_t b = 0; b < inputs.size(); ++b) {
      for (const auto& name : held[a]) {
        STRATA_CHECK_AS(DataError, held[b].count(name) != 0,
                        "ensemble: case {} has probabilities in '{}' but not in '{}': every input needs the same cases",
                        name, inputs[a], inputs[b]);
      }
    }
  }
  return {held[0].begin(), held[0].end()};
}

void ensemble_case(const std::vector<std::string>& inputs, const std::string& case_name, const std::string& out,
                   bool save_probabilities, const Postprocessing* postprocess) {
  constexpr int64_t kClasses = dataprep::brats_slices::kNumClasses;
  const std::string reference =
      (std::filesystem::path(probabilities_dir(inputs[0])) / (case_name + ".nii.gz")).string();
  dataprep::Dims3 dims{};
  torch::Tensor sum = read_probabilities_file(reference, kClasses, &dims);
  for (size_t m = 1; m < inputs.size(); ++m) {
    const std::string path = (std::filesystem::path(probabilities_dir(inputs[m])) / (case_name + ".nii.gz")).string();
    dataprep::Dims3 other{};
    torch::Tensor p = read_probabilities_file(path, kClasses, &other);
    STRATA_CHECK_AS(DataError, other == dims, "ensemble: case {} is {}x{}x{} in {} but {}x{}x{} in {}", case_name,
                    dims[0], dims[1], dims[2], reference, other[0], other[1], other[2], path);
    sum.add_(p);
  }
  if (inputs.size() > 1) sum.div_(static_cast<double>(inputs.size()));
  if (save_probabilities) write_probabilities_file(probabilities_path(out, case_name), reference, dims, sum);
  std::vector<uint8_t> labels = source_labels(classes_of(sum));
  if (postprocess) apply_postprocessing(labels, dims, *postprocess);
  write_labels_file((std::filesystem::path(out) / (case_name + ".nii.gz")).string(), reference, dims, labels);
}

}  // namespace strata::brats
