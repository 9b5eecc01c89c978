// One-process tests of the train module: LR plateau rule and state, checkpoint files,
// autocast scopes, AMP mode parsing, gradient clipping on the device, ScalarReader.
#include "strata/core/error.h"
#include "strata/train/amp.h"
#include "strata/model/checkpoint.h"
#include "strata/model/model_loader.h"
#include "strata/model/state_dict.h"
#include "strata/train/fused_adam.h"
#include "strata/train/grad_clip.h"
#include "strata/train/lr_plateau.h"
#include "strata/train/scalar_reader.h"
#include "strata/train/task_registry.h"

#include "test_util.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

namespace strata::train {
namespace {

namespace fs = std::filesystem;

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("train_test") {}
};

torch::optim::Adam make_adam(torch::Tensor& w, double lr) {
  return torch::optim::Adam(std::vector<torch::Tensor>{w}, torch::optim::AdamOptions(lr));
}

TEST(LrPlateauTest, ReducesAfterPatienceAndRespectsMinLr) {
  auto w = torch::zeros({1}, torch::requires_grad());
  auto opt = make_adam(w, 1e-3);
  PlateauOptions o;
  o.factor = 0.5;
  o.patience = 1;
  o.min_lr = 3e-4;
  LrPlateau sched(opt, o);
  EXPECT_FALSE(sched.step(0.50));  // best
  EXPECT_FALSE(sched.step(0.60));  // better
  EXPECT_FALSE(sched.step(0.60));  // 1 bad epoch (not > 1e-4 relative better)
  EXPECT_TRUE(sched.step(0.59));   // 2 bad > patience 1: halve
  EXPECT_DOUBLE_EQ(sched.lr(), 5e-4);
  EXPECT_FALSE(sched.step(0.59));
  EXPECT_TRUE(sched.step(0.59));   // halve again, clamped to min_lr
  EXPECT_DOUBLE_EQ(sched.lr(), 3e-4);
  EXPECT_FALSE(sched.step(0.1));
  EXPECT_FALSE(sched.step(0.1));   // at min_lr: nothing left to reduce
  EXPECT_DOUBLE_EQ(sched.lr(), 3e-4);
  EXPECT_DOUBLE_EQ(sched.best(), 0.60);
}

TEST(LrPlateauTest, StateRoundTripsThroughAnArchive) {
  auto w = torch::zeros({1}, torch::requires_grad());
  auto opt = make_adam(w, 1e-3);
  PlateauOptions o;
  o.patience = 3;
  LrPlateau sched(opt, o);
  sched.step(0.7);
  sched.step(0.6);
  sched.step(0.6);
  torch::serialize::OutputArchive out;
  sched.save(out);
  TempDir dir;
  auto path = (dir.path / "s.pt").string();
  out.save_to(path);

  auto w2 = torch::zeros({1}, torch::requires_grad());
  auto opt2 = make_adam(w2, 1.0);
  LrPlateau restored(opt2, o);
  torch::serialize::InputArchive in;
  in.load_from(path);
  restored.load(in);
  EXPECT_DOUBLE_EQ(restored.best(), 0.7);
  EXPECT_EQ(restored.bad_epochs(), 2);
  EXPECT_DOUBLE_EQ(restored.lr(), 1e-3);
  EXPECT_THROW(LrPlateau(opt2, PlateauOptions{true, 1.5}), core::ConfigError);
}

// Tasks by name: a factory registered from outside the engine is found by its name and
// given the config; an unknown name lists the registered ones; a name is taken once.
TEST(TaskRegistryTest, RegisteredFactoriesAreFoundByNameAndUnknownNamesListTheRegistered) {
  std::string seen;
  register_task("registry_test_a", "a test task", [&seen](const TaskArgs& args) {
    seen = args.config_yaml;
    return std::shared_ptr<Task>();
  });
  EXPECT_TRUE(has_task("registry_test_a"));
  EXPECT_EQ(make_task("registry_test_a", TaskArgs{"x: 1\n"}), nullptr);
  EXPECT_EQ(seen, "x: 1\n");
  const auto names = task_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "registry_test_a: a test task"), names.end());
  const std::string message = test::error_of([] { make_task("registry_test_missing", TaskArgs{}); });
  EXPECT_NE(message.find("no task named 'registry_test_missing': the registered tasks are "), std::string::npos)
      << message;
  EXPECT_NE(message.find("registry_test_a"), std::string::npos) << message;
  EXPECT_THROW(make_task("registry_test_missing", TaskArgs{}), core::ConfigError);
  EXPECT_THROW(register_task("registry_test_a", "again", [](const TaskArgs&) { return std::shared_ptr<Task>(); }),
               core::InternalError);
}

