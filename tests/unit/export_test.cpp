// `evoopt export` (issue 11): the same small model, from the same initial weights, on the same
// batches, trained 60 steps with (a) GenomeOptimizer, (b) the exported PyTorch class under
// Debian's python3-torch (/usr/bin/python3), (c) the exported libtorch header compiled into
// this test; parameters agree in float64. For every preset and for two genomes that use
// every term, both weight-decay kinds, the schedule and clipping. Also the formats, the
// provenance of a run directory and bad input.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "ExportedAdam.hpp"
#include "ExportedAdamW.hpp"
#include "ExportedAllTermsDecoupled.hpp"
#include "ExportedAllTermsL2.hpp"
#include "ExportedLion.hpp"
#include "ExportedRmsProp.hpp"
#include "ExportedSgd.hpp"
#include "ExportedSignum.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/export/export.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

namespace {
constexpr std::int64_t kSteps = 60;

struct Problem {
  torch::Tensor w0, b0, x, y;  // float64: (5, 3), (3), (steps, 8, 5), (steps, 8, 3)
};

Problem make_problem(std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  Problem p;
  p.w0 = torch::randn({5, 3}, gen, f64) * 0.5;
  p.b0 = torch::randn({3}, gen, f64) * 0.1;
  p.x = torch::randn({kSteps, 8, 5}, gen, f64);
  p.y = torch::tanh(torch::randn({kSteps, 8, 3}, gen, f64));
  return p;
}

nlohmann::json tensor_json(const torch::Tensor& t) {
  if (t.dim() == 0) return t.item<double>();
  nlohmann::json a = nlohmann::json::array();
  for (std::int64_t i = 0; i < t.size(0); ++i) a.push_back(tensor_json(t[i]));
  return a;
}

torch::Tensor json_tensor(const nlohmann::json& j) {
  std::vector<double> flat;
  std::vector<std::int64_t> shape;
  const nlohmann::json* cur = &j;
  while (cur->is_array()) {
    shape.push_back(static_cast<std::int64_t>(cur->size()));
    cur = &cur->at(0);
  }
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& v) {
    if (v.is_array())
      for (const auto& e : v) walk(e);
    else
      flat.push_back(v.get<double>());
  };
  walk(j);
  return torch::tensor(flat, torch::kFloat64).view(shape);
}

// Trains W, b with `make_opt(params)`; returns the final parameters.
template <typename MakeOpt>
std::pair<torch::Tensor, torch::Tensor> train(const Problem& p, MakeOpt make_opt) {
  auto w = p.w0.clone().requires_grad_(true);
  auto b = p.b0.clone().requires_grad_(true);
  auto opt = make_opt(std::vector<torch::Tensor>{w, b});
  for (std::int64_t k = 0; k < kSteps; ++k) {
    opt->zero_grad();
    auto loss = (torch::tanh(torch::matmul(p.x[k], w) + b) - p.y[k]).pow(2).mean();
    loss.backward();
    opt->step();
  }
  return {w.detach(), b.detach()};
}

std::pair<torch::Tensor, torch::Tensor> with_genome(const Problem& p, const genome::Genome& g) {
  return train(p, [&](std::vector<torch::Tensor> params) {
    return std::make_unique<optim::GenomeOptimizer>(params, optim::GenomeOptimizerOptions(g, kSteps));
  });
}

template <typename Opt>
std::pair<torch::Tensor, torch::Tensor> with_header(const Problem& p) {
  return train(p, [](std::vector<torch::Tensor> params) { return std::make_unique<Opt>(params); });
}

void expect_close(const std::pair<torch::Tensor, torch::Tensor>& a, const std::pair<torch::Tensor, torch::Tensor>& b, const std::string& what) {
  const double dw = (a.first - b.first).abs().max().item<double>(), db = (a.second - b.second).abs().max().item<double>();
  EXPECT_LT(dw, 1e-9) << what;
  EXPECT_LT(db, 1e-9) << what;
}

struct Case {
  std::string source;  // preset or file
  std::string header_class;
};

std::vector<Case> cases() {
  const std::string dir = std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_genomes/";
  return {{"sgd", "ExportedSgd"},
          {"adam", "ExportedAdam"},
          {"adamw", "ExportedAdamW"},
          {"rmsprop", "ExportedRmsProp"},
          {"signum", "ExportedSignum"},
          {"lion", "ExportedLion"},
          {dir + "all_terms_l2.json", "ExportedAllTermsL2"},
          {dir + "all_terms_decoupled.json", "ExportedAllTermsDecoupled"}};
}

std::pair<torch::Tensor, torch::Tensor> run_header(const std::string& cls, const Problem& p) {
  if (cls == "ExportedSgd") return with_header<ExportedSgd>(p);
  if (cls == "ExportedAdam") return with_header<ExportedAdam>(p);
  if (cls == "ExportedAdamW") return with_header<ExportedAdamW>(p);
  if (cls == "ExportedRmsProp") return with_header<ExportedRmsProp>(p);
  if (cls == "ExportedSignum") return with_header<ExportedSignum>(p);
  if (cls == "ExportedLion") return with_header<ExportedLion>(p);
  if (cls == "ExportedAllTermsL2") return with_header<ExportedAllTermsL2>(p);
  return with_header<ExportedAllTermsDecoupled>(p);
}
}  // namespace

