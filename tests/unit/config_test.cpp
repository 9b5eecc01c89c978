// Config decoding: defaults, files, overrides, unknown keys, wrong types, ranges,
// printing and hashing. Error messages must name the key and where it came from.
#include "strata/core/config.h"
#include "strata/core/error.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace strata::core {
namespace {

struct OptimConfig {
  double lr = 1e-4;                           // learning rate
  std::vector<double> betas{0.9, 0.999};      // Adam betas
  std::string amp = "off";                    // off | fp16 | bf16
  template <class V>
  void visit(V& v) {
    v("lr", lr, "learning rate", greater_than(0.0));
    v("betas", betas, "Adam betas", all_of(length_in<double>(2, 2), each(in_range(0.0, 1.0))));
    v("amp", amp, "off | fp16 | bf16", one_of({"off", "fp16", "bf16"}));
  }
};

struct RootConfig {
  OptimConfig train;          // optimizer section
  int epochs = 3;             // passes
  int64_t seed = 7;           // seed
  bool shuffle = true;        // shuffle
  std::string name = "run";   // name
  std::vector<std::string> tags;  // tags
  int warmup = 0;             // warmup epochs, must not exceed epochs
  template <class V>
  void visit(V& v) {
    v("train", train, "optimizer section");
    v("epochs", epochs, "passes", at_least(1));
    v("seed", seed, "seed");
    v("shuffle", shuffle, "shuffle");
    v("name", name, "name");
    v("tags", tags, "tags");
    v("warmup", warmup, "warmup epochs", at_least(0));
  }
  void validate() const {
    STRATA_CHECK_AS(ConfigError, warmup <= epochs, "'warmup' ({}) must not exceed 'epochs' ({})", warmup, epochs);
  }
};

class TempYaml {
 public:
  explicit TempYaml(const std::string& text) {
    path_ = std::filesystem::temp_directory_path() / fmt::format("strata_cfg_{}_{}.yaml", ::getpid(), counter_++);
    std::ofstream(path_) << text;
  }
  ~TempYaml() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// The ConfigError message thrown by `f`, or "" if it did not throw one.
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "'" << (haystack) << "' lacks '" << (needle) << "'"

TEST(ConfigTest, EmptyInputGivesDefaults) {
  auto c = parse_config<RootConfig>("");
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-4);
  EXPECT_EQ(c.epochs, 3);
  EXPECT_EQ(c.train.betas, (std::vector<double>{0.9, 0.999}));
  EXPECT_TRUE(c.shuffle);
  auto d = load_config<RootConfig>("");
  EXPECT_EQ(config_hash(c), config_hash(d));
}

TEST(ConfigTest, FileValuesReplaceDefaultsOthersStay) {
  TempYaml f("train:\n  lr: 5.0e-5\n  amp: bf16\nepochs: 10\ntags: [a, b]\nshuffle: false\n");
  auto c = load_config<RootConfig>(f.path());
  EXPECT_DOUBLE_EQ(c.train.lr, 5e-5);
  EXPECT_EQ(c.train.amp, "bf16");
  EXPECT_EQ(c.epochs, 10);
  EXPECT_FALSE(c.shuffle);
  EXPECT_EQ(c.tags, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(c.seed, 7);
  EXPECT_EQ(c.train.betas.size(), 2u);
}

TEST(ConfigTest, UnknownKeyNamesKeyFileAndLine) {
  TempYaml f("epochs: 2\ntrain:\n  lr: 0.1\n  lrr: 0.2\n");
  std::string e = config_error([&] { load_config<RootConfig>(f.path()); });
  EXPECT_CONTAINS(e, "'train.lrr'");
  EXPECT_CONTAINS(e, f.path() + ":4");
  EXPECT_CONTAINS(e, "did you mean 'lr'");
}

TEST(ConfigTest, UnknownTopLevelSection) {
  std::string e = config_error([] { parse_config<RootConfig>("trian:\n  lr: 1\n", {}, "x.yaml"); });
  EXPECT_CONTAINS(e, "'trian' is not a known key");
  EXPECT_CONTAINS(e, "did you mean 'train'");
}

TEST(ConfigTest, WrongTypesAreErrors) {
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: {lr: fast}", {}, "x.yaml"); }),
                  "'train.lr' must be a finite number, got 'fast'");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("epochs: 1.5", {}, "x.yaml"); }),
                  "'epochs' must be an integer");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("shuffle: maybe", {}, "x.yaml"); }),
                  "'shuffle' must be true or false");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("tags: solo", {}, "x.yaml"); }),
                  "'tags' must be a list");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: {betas: [0.9, x]}", {}, "x.yaml"); }),
                  "'train.betas[1]' must be a finite number");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: 3", {}, "x.yaml"); }),
                  "'train' must be a mapping");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("[1, 2]", {}, "x.yaml"); }), "top level");
}