TEST(CheckpointTest, AtomicSaveLeavesNoTemporaryAndRoundTripsMeta) {
  TempDir dir;
  auto path = (dir.path / "sub" / "last.pt").string();
  model::CheckpointMeta meta;
  meta.config_yaml = "train:\n  lr: 0.1\n";
  meta.model_yaml = "widths: [4, 8]\n";
  meta.epoch = 3;
  meta.step = 120;
  meta.step_in_epoch = 7;
  meta.best_metric = 0.5;
  meta.reason = "preempt";
  torch::serialize::OutputArchive out;
  model::write_meta(out, meta);
  out.write("model.w", torch::arange(5));
  model::save_atomic(out, path);
  for (auto& e : fs::directory_iterator(dir.path / "sub")) EXPECT_EQ(e.path().filename(), "last.pt");

  auto in = model::open_checkpoint(path);
  model::CheckpointMeta back = model::read_meta(in, path);
  EXPECT_EQ(back.config_yaml, meta.config_yaml);
  EXPECT_EQ(back.model_yaml, meta.model_yaml);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.step, 120);
  EXPECT_EQ(back.step_in_epoch, 7);
  EXPECT_DOUBLE_EQ(back.best_metric, 0.5);
  EXPECT_EQ(back.reason, "preempt");
  torch::Tensor w;
  in.read("model.w", w);
  EXPECT_TRUE(torch::equal(w, torch::arange(5)));
}