TEST(Export, PyTorchClassAndLibtorchHeaderTrainLikeGenomeOptimizer) {
  test::TempDir tmp;
  const Problem p = make_problem(11);
  const fs::path data = tmp / "data.json";
  write_file_atomic(data,
                    nlohmann::json{{"W0", tensor_json(p.w0)}, {"b0", tensor_json(p.b0)}, {"X", tensor_json(p.x)}, {"Y", tensor_json(p.y)}}.dump());
  for (const auto& c : cases()) {
    const genome::Genome g = genome::load_genome(c.source);
    const auto reference = with_genome(p, g);
    // The parameters moved: the comparison is not between two untouched copies.
    EXPECT_GT((reference.first - p.w0).abs().max().item<double>(), 1e-3) << c.source;
    // (c) the header exported at build time by the CLI, compiled into this test.
    expect_close(run_header(c.header_class, p), reference, c.source + " (libtorch header)");
    // (b) the PyTorch class, exported now by the CLI, run by real PyTorch.
    const fs::path py = tmp / (c.header_class + ".py");
    const auto made =
        test::run_cli("export " + c.source + " --format pytorch --total-steps 60 --class-name " + c.header_class + " -o " + py.string());
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const fs::path out = tmp / (c.header_class + ".json");
    const std::string cmd = "/usr/bin/python3 " + std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_check.py " + py.string() + " " +
                            c.header_class + " " + data.string() + " " + out.string() + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " failed (is Debian's python3-torch installed? scripts/setup.sh installs it)";
    const auto j = nlohmann::json::parse(read_text_file(out));
    expect_close({json_tensor(j.at("W")), json_tensor(j.at("b"))}, reference, c.source + " (PyTorch class)");
    EXPECT_TRUE(j.at("state_dict_resume_equal").get<bool>()) << c.source << ": state_dict save/load changed the run";
  }
}

TEST(Export, FormulasProvenanceAndBadInput) {
  test::TempDir tmp;
  const genome::Genome all = genome::load_genome(std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_genomes/all_terms_l2.json");
  exports::ExportOptions o;
  o.total_steps = 100;
  const std::string tex = exports::export_genome(all, exports::Format::Latex, o);
  for (const char* piece : {"\\frac{\\hat{m}_t}{\\sqrt{\\hat{v}_t}+\\epsilon}", "\\operatorname{sign}(g_t)", "c_t = \\beta_2 c_{t-1}",
                            "(L2 weight decay)", "\\frac{0.5}{\\lVert g_t", "(over 100 steps)", "\\mu_t"})
    EXPECT_NE(tex.find(piece), std::string::npos) << piece << "\n" << tex;
  const std::string md = exports::export_genome(genome::preset("adamw"), exports::Format::Markdown, o);
  EXPECT_NE(md.find("$$"), std::string::npos);
  EXPECT_NE(md.find("| weight decay λ | 0.01 (decoupled) |"), std::string::npos) << md;
  EXPECT_NE(md.find("\\eta_t \\lambda"), std::string::npos) << md;
  // Without bias correction the hats go.
  genome::Genome plain = genome::preset("adam");
  plain.bias_correction = false;
  EXPECT_EQ(exports::export_genome(plain, exports::Format::Latex, o).find("\\hat{m}"), std::string::npos);

  // A run directory: the winner, with its validation fitness, final test and steps.
  const fs::path run = tmp / "run";
  fs::create_directories(run);
  genome::save_genome(genome::preset("lion"), (run / "g.json").string());
  nlohmann::json best = {
      {"format", "evoopt.best_genome"}, {"version", 1}, {"genome", genome::preset("lion").to_json()}, {"validation_fitness", 0.7123}};
  write_file_atomic(run / "best_genome.json", best.dump());
  write_file_atomic(run / "config.json", nlohmann::json{{"steps", 150}}.dump());
  write_file_atomic(
      run / "summary.json",
      nlohmann::json{{"final_test",
                      {{"overall_mean", 0.7},
                       {"overall_std", 0.01},
                       {"per_task", {{"cifar10", {{"label", "CIFAR-10 (JPEG mirror, lossy)"}, {"mean", 0.5}, {"accuracy", {0.5, 0.5, 0.5}}}}}}}}}
          .dump());
  const auto src = exports::load_export_source(run.string());
  EXPECT_EQ(src.genome, genome::preset("lion"));
  EXPECT_EQ(src.steps, 150);
  const auto py = test::run_cli("export " + run.string() + " --format pytorch");
  ASSERT_EQ(py.exit_code, 0) << py.err;
  EXPECT_NE(py.out.find("Validation fitness (mean accuracy over the search tasks): 0.7123"), std::string::npos) << py.out;
  EXPECT_NE(py.out.find("CIFAR-10 (JPEG mirror, lossy) 0.5000"), std::string::npos) << py.out;
  EXPECT_NE(py.out.find("total_steps=150"), std::string::npos);

  // Bad input: one line, non-zero exit, nothing written.
  const fs::path out = tmp / "never.py";
  for (const auto& [args, expect] : std::vector<std::pair<std::string, std::string>>{
           {"export adam --format java -o " + out.string(), "--format"},
           {"export nosuch --format pytorch -o " + out.string(), "is neither a genome preset"},
           {"export " + (std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_genomes/all_terms_l2.json") + " --format pytorch -o " + out.string(),
            "give --total-steps N"},
           {"export adam --format cpp --class-name 9lives -o " + out.string(), "is not an identifier"},
           {"export " + tmp.path().string() + " --format latex -o " + out.string(), "no best_genome.json"}}) {
    const auto r = test::run_cli(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(expect), std::string::npos) << args << "\n" << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << args << "\n" << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
}