TEST(ConfigTest, OutOfRangeValuesAreErrors) {
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("epochs: 0", {}, "x.yaml"); }),
                  "'epochs' = '0': must be >= 1 (in x.yaml:1)");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: {lr: -1}", {}, "x.yaml"); }), "must be > 0");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: {amp: fp8}", {}, "x.yaml"); }),
                  "must be one of off, fp16, bf16");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: {betas: [0.9]}", {}, "x.yaml"); }),
                  "must have 2 to 2 elements");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: {betas: [0.9, 1.5]}", {}, "x.yaml"); }),
                  "element 1 must be in [0, 1]");
}

// YAML's .inf and .nan are numbers to yaml-cpp; no key of a recipe means anything with
// them, and train.lr=.inf would train on NaN.
TEST(ConfigTest, NonFiniteNumbersAreErrors) {
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: {lr: .inf}", {}, "x.yaml"); }),
                  "'train.lr' must be a finite number, got '.inf' (in x.yaml:1)");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("", {"train.lr=.nan"}); }),
                  "'train.lr' must be a finite number, got '.nan' (in --set train.lr=.nan)");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train: {betas: [0.9, -.Inf]}", {}, "x.yaml"); }),
                  "'train.betas[1]' must be a finite number");
  EXPECT_DOUBLE_EQ(parse_config<RootConfig>("train: {lr: 1e300}").train.lr, 1e300);  // large is not infinite
}

// yaml-cpp keeps the first of two equal keys and drops the second without a word: a
// recipe with two `train:` sections would silently ignore one.
TEST(ConfigTest, DuplicateKeysAreErrorsWithBothLines) {
  TempYaml f("train:\n  lr: 0.1\nepochs: 2\ntrain:\n  amp: bf16\n");
  std::string e = config_error([&] { load_config<RootConfig>(f.path()); });
  EXPECT_CONTAINS(e, f.path() + ":4: 'train' is given twice (first at line 1)");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("train:\n  lr: 0.1\n  lr: 0.2\n", {}, "x.yaml"); }),
                  "x.yaml:3: 'train.lr' is given twice (first at line 2)");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("", {"train={lr: 1, lr: 2}"}); }),
                  "--set train={lr: 1, lr: 2}:1: 'lr' is given twice");
  // The same key in two different sections is fine.
  EXPECT_EQ(parse_config<RootConfig>("train: {amp: bf16}\nname: amp\n").train.amp, "bf16");
}

TEST(ConfigTest, CrossFieldValidation) {
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("epochs: 2\nwarmup: 5\n"); }),
                  "'warmup' (5) must not exceed 'epochs' (2)");
}

TEST(ConfigTest, OverridesReachAnyKey) {
  auto c = parse_config<RootConfig>("train: {lr: 0.1}\n",
                                    {"train.lr=5e-5", "epochs=12", "train.betas=[0.8, 0.99]", "name=", "tags=[x]"});
  EXPECT_DOUBLE_EQ(c.train.lr, 5e-5);
  EXPECT_EQ(c.epochs, 12);
  EXPECT_EQ(c.train.betas, (std::vector<double>{0.8, 0.99}));
  EXPECT_EQ(c.name, "");
  EXPECT_EQ(c.tags, (std::vector<std::string>{"x"}));
  // An override may create a section the file does not mention.
  auto d = parse_config<RootConfig>("epochs: 4\n", {"train.amp=fp16"});
  EXPECT_EQ(d.train.amp, "fp16");
}

TEST(ConfigTest, OverrideErrorsNameTheAssignment) {
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("", {"train.lrr=1"}); }), "(in --set train.lrr=1)");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("", {"epochs=many"}); }),
                  "'epochs' must be an integer, got 'many' (in --set epochs=many)");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("", {"epochs"}); }), "expects key.path=value");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("", {"train..lr=1"}); }), "empty key component");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("epochs: 3", {"epochs.x=1"}); }), "'epochs' is a value");
  EXPECT_CONTAINS(config_error([] { parse_config<RootConfig>("", {"epochs.x=1"}); }),
                  "'epochs' must be an integer, got a mapping (in --set epochs.x=1)");
}

// Found by tests/fuzz (config): an override on a config whose top level is a value or a
// list reached yaml-cpp's operator[] on a scalar, an untyped exception.
TEST(ConfigTest, OverridesOnATopLevelThatIsNoMappingAreConfigErrors) {
  for (const char* text : {"just a value", "[1, 2]"}) {
    for (const char* set : {"epochs=3", "train.lr=1"}) {
      EXPECT_CONTAINS(config_error([&] { parse_config<RootConfig>(text, {set}, "recipe.yaml"); }),
                      fmt::format("--set {}: the top level of recipe.yaml is not a mapping of sections", set));
    }
  }
}

TEST(ConfigTest, SyntaxErrorsAndMissingFiles) {
  TempYaml f("train:\n  lr: [1, 2\n");
  EXPECT_CONTAINS(config_error([&] { load_config<RootConfig>(f.path()); }), f.path() + ":");
  EXPECT_CONTAINS(config_error([&] { load_config<RootConfig>("/nonexistent/recipe.yaml"); }),
                  "cannot read config file '/nonexistent/recipe.yaml'");
}