TEST(CheckpointTest, MissingCorruptAndForeignFilesAreCheckpointErrors) {
  TempDir dir;
  EXPECT_THROW(model::open_checkpoint((dir.path / "none.pt").string()), core::CheckpointError);
  auto bad = (dir.path / "bad.pt").string();
  std::ofstream(bad) << "not a zip archive";
  try {
    model::open_checkpoint(bad);
    FAIL() << "corrupt file opened";
  } catch (const core::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.pt"), std::string::npos);
  }
  // A valid archive without Strata's header.
  auto foreign = (dir.path / "foreign.pt").string();
  torch::serialize::OutputArchive out;
  out.write("weights", torch::ones({2}));
  out.save_to(foreign);
  auto in = model::open_checkpoint(foreign);
  EXPECT_THROW(model::read_meta(in, foreign), core::CheckpointError);
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A checkpoint with metadata and one tensor of a recognisable byte pattern.
void save_marked(const std::string& path, float value) {
  model::CheckpointMeta meta;
  meta.config_yaml = "train:\n  lr: 0.123456\n";
  meta.reason = "last";
  torch::serialize::OutputArchive out;
  model::write_meta(out, meta);
  out.write("model.w", torch::full({4096}, value));
  model::save_atomic(out, path);
}

// A model that is not the U-Net: one linear layer of `out` outputs.
class LinearModel : public nn::Model {
 public:
  explicit LinearModel(int64_t out) : fc_(register_module("fc", torch::nn::Linear(3, out))) {}
  torch::Tensor forward(torch::Tensor x) override { return fc_->forward(x); }
  std::string describe() const override { return fmt::format("Linear(3 -> {})", fc_->options.out_features()); }

 private:
  torch::nn::Linear fc_;
};

// load_checkpoint builds any model from the stored model section through the caller's
// builder, loads its weights, and names a tensor whose shape does not fit.
TEST(CheckpointTest, AnyModelLoadsThroughItsBuilderAndMisfitsAreNamed) {
  TempDir dir;
  const std::string path = (dir.path / "linear.pt").string();
  torch::manual_seed(3);
  LinearModel saved(2);
  model::CheckpointMeta meta;
  meta.model_yaml = "out: 2\n";
  meta.reason = "last";
  torch::serialize::OutputArchive archive, weights;
  model::write_meta(archive, meta);
  saved.save(weights);
  archive.write("model", weights);
  model::save_atomic(archive, path);

  auto build = [](int64_t out) {
    return [out](const model::CheckpointMeta& m) {
      EXPECT_EQ(m.model_yaml, "out: 2\n");
      return std::make_shared<LinearModel>(out);
    };
  };
  model::LoadedCheckpoint loaded = model::load_checkpoint(path, build(2));
  EXPECT_TRUE(torch::equal(loaded.model->parameters()[0], saved.parameters()[0]));
  EXPECT_EQ(loaded.meta.reason, "last");
  const std::string message = test::error_of([&] { model::load_checkpoint(path, build(5)); });
  EXPECT_NE(message.find("the weights of '" + path + "' do not fit its model section (Linear(3 -> 5)): 'fc.weight' "
                         "has shape [2, 3] where that architecture needs [5, 3]"),
            std::string::npos)
      << message;
}

// One byte of a tensor's pickled size changed (70000 -> 604 million floats): libtorch
// would allocate 2.4 GB while unpickling, before any checksum of Strata's is compared.
// The zip's own CRC-32 of the record refuses it first, naming the file and the record.
TEST(CheckpointTest, APickledSizeChangedIsRefusedByTheRecordsCrcBeforeLibtorchReadsIt) {
  TempDir dir;
  const std::string path = (dir.path / "last.pt").string();
  torch::serialize::OutputArchive out;
  model::CheckpointMeta meta;
  meta.reason = "last";
  model::write_meta(out, meta);
  out.write("model.w", torch::full({70000}, 0.5f));
  model::save_atomic(out, path);
  std::string bytes = bytes_of(path);
  const std::string size_op{'J', '\x70', '\x11', '\x01', '\x00'};  // pickle BININT 70000
  const size_t at = bytes.find(size_op);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 4] = '\x24';
  write_bytes(path, bytes);
  try {
    model::open_checkpoint(path);
    FAIL() << "a changed tensor size was read";
  } catch (const core::CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("record 'archive/data.pkl': CRC error"), std::string::npos) << what;
  }
}

// The same for a PyTorch state_dict (fuzz_checkpoint's finding: a BINPUT changed into a
// LONG_BINPUT made libtorch's unpickler size its memo for 1.3 billion values, 20 GB).
// Here one byte of a key in data.pkl changes; the record's CRC-32 refuses the file
// before the pickle is read, naming the file and the record.
TEST(CheckpointTest, AChangedByteOfAStateDictIsRefusedByTheRecordsCrcBeforeLibtorchReadsIt) {
  TempDir dir;
  const std::string path = (dir.path / "weights.pt").string();
  LinearModel saved(2);
  model::export_state_dict(saved, path);
  std::string bytes = bytes_of(path);
  const size_t at = bytes.find("fc.weight");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 8] = 'T';
  write_bytes(path, bytes);
  LinearModel loaded(2);
  const std::string message = test::error_of([&] { model::import_state_dict(loaded, path); });
  EXPECT_NE(message.find("PyTorch state_dict '" + path + "' is corrupt or not a libtorch archive: record "
                         "'archive/data.pkl': CRC error"),
            std::string::npos)
      << message;
}

