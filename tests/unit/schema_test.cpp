// The config schema (common/schema*.hpp): one field list drives TOML, config.json, the CLI
// flags and the reference; config.json files of earlier runs still load with their fingerprint.
#include "evoopt/common/schema.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/common/schema_cli.hpp"
#include "evoopt/common/schema_reference.hpp"
#include "evoopt/common/schema_toml.hpp"
#include "evoopt/experiment/config.hpp"
#include "test_support.hpp"

namespace evoopt {
namespace {
using experiment::ExperimentConfig;
using nlohmann::json;
using schema::help;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A test-only configuration: a plain field, a dotted key, a sub-table.
struct ToyInner {
  double rate = 0.5;
  template <typename Self, typename Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("rate", s.rate, help("A rate").at_least(0).at_most(1));
  }
};
struct Toy {
  int population = 4;
  std::string dir = "d";
  ToyInner inner;
  template <typename Self, typename Visit>
  static void fields(Self& s, Visit&& visit) {
    visit("population", s.population, help("Individuals").at_least(2).limit(limits::kPopulation).flag(schema::kEvolve));
    visit("data.dir", s.dir, help("Data directory").flag(schema::kEvolve, "--data-dir"));
    visit("inner", s.inner, help("Inner table"));
  }
};
// Adding a field is this one visit line: TOML, JSON, the CLI flag and the reference follow.
struct ToyPlus : Toy {
  std::int64_t widgets = 3;
  template <typename Self, typename Visit>
  static void fields(Self& s, Visit&& visit) {
    Toy::fields(s, visit);
    visit("widgets", s.widgets, help("Widgets per run").at_least(0).limit(limits::kRuns).flag(schema::kEvolve));
  }
};

template <typename Spec>
Spec from_toml(const std::string& text) {
  const toml::table t = toml::parse(text);
  Spec s;
  schema::TomlContext ctx{"toy.toml", {}};
  schema::read_toml_table(s, t, "", ctx);
  return s;
}

template <typename Spec>
Spec from_cli(std::vector<std::string> args) {
  CLI::App app;
  schema::add_flags(app, Spec{}, schema::kEvolve);
  std::reverse(args.begin(), args.end());
  app.parse(args);
  Spec s;
  schema::apply_flags(s, app, schema::kEvolve);
  return s;
}

TEST(Schema, OneAddedFieldReachesTomlJsonCliAndReference) {
  // TOML: the base schema refuses the key, the extended one reads it.
  EXPECT_EQ(error_of([] { from_toml<Toy>("widgets = 5\n"); }), "toy.toml: unknown key widgets");
  const ToyPlus t = from_toml<ToyPlus>("population = 6\nwidgets = 5\n[data]\ndir = \"x\"\n[inner]\nrate = 0.25\n");
  EXPECT_EQ(t.widgets, 5);
  EXPECT_EQ(t.population, 6);
  EXPECT_EQ(t.dir, "x");
  EXPECT_EQ(t.inner.rate, 0.25);
  EXPECT_EQ(error_of([] { from_toml<ToyPlus>("widgets = \"many\"\n"); }), "toy.toml: widgets must be an integer");
  // JSON: written and read back, required when reading.
  const json j = schema::to_json(t);
  EXPECT_EQ(j, json::parse(R"({"population": 6, "data": {"dir": "x"}, "inner": {"rate": 0.25}, "widgets": 5})"));
  ToyPlus back;
  schema::from_json(back, j, "/");
  EXPECT_EQ(back.widgets, 5);
  json without = j;
  without.erase("widgets");
  EXPECT_EQ(error_of([&] { schema::from_json(back, without, "/"); }), "/widgets: missing");
  json wrong = j;
  wrong["data"]["dir"] = 3;
  EXPECT_NE(error_of([&] { schema::from_json(back, wrong, "/"); }).find("/data/dir: expected a string"), std::string::npos);
  // CLI: --widgets, checked against the field's limit before conversion.
  EXPECT_EQ(from_cli<ToyPlus>({"--widgets", "7", "--data-dir", "y"}).widgets, 7);
  EXPECT_EQ(from_cli<ToyPlus>({"--data-dir", "y"}).dir, "y");
  EXPECT_EQ(from_cli<ToyPlus>({}).widgets, 3);
  CLI::App base, plus;
  schema::add_flags(base, Toy{}, schema::kEvolve);
  schema::add_flags(plus, ToyPlus{}, schema::kEvolve);
  EXPECT_EQ(base.get_option_no_throw("--widgets"), nullptr);
  EXPECT_NE(plus.get_option_no_throw("--widgets"), nullptr);
  EXPECT_THROW(from_cli<ToyPlus>({"--widgets", "0x10"}), CLI::ValidationError);  // checked before conversion, like every integer flag
  EXPECT_THROW(from_cli<ToyPlus>({"--widgets", "10000001"}), CLI::ValidationError);
  EXPECT_THROW(from_cli<Toy>({"--widgets", "7"}), CLI::ParseError);
  // Reference: a row with its type, default, range and flag.
  const std::string ref = schema::reference_markdown(ToyPlus{});
  EXPECT_NE(ref.find("| `widgets` | integer | `3` | [0, 10000000] | `--widgets` (evolve) | Widgets per run |"), std::string::npos) << ref;
  EXPECT_EQ(schema::reference_markdown(Toy{}).find("widgets"), std::string::npos);
  EXPECT_NE(ref.find("### `[data]`"), std::string::npos) << ref;
  EXPECT_NE(ref.find("### `[inner]`"), std::string::npos) << ref;
}

// config.json of a run started by the evoopt before the schema (`evolve --preset quick`):
// it loads, keeps its fingerprint (resume compares it), and is written back byte for byte.
TEST(Schema, ConfigJsonOfAnEarlierRunLoadsWithItsFingerprint) {
  // evolve --preset quick --seed 0; evolve --preset quick --racing-continue --tasks mnist --no-transfer --seed 3
  for (const char* name : {"quick_config_v1.json", "racing_continue_config_v1.json"}) {
    const std::filesystem::path file = test::source_dir() / "tests/unit/config_fixtures" / name;
    const json recorded = json::parse(read_text_file(file, limits::kJsonFileBytes));
    const ExperimentConfig c = read_json_view(file).convert(ExperimentConfig::from_json);
    EXPECT_EQ(c.fingerprint(), recorded.at("fingerprint").get<std::string>()) << name;
    json expected = recorded;
    for (const char* extra : {"derived_seeds", "evoopt_version", "fingerprint", "provenance", "task_fingerprint_inputs", "task_fingerprints"})
      expected.erase(extra);
    EXPECT_EQ(c.to_json().dump(2), expected.dump(2)) << name;
  }
  // The first is today's quick preset but for the comparison's protocol and baselines, whose
  // defaults changed since (strong → quasirandom; 5 → 4 baselines, 4 trials).
  const ExperimentConfig c =
      read_json_view(test::source_dir() / "tests/unit/config_fixtures/quick_config_v1.json").convert(ExperimentConfig::from_json);
  ExperimentConfig q;
  q.apply_preset("quick");
  EXPECT_EQ(q.compare.protocol, experiment::Protocol::Quasirandom);
  EXPECT_NE(q.to_json(), c.to_json());
  q.compare.protocol = experiment::Protocol::Strong;
  q.compare.baselines = {"sgd", "adam", "rmsprop", "adamw", "lion"};
  q.compare.trials = 16;
  q.data_dir = c.data_dir;
  q.device = "cpu";
  EXPECT_EQ(q.to_json(), c.to_json());
}

TEST(Schema, ConfigWithoutLaterFieldsLoadsAsBefore) {
  ExperimentConfig d;
  json j = d.to_json();
  for (const char* k : {"transfer_tasks", "user_tasks", "device"}) j.erase(k);
  j["ga"].erase("racing");
  const ExperimentConfig c = ExperimentConfig::from_json(j);
  EXPECT_TRUE(c.transfer_tasks.empty());
  EXPECT_EQ(c.device, "cpu");
  EXPECT_FALSE(c.ga.racing.enabled);
  EXPECT_EQ(c.ga.racing.rungs, d.ga.racing.rungs);
  // Fields written only when set keep older files' bytes.
  EXPECT_FALSE(d.to_json()["ga"].contains("async"));
  EXPECT_FALSE(d.to_json()["ga"]["racing"].contains("continue"));
  ExperimentConfig a;
  a.ga.async = true;
  a.ga.racing.continue_runs = true;
  EXPECT_EQ(a.to_json()["ga"]["async"], true);
  EXPECT_EQ(a.to_json()["ga"]["racing"]["continue"], true);
  EXPECT_TRUE(ExperimentConfig::from_json(a.to_json()).ga.async);
  // Errors name the key path.
  json bad = d.to_json();
  bad["ga"]["population"] = 4294967297.0;
  EXPECT_NE(error_of([&] { ExperimentConfig::from_json(bad); }).find("/ga/population: expected an integer"), std::string::npos);
  bad = d.to_json();
  bad["data"].erase("val_size");
  EXPECT_EQ(error_of([&] { ExperimentConfig::from_json(bad); }), "/data/val_size: missing");
}

TEST(Schema, OldTomlSpellingsReadAsTheirKeys) {
  test::TempDir tmp;
  std::ofstream(tmp / "old.toml") << "[ga]\nmutation_rate = 0.2\nstructural_rate = 0.1\nflip_rate = 0.05\nracing = true\nracing_rungs = [0.25]\n"
                                     "racing_keep = 0.5\nracing_rung_val_size = 300\nracing_continue = true\n[data]\naugment = false\n";
  std::ofstream(tmp / "new.toml") << "[ga.mutation]\ngene_rate = 0.2\nstructural_rate = 0.1\nflip_rate = 0.05\n[ga.racing]\nenabled = true\n"
                                     "rungs = [0.25]\nkeep = 0.5\nrung_val_size = 300\ncontinue = true\n[data]\naugment = 0\n";
  ExperimentConfig o, n;
  o.load_toml(tmp / "old.toml");
  n.load_toml(tmp / "new.toml");
  EXPECT_EQ(o.to_json(), n.to_json());
  EXPECT_TRUE(o.ga.racing.enabled && o.ga.racing.continue_runs);
  EXPECT_EQ(o.ga.mutation.gene_rate, 0.2);
  EXPECT_EQ(o.augment, 0);
  std::ofstream(tmp / "both.toml") << "[ga]\nracing_keep = 0.5\n[ga.racing]\nkeep = 0.4\n";
  ExperimentConfig b;
  EXPECT_NE(error_of([&] { b.load_toml(tmp / "both.toml"); }).find("two spellings of one key"), std::string::npos);
  std::ofstream(tmp / "unknown.toml") << "[ga.racing]\nkeeep = 0.4\n";
  EXPECT_EQ(error_of([&] { b.load_toml(tmp / "unknown.toml"); }), (tmp / "unknown.toml").string() + ": unknown key ga.racing.keeep");
}

// Every bound the schema declares (and the reference and the CLI show) is one validate()
// enforces: a value just outside it is refused.
TEST(Schema, DeclaredRangesAreEnforcedByValidate) {
  ExperimentConfig base;
  base.apply_preset("quick");
  base.ga.racing.enabled = true;  // its keys are checked only when it is on
  ASSERT_NO_THROW(base.validate());
  int checked = 0;
  schema::walk(base, [&](const std::string& path, const auto& field, const schema::Info& info) {
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
      auto refused = [&](double bad) {
        ExperimentConfig c = base;
        schema::walk(c, [&](const std::string& p, auto& f, const schema::Info&) {
          if constexpr (std::is_same_v<std::decay_t<decltype(f)>, T>)
            if (p == path) f = static_cast<T>(bad);
        });
        return !error_of([&] { c.validate(); }).empty();
      };
      if (info.min) {
        const double bad = info.min_open ? *info.min : std::is_integral_v<T> ? *info.min - 1 : std::nextafter(*info.min, -1e300);
        if (!(std::is_unsigned_v<T> && bad < 0)) EXPECT_TRUE(refused(bad)) << path << " = " << bad;
        ++checked;
      }
      if (info.max) {
        const double bad = info.max_open ? *info.max : std::is_integral_v<T> ? *info.max + 1 : std::nextafter(*info.max, 1e300);
        EXPECT_TRUE(refused(bad)) << path << " = " << bad;
        ++checked;
      }
    }
  });
  EXPECT_GT(checked, 30);
}

TEST(Schema, ReferenceListsEveryKey) {
  const std::string ref = experiment::config_reference();
  int keys = 0;
  const ExperimentConfig defaults;
  schema::walk(defaults, [&](const std::string& path, const auto&, const schema::Info& info) {
    if (info.derived) return;
    ++keys;
    EXPECT_NE(ref.find("| `" + schema::leaf(path) + "` |"), std::string::npos) << path;
  });
  EXPECT_GT(keys, 40);
  EXPECT_NE(ref.find("| `ga.racing_rungs` | `ga.racing.rungs` |"), std::string::npos);
}

}  // namespace
}  // namespace evoopt