TEST(ConfigTest, PrintedConfigRoundTripsAndHashesStably) {
  auto c = parse_config<RootConfig>("train: {lr: 3.0e-4, amp: bf16}\nepochs: 5\ntags: [p, q]\n");
  std::string text = to_yaml(c);
  EXPECT_CONTAINS(text, "lr: 0.0003");
  EXPECT_CONTAINS(to_yaml(c, true), "# learning rate");
  auto back = parse_config<RootConfig>(to_yaml(c, true));
  EXPECT_EQ(to_yaml(back), text);
  EXPECT_EQ(config_hash(back), config_hash(c));
}

TEST(ConfigTest, HashIgnoresFormattingButNotValues) {
  auto a = parse_config<RootConfig>("epochs: 5\ntrain: {lr: 0.001}\n");
  auto b = parse_config<RootConfig>("# same values, other layout\ntrain:\n  lr: 1.0e-3\nepochs: 5\n");
  auto c = parse_config<RootConfig>("epochs: 5\ntrain: {lr: 0.002}\n");
  auto d = parse_config<RootConfig>("epochs: 5\n", {"train.lr=0.001"});
  EXPECT_EQ(config_hash(a), config_hash(b));
  EXPECT_EQ(config_hash(a), config_hash(d));
  EXPECT_NE(config_hash(a), config_hash(c));
  EXPECT_EQ(hash_hex(config_hash(a)).size(), 16u);
}

TEST(ConfigTest, DiffNamesChangedKeys) {
  auto a = to_yaml(parse_config<RootConfig>("epochs: 5\ntrain: {lr: 0.001}\n"));
  auto b = to_yaml(parse_config<RootConfig>("epochs: 6\ntrain: {lr: 0.001, betas: [0.8, 0.9]}\n"));
  EXPECT_TRUE(diff_yaml(a, a).empty());
  auto d = diff_yaml(a, b);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0], "train.betas: [0.9, 0.999] -> [0.8, 0.9]");
  EXPECT_EQ(d[1], "epochs: 5 -> 6");
  auto extra = diff_yaml("a: 1\n", "a: 1\nb: {c: 2}\n");
  ASSERT_EQ(extra.size(), 1u);
  EXPECT_EQ(extra[0], "b.c: (absent) -> 2");
}

}  // namespace
}  // namespace strata::core

namespace strata::core {
namespace {

TEST(ConfigReference, ListsEveryKeyWithTypeDefaultRuleAndDoc) {
  RootConfig defaults;
  defaults.train.amp = "bf16";  // the reference shows the values it is given
  const std::vector<ReferenceSection> sections = config_reference(defaults);
  ASSERT_EQ(sections.size(), 2u);  // the top level, then `train`
  EXPECT_EQ(sections[1].path, "train");
  EXPECT_EQ(sections[1].doc, "optimizer section");
  std::vector<std::string> keys;
  for (const auto& s : sections) {
    for (const auto& r : s.rows) keys.push_back(r.key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"epochs", "seed", "shuffle", "name", "tags", "warmup", "train.lr",
                                            "train.betas", "train.amp"}));
  const ReferenceRow& betas = sections[1].rows[1];
  EXPECT_EQ(betas.type, "list of numbers");
  EXPECT_EQ(betas.value, "[0.9, 0.999]");
  EXPECT_EQ(betas.allowed, "2 elements; each [0, 1]");
  const ReferenceRow& amp = sections[1].rows[2];
  EXPECT_EQ(amp.value, "bf16");
  EXPECT_EQ(amp.allowed, "off, fp16, bf16");
  EXPECT_EQ(amp.doc, "off | fp16 | bf16");
  EXPECT_EQ(sections[0].rows[0].allowed, ">= 1");  // epochs
  EXPECT_EQ(sections[0].rows[2].type, "boolean");   // shuffle
  EXPECT_EQ(sections[0].rows[3].value, "run");      // name
  EXPECT_EQ(sections[0].rows[4].value, "[]");       // tags
  EXPECT_EQ(sections[0].rows[1].allowed, "");       // seed: no check
}

TEST(ConfigReference, MarkdownEscapesWhatWouldBreakTheTable) {
  const std::string md = reference_markdown(config_reference(RootConfig{}));
  EXPECT_NE(md.find("## top level\n"), std::string::npos) << md;
  EXPECT_NE(md.find("## `train`\n\nOptimizer section.\n\n| Key | Type | Default | Allowed | Description |\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| `train.amp` | string | `off` | off, fp16, bf16 | off \\| fp16 \\| bf16 |\n"), std::string::npos)
      << md;
}

TEST(ConfigReference, ChecksWithoutARuleStillCheck) {
  Check<int> even([](const int& v) { return v % 2 == 0 ? std::string() : std::string("must be even"); });
  EXPECT_EQ(even(3), "must be even");
  EXPECT_EQ(even.rule(), "");
  EXPECT_EQ(all_of(at_least(0), even).rule(), ">= 0");
  EXPECT_EQ(all_of(at_least(0), Check<int>(even, "even")).rule(), ">= 0; even");
}

}  // namespace
}  // namespace strata::core