// The disk fills up while a checkpoint is written (here: the file may not grow past
// 64 KiB): an IoError naming the file and the system's reason, not an abort from
// libtorch's zip writer; the previous checkpoint stays, and no temporary is left.
TEST(CheckpointTest, AFailedWriteIsAnIoErrorAndKeepsThePreviousCheckpoint) {
  TempDir dir;
  const std::string path = (dir.path / "best.pt").string();
  save_marked(path, 1.0f);
  std::string message;
  {
    test::FileSizeLimit limit(64 * 1024);
    torch::serialize::OutputArchive out;
    model::write_meta(out, model::CheckpointMeta{});
    out.write("model.w", torch::ones({1 << 20}));
    message = test::error_of([&] { model::save_atomic(out, path); });
  }
  EXPECT_NE(message.find("cannot write the checkpoint '" + path + "': File too large (after 65536 bytes"),
            std::string::npos)
      << message;
  auto in = model::open_checkpoint(path);
  torch::Tensor w;
  in.read("model.w", w);
  EXPECT_TRUE(torch::equal(w, torch::full({4096}, 1.0f)));
  for (auto& e : fs::directory_iterator(dir.path)) EXPECT_EQ(e.path().filename(), "best.pt");
}

uint32_t le32(const std::string& b, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}
uint16_t le16(const std::string& b, size_t at) { return static_cast<uint16_t>(le32(b.substr(at, 2) + "\0\0", 0)); }
void put_le32(std::string& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// Recomputes the CRC-32 of every stored (uncompressed) record of a zip wherever the
// archive keeps it (central directory, local header, data descriptor): what a tool that
// rewrites archives would do.
void restamp_zip_crcs(std::string& zip) {
  const size_t end = zip.rfind("PK\5\6");
  ASSERT_NE(end, std::string::npos);
  size_t entry = le32(zip, end + 16);
  for (int i = 0; i < le16(zip, end + 10); ++i, entry += 46 + le16(zip, entry + 28) + le16(zip, entry + 30) +
                                                    le16(zip, entry + 32)) {
    if (le16(zip, entry + 10) != 0) continue;  // deflated (libtorch's code files): left as they are
    const uint32_t size = le32(zip, entry + 20);
    const size_t local = le32(zip, entry + 42);
    const size_t data = local + 30 + le16(zip, local + 26) + le16(zip, local + 28);
    const auto crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(zip.data() + data), size));
    put_le32(zip, entry + 16, crc);
    if (le16(zip, local + 6) & 0x8) {  // the local header holds zeros, a descriptor follows the data
      put_le32(zip, data + size + (zip.compare(data + size, 4, "PK\7\x08") ? 0 : 4), crc);
    } else {
      put_le32(zip, local + 14, crc);
    }
  }
}

// A changed byte in a tensor or in the metadata is refused by the zip's CRC-32 of its
// record; where those were recomputed after the change, Strata's own checksums still
// find it, and the error names the file and the value.
TEST(CheckpointTest, ChecksumsNameTheAlteredValue) {
  TempDir dir;
  const std::string path = (dir.path / "last.pt").string();
  save_marked(path, 1234.5f);
  const std::string good = bytes_of(path);
  const float value = 1234.5f;
  const std::string pattern(reinterpret_cast<const char*>(&value), sizeof(value));
  const size_t at = good.find(pattern + pattern + pattern);
  ASSERT_NE(at, std::string::npos);
  std::string bad = good;
  bad[at + 4 * 100 + 1] ^= 0x10;  // a weight changes from 1234.5 to another finite value
  write_bytes(path, bad);
  std::string message = test::error_of([&] { model::open_checkpoint(path); });
  EXPECT_NE(message.find("record 'archive/data/0': CRC error"), std::string::npos) << message;
  restamp_zip_crcs(bad);
  write_bytes(path, bad);
  message = test::error_of([&] { model::open_checkpoint(path); });
  EXPECT_NE(message.find("checkpoint '" + path + "' is corrupt: 'model.w' does not match its checksum"),
            std::string::npos)
      << message;

  bad = good;
  const size_t lr = bad.find("0.123456");
  ASSERT_NE(lr, std::string::npos);
  bad[lr + 2] = '9';
  restamp_zip_crcs(bad);
  write_bytes(path, bad);
  message = test::error_of([&] { model::open_checkpoint(path); });
  EXPECT_NE(message.find("'meta.config' does not match its checksum"), std::string::npos) << message;
}

