// evoopt CLI: parses flags, calls the library, prints. No logic of its own.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include <cstdio>
#include <iostream>

#include "evoopt/common/error.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/genome/genome.hpp"

namespace {
namespace fs = std::filesystem;
using namespace evoopt;

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

struct DataArgs {
  std::vector<std::string> names;
  std::vector<std::string> mirrors;
  std::string data_dir = data::default_data_dir().string();
  bool offline = false;
  bool force = false;
};

std::vector<std::string> names_or_all(const std::vector<std::string>& names) {
  return names.empty() ? data::dataset_names() : names;
}

int cmd_data_fetch(const DataArgs& a) {
  data::FetchOptions opt;
  opt.data_dir = a.data_dir;
  for (const auto& m : a.mirrors) opt.mirrors.emplace_back(m);
  for (const auto& m : data::default_mirrors()) opt.mirrors.push_back(m);
  opt.allow_download = !a.offline;
  opt.force = a.force;
  for (const auto& name : names_or_all(a.names)) {
    data::dataset_spec(name);  // reject unknown names before any work
  }
  for (const auto& name : names_or_all(a.names)) {
    auto r = data::fetch_dataset(name, opt, [](const std::string& msg) { std::cout << msg << std::endl; });
    std::cout << fmt::format("{:<14} {:>6} train {:>6} test  [{}]  from {}", r.dataset, r.train_count, r.test_count, r.label, r.source) << std::endl;
  }
  return 0;
}

int cmd_data_verify(const DataArgs& a) {
  bool all_ok = true;
  std::cout << fmt::format("{:<14} {:<7} {:>7} {:>7}  {:<32} {}", "dataset", "status", "train", "test", "label", "source / problem") << "\n";
  for (const auto& name : names_or_all(a.names)) {
    auto r = data::verify_dataset(name, a.data_dir);
    all_ok = all_ok && r.ok;
    std::cout << fmt::format("{:<14} {:<7} {:>7} {:>7}  {:<32} {}", r.dataset, r.ok ? "ok" : "BAD", r.train_count, r.test_count,
                             r.label.empty() ? "-" : r.label, r.ok ? r.source : r.status)
              << "\n";
  }
  return all_ok ? 0 : 1;
}

int cmd_genome_show(const std::string& which) {
  const genome::Genome g = genome::load_genome(which);
  g.validate(genome::Bounds::kHardMaxTerms);
  const genome::Genome c = g.canonical();
  std::cout << c.formula() << "\n" << c.hyperparameters() << "\n";
  std::cout << "hash: " << g.hash_hex() << "\n";
  std::cout << c.to_json().dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"evoopt: discover neural-network optimizers by evolution"};
  app.set_version_flag("--version", std::string(EVOOPT_VERSION));
  app.require_subcommand(1);

  DataArgs data_args;
  auto* data_cmd = app.add_subcommand("data", "Fetch and verify datasets");
  data_cmd->require_subcommand(1);
  auto* fetch = data_cmd->add_subcommand("fetch", "Resolve, verify and store datasets (data dir, mirrors, system dirs, official URLs)");
  fetch->add_option("names", data_args.names, "Datasets (default: all): mnist fashion_mnist cifar10");
  fetch->add_option("--mirror", data_args.mirrors, "Mirror directory (repeatable; EVOOPT_DATA_MIRROR adds more, ':'-separated)");
  fetch->add_option("--data-dir", data_args.data_dir, "Data directory (default: $EVOOPT_DATA_DIR or ./data)");
  fetch->add_flag("--offline", data_args.offline, "Never download");
  fetch->add_flag("--force", data_args.force, "Fetch again even if the data dir has it");
  auto* verify = data_cmd->add_subcommand("verify", "Check stored datasets: source, counts, checksums");
  verify->add_option("names", data_args.names, "Datasets (default: all)");
  verify->add_option("--data-dir", data_args.data_dir, "Data directory (default: $EVOOPT_DATA_DIR or ./data)");

  std::string genome_which;
  auto* genome_cmd = app.add_subcommand("genome", "Inspect genomes");
  genome_cmd->require_subcommand(1);
  auto* show = genome_cmd->add_subcommand("show", "Print formula, hyperparameters, hash and canonical JSON");
  show->add_option("genome", genome_which, "Preset (sgd adam adamw rmsprop signum lion-like) or JSON file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (fetch->parsed()) return cmd_data_fetch(data_args);
    if (verify->parsed()) return cmd_data_verify(data_args);
    if (show->parsed()) return cmd_genome_show(genome_which);
  } catch (const evoopt::Error& e) {
    std::fprintf(stderr, "evoopt: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "evoopt: error: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evoopt: error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