// Format 1 (before checksums) still loads, unverified.
TEST(CheckpointTest, Format1CheckpointsLoadWithoutChecksums) {
  TempDir dir;
  const std::string path = (dir.path / "old.pt").string();
  model::CheckpointMeta meta;
  meta.format = 1;
  meta.epoch = 4;
  torch::serialize::OutputArchive out;
  model::write_meta(out, meta);
  out.write("model.w", torch::arange(3));
  out.save_to(path);  // as Strata wrote it then: no meta.checksums
  auto in = model::open_checkpoint(path);
  EXPECT_EQ(model::read_meta(in, path).format, 1);
  EXPECT_EQ(model::read_meta(in, path).epoch, 4);
}

// Any failure while reading a part of a checkpoint (libtorch's c10::Error, a failed
// lookup's std::out_of_range) becomes a CheckpointError naming the file and the part;
// Strata's own errors pass unchanged.
TEST(CheckpointTest, ReadFailuresBecomeCheckpointErrorsNamingTheFile) {
  auto message_of = [](auto&& read) {
    try {
      model::read_checkpoint_part("/runs/a/last.pt", "the training state", read);
    } catch (const core::CheckpointError& e) {
      return std::string(e.what());
    }
    return std::string("no CheckpointError");
  };
  EXPECT_NE(message_of([] { return std::map<int, int>().at(1); })
                .find("cannot read the training state of checkpoint '/runs/a/last.pt'"),
            std::string::npos);
  EXPECT_NE(message_of([] { TORCH_CHECK(false, "expected : but found ')'"); }).find("expected : but found ')'"),
            std::string::npos);
  EXPECT_EQ(message_of([] { STRATA_THROW(CheckpointError, "own message"); }).rfind("own message", 0), 0u);
}

TEST(AmpTest, ParsingAndCpuFallback) {
  EXPECT_EQ(parse_amp("bf16"), AmpMode::kBf16);
  EXPECT_THROW(parse_amp("fp8"), core::ConfigError);
  EXPECT_EQ(resolve_amp(AmpMode::kFp16, torch::Device(torch::kCPU)), AmpMode::kOff);
  EXPECT_EQ(resolve_amp(AmpMode::kBf16, torch::Device(torch::kCPU)), AmpMode::kBf16);
}

TEST(AmpTest, AutocastScopeCastsMatmulsAndRestores) {
  auto a = torch::randn({4, 4}), b = torch::randn({4, 4});
  {
    AutocastScope scope(AmpMode::kBf16, torch::Device(torch::kCPU));
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat);
  AutocastScope off(AmpMode::kOff, torch::Device(torch::kCPU));
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat);
}

TEST(AmpTest, DisabledScalerIsTheIdentity) {
  GradScaler scaler(false, torch::Device(torch::kCPU), nullptr);
  auto loss = torch::tensor(2.5f);
  EXPECT_TRUE(torch::equal(scaler.scale(loss), loss));
  EXPECT_FALSE(scaler.unscale_and_check({torch::full({2}, INFINITY)}));
  EXPECT_DOUBLE_EQ(scaler.scale_value(), 1.0);
}

// fp16 whose every step overflows at any scale makes no progress, silently: after
// max_consecutive_skips skipped steps in a row the scaler says so, and the trainer's
// finite check stops the run with it. A clean step starts the count again.
TEST(AmpTest, SkippedStepsInARowBeyondTheLimitAreAStall) {
  ScalerOptions so;
  so.max_consecutive_skips = 5;
  GradScaler scaler(true, torch::Device(torch::kCPU), nullptr, so);
  auto step = [&](float g) {
    scaler.unscale({torch::full({3}, g)});
    scaler.update();
  };
  for (int i = 0; i < 4; ++i) step(INFINITY);
  EXPECT_EQ(scaler.stall(), "");
  step(1.0f);
  for (int i = 0; i < 4; ++i) step(NAN);
  EXPECT_EQ(scaler.stall(), "") << "the clean step started the count again";
  step(INFINITY);
  const std::string why = scaler.stall();
  EXPECT_NE(why.find("the last 5 steps were all skipped by fp16 loss scaling"), std::string::npos) << why;
  EXPECT_NE(why.find("down to 128"), std::string::npos) << why;  // 2^16 halved 9 times
  EXPECT_EQ(scaler.skipped_steps(), 9);
  EXPECT_EQ(GradScaler(false, torch::Device(torch::kCPU), nullptr, so).stall(), "");
}

// Gradients of a few shapes, with values spread over several orders of magnitude so
// that the norm's rounding is exercised.
std::vector<torch::Tensor> clip_grads(int64_t seed, double scale) {
  torch::manual_seed(seed);
  return {torch::randn({7, 5}) * scale, torch::randn({33}) * scale * 1e-3, torch::randn({2, 3, 3, 3}) * scale * 10,
          torch::randn({1}) * scale};
}

TEST(GradClipTest, BitwiseClipGradNormOnTheCpu) {
  int clipped = 0, kept = 0;
  for (int64_t seed = 0; seed < 6; ++seed) {
    for (double scale : {1e-3, 0.3, 50.0}) {
      for (double max_norm : {0.5, 5.0}) {
        SCOPED_TRACE(::testing::Message() << "seed " << seed << " scale " << scale << " max_norm " << max_norm);
        std::vector<torch::Tensor> mine = clip_grads(seed, scale), params;
        for (const auto& g : clip_grads(seed, scale)) {
          params.push_back(torch::zeros_like(g).requires_grad_(true));
          params.back().mutable_grad() = g.clone();
        }
        const double reference = torch::nn::utils::clip_grad_norm_(params, max_norm);
        torch::Tensor norm = clip_grad_norm(mine, max_norm);
        EXPECT_EQ(norm.item<float>(), static_cast<float>(reference));
        for (size_t k = 0; k < mine.size(); ++k) EXPECT_TRUE(torch::equal(mine[k], params[k].grad())) << "tensor " << k;
        (reference > max_norm ? clipped : kept)++;
      }
    }
  }
  EXPECT_GT(clipped, 0);
  EXPECT_GT(kept, 0);
}

TEST(GradClipTest, ClippedNormIsTheMaxAndUndefinedGradsAreSkipped) {
  std::vector<torch::Tensor> g = clip_grads(3, 10.0);
  g.insert(g.begin() + 1, torch::Tensor());
  torch::Tensor before = clip_grad_norm(g, 1.0);
  EXPECT_GT(before.item<double>(), 1.0);
  EXPECT_NEAR(clip_grad_norm(g, 1.0).item<double>(), 1.0, 1e-5);  // the norm after the first clip
  EXPECT_EQ(clip_grad_norm({torch::Tensor()}, 1.0).item<double>(), 0.0);
  EXPECT_THROW(clip_grad_norm(g, 0.0), core::ConfigError);
}

TEST(ScalarReaderTest, TheCpuReadsAtOnceWithItsTag) {
  ScalarReader reader{torch::Device(torch::kCPU)};  // braces: clang reads the parentheses as a function declaration
  EXPECT_FALSE(reader.latest().has_value());
  torch::Tensor sum = torch::tensor(1.25f);
  reader.request(sum, 3);
  sum.add_(1.0);  // a later change does not alter what was read
  auto v = reader.latest();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->first, 1.25);
  EXPECT_EQ(v->second, 3);
  EXPECT_THROW(reader.request(torch::ones({2}), 4), core::InternalError);
}

// FusedAdam must follow torch::optim::Adam (same L2 weight decay rule), skip exactly
// where found_inf is set, and resume from its saved state.
TEST(FusedAdamTest, MatchesTorchAdamSkipsOnFoundInfAndResumes) {
  torch::manual_seed(4);
  auto init = torch::randn({3, 5});
  auto a = init.clone().requires_grad_(true), b = init.clone().requires_grad_(true);
  auto opts = torch::optim::AdamOptions(0.05).betas({0.8, 0.95}).weight_decay(0.01);
  torch::optim::Adam reference(std::vector<torch::Tensor>{a}, opts);
  FusedAdam fused(std::vector<torch::Tensor>{b}, opts);
  auto grad_at = [](int k) { return torch::sin(torch::arange(15, torch::kFloat).view({3, 5}) * (k + 1)); };
  for (int k = 0; k < 4; ++k) {
    a.mutable_grad() = grad_at(k);
    b.mutable_grad() = grad_at(k);
    reference.step();
    fused.step();
  }
  EXPECT_TRUE(torch::allclose(a, b, 1e-6, 1e-7)) << (a - b).abs().max().item<float>();

  auto before = b.detach().clone();
  b.mutable_grad() = grad_at(9);
  fused.step_skipping(torch::ones({1}));  // an inf was found: no update
  EXPECT_TRUE(torch::equal(b, before));

  TempDir dir;
  auto path = (dir.path / "adam.pt").string();
  torch::serialize::OutputArchive out;
  fused.save(out);
  out.save_to(path);
  auto c = b.detach().clone().requires_grad_(true);
  FusedAdam restored(std::vector<torch::Tensor>{c}, opts);
  torch::serialize::InputArchive in;
  in.load_from(path);
  restored.load(in);
  for (auto* opt : {&fused, &restored}) {
    auto& p = opt == &fused ? b : c;
    p.mutable_grad() = grad_at(5);
    opt->step_skipping(torch::zeros({1}));
  }
  a.mutable_grad() = grad_at(5);
  reference.step();
  EXPECT_TRUE(torch::equal(b, c));
  EXPECT_TRUE(torch::allclose(a, c, 1e-6, 1e-7));
}

// A channels_last weight (as every convolution of a channels_last model has) steps as a
// contiguous one does, whether its gradient comes in its own layout (a bucket slot) or in
// another (set by hand): each element is updated from its own gradient and moments.
TEST(FusedAdamTest, ChannelsLastParameterMatchesContiguous) {
  torch::manual_seed(5);
  auto init = torch::randn({6, 5, 3, 3});
  auto opts = torch::optim::AdamOptions(0.05).betas({0.8, 0.95}).weight_decay(0.01);
  auto a = init.clone().requires_grad_(true);
  torch::optim::Adam reference(std::vector<torch::Tensor>{a}, opts);
  auto cl = [&] { return init.contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_(true); };
  auto b = cl(), c = cl();
  FusedAdam own_layout(std::vector<torch::Tensor>{b}, opts), other_layout(std::vector<torch::Tensor>{c}, opts);
  // Moments made while the weight was contiguous, then the weight turned channels_last
  // (a model's memory format changed after its optimizer's first step).
  auto d = init.clone().requires_grad_(true);
  FusedAdam moments_before(std::vector<torch::Tensor>{d}, opts);
  auto grad_at = [](int k) { return torch::sin(torch::arange(270, torch::kFloat).view({6, 5, 3, 3}) * (k + 1)); };
  for (int k = 0; k < 3; ++k) {
    a.mutable_grad() = grad_at(k);
    b.mutable_grad() = grad_at(k).contiguous(torch::MemoryFormat::ChannelsLast);
    c.mutable_grad() = grad_at(k);
    if (k == 1) d.set_data(d.detach().contiguous(torch::MemoryFormat::ChannelsLast));
    d.mutable_grad() = grad_at(k).contiguous(d.suggest_memory_format());
    reference.step();
    own_layout.step();
    other_layout.step();
    moments_before.step();
  }
  for (const auto& p : {b, c, d}) {
    EXPECT_TRUE(p.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(torch::allclose(a, p, 1e-6, 1e-7)) << (a - p).abs().max().item<float>();
  }
}

}  // namespace
}  // namespace strata::train
