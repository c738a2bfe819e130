// `evoopt export` (issue 11): the same small model, from the same initial weights, on the same
// batches, trained 60 steps with (a) GenomeOptimizer, (b) the exported PyTorch class under
// Debian's python3-torch (/usr/bin/python3), (c) the exported libtorch header compiled into
// this test; parameters agree in float64. For every preset and for two genomes that use
// every term, both weight-decay kinds, the schedule and clipping, and a program that uses
// every operation (issue 28). Also the formats, the
// provenance of a run directory and bad input through the CLI; and (issue 25) the header
// exported at build time from a run directory built to inject code (export_hostile_run.py,
// ExportedHostile) compiles into this test and trains, class names that break or shadow are
// refused, and a damaged run file's error names the file and the key. The hostile run
// exported to every format in process: tests/unit/export_test.cpp.
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <tuple>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "ExportedAdam.hpp"
#include "ExportedAdamW.hpp"
#include "ExportedAllTermsDecoupled.hpp"
#include "ExportedAllTermsL2.hpp"
#include "ExportedHostile.hpp"
#include "ExportedLion.hpp"
#include "ExportedMuonProgram.hpp"
#include "ExportedNAdamW.hpp"
#include "ExportedProgram.hpp"
#include "ExportedRmsProp.hpp"
#include "ExportedScheduleFreeProgram.hpp"
#include "ExportedSgd.hpp"
#include "ExportedSignum.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/export/export.hpp"
#include "evoopt/optim/algorithm.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "export_support.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

namespace {
template <typename Opt>
std::pair<torch::Tensor, torch::Tensor> with_header(const Problem& p) {
  return train(p, [](std::vector<torch::Tensor> params) { return std::make_unique<Opt>(params); });
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
          {"nadamw", "ExportedNAdamW"},
          {dir + "all_terms_l2.json", "ExportedAllTermsL2"},
          {dir + "all_terms_decoupled.json", "ExportedAllTermsDecoupled"},
          {dir + "program_every_op.json", "ExportedProgram"}};
}

std::pair<torch::Tensor, torch::Tensor> run_header(const std::string& cls, const Problem& p) {
  if (cls == "ExportedSgd") return with_header<ExportedSgd>(p);
  if (cls == "ExportedAdam") return with_header<ExportedAdam>(p);
  if (cls == "ExportedAdamW") return with_header<ExportedAdamW>(p);
  if (cls == "ExportedRmsProp") return with_header<ExportedRmsProp>(p);
  if (cls == "ExportedSignum") return with_header<ExportedSignum>(p);
  if (cls == "ExportedLion") return with_header<ExportedLion>(p);
  if (cls == "ExportedNAdamW") return with_header<ExportedNAdamW>(p);
  if (cls == "ExportedAllTermsL2") return with_header<ExportedAllTermsL2>(p);
  if (cls == "ExportedProgram") return with_header<ExportedProgram>(p);
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
  for (const char* piece :
       {"\\frac{\\hat{m}_t}{\\sqrt{\\hat{v}_t}+\\epsilon}", "\\operatorname{sign}(g_t)", "c_t = \\beta_2\\,c_{t-1}",
        "0.4\\,\\left(a_t\\,g_t + b_t\\,m_t\\right)", "(L2 weight decay)", "\\frac{0.5}{\\lVert g_t", "(over 100 steps)", "\\mu_t"})
    EXPECT_NE(tex.find(piece), std::string::npos) << piece << "\n" << tex;
  const std::string md = exports::export_genome(genome::preset("adamw"), exports::Format::Markdown, o);
  EXPECT_NE(md.find("$$"), std::string::npos);
  EXPECT_NE(md.find("| weight decay λ | 0.01 (decoupled) |"), std::string::npos) << md;
  EXPECT_NE(md.find("\\eta_t \\lambda"), std::string::npos) << md;
  // A program: its statements in order as definitions, u in the update.
  const genome::Genome program = genome::load_genome(std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_genomes/program_every_op.json");
  for (const auto op : genome::program_ops()) EXPECT_TRUE(program.program.uses(op)) << genome::program_op_name(op);  // every operation
  const std::string ptex = exports::export_genome(program, exports::Format::Latex, o);
  for (const char* piece : {"\\eta_t\\, u_t", "s_{0,t} = ", "\\operatorname{NS}_5", "u_t = ", "s_{0} \\leftarrow ", "\\beta_1 = 0.85"})
    EXPECT_NE(ptex.find(piece), std::string::npos) << piece << "\n" << ptex;
  EXPECT_LT(ptex.find("\\operatorname{NS}_5"), ptex.find("u_t = "));
  // Two programs: both, the second under its heading; an evaluation point and c_t as definitions,
  // and a program applying η_t and λ itself has neither around u.
  const std::string dir = std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_genomes/";
  const std::string mtex = exports::export_genome(genome::load_genome(dir + "muon_program.json"), exports::Format::Latex, o);
  for (const char* piece :
       {"(hidden weight matrices", "The other parameters (biases", "\\operatorname{NS}_5", "\\sqrt{\\max\\left(1", "{1 - 0.95^{t}}"})
    EXPECT_NE(mtex.find(piece), std::string::npos) << piece << "\n" << mtex;
  EXPECT_LT(mtex.find("\\operatorname{NS}_5"), mtex.find("The other parameters"));
  EXPECT_GT(mtex.find("0.95^{t}"), mtex.find("The other parameters"));
  const std::string stex = exports::export_genome(genome::load_genome(dir + "schedule_free_program.json"), exports::Format::Latex, o);
  for (const char* piece : {"x_t = \\theta_t + s_{2}", "c_t = \\frac{w_t}", "\\theta_{t-1} - u_t"})
    EXPECT_NE(stex.find(piece), std::string::npos) << piece << "\n" << stex;
  EXPECT_EQ(stex.find("\\eta_t \\lambda\\, \\theta_{t-1}"), std::string::npos) << stex;
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
  EXPECT_NE(py.out.find("Source: run \"run\" (best_genome.json)"), std::string::npos) << py.out;
  EXPECT_NE(py.out.find("(\"CIFAR-10 (JPEG mirror, lossy)\" 0.5000), 150 steps"), std::string::npos) << py.out;
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

// ---------------------------------------------------------------- issue 25: data-safe export

// ExportedHostile.hpp: `evoopt export` of a hostile run directory at build time
// (tests/CMakeLists.txt); this test compiles only if nothing in it escaped its comments.
TEST(ExportSafety, AHeaderExportedFromAHostileRunCompilesAndTrainsLikeGenomeOptimizer) {
  const Problem p = make_problem(7);
  expect_close(with_header<ExportedHostile>(p), with_genome(p, genome::load_genome(kAllTermsDecoupled)), "hostile run (libtorch header)");
  const std::string header = read_text_file(fs::path(EVOOPT_EXPORTED_DIR) / "ExportedHostile.hpp");
  EXPECT_EQ(directives(header), kHeaderDirectives) << header;
  for (const auto& l : lines_of(header.substr(0, header.find("#pragma once")))) EXPECT_TRUE(starts_with(l, "//")) << l;
  EXPECT_NE(header.find("pwned-label"), std::string::npos) << "the labels are gone from the documentation";
}

TEST(ExportSafety, ClassNamesThatBreakOrShadowTheFileAreRefused) {
  const genome::Genome g = genome::load_genome(kAllTermsDecoupled);
  exports::ExportOptions o;
  o.total_steps = 60;
  const std::vector<std::tuple<exports::Format, std::string, std::string>> refused = {
      {exports::Format::PyTorch, "class", "is a Python keyword"},
      {exports::Format::PyTorch, "None", "is a Python keyword"},
      {exports::Format::PyTorch, "True", "is a Python keyword"},
      {exports::Format::PyTorch, "lambda", "is a Python keyword"},
      {exports::Format::PyTorch, "await", "is a Python keyword"},
      {exports::Format::PyTorch, "match", "is a Python soft keyword"},
      {exports::Format::PyTorch, "_", "is a Python soft keyword"},
      {exports::Format::PyTorch, "__init__", "is a Python special name"},
      {exports::Format::PyTorch, "torch", "is a name the generated pytorch file itself uses"},
      {exports::Format::PyTorch, "math", "is a name the generated pytorch file itself uses"},
      {exports::Format::PyTorch, "int", "is a name the generated pytorch file itself uses"},
      {exports::Format::PyTorch, "super", "is a name the generated pytorch file itself uses"},
      {exports::Format::PyTorch, "ValueError", "is a name the generated pytorch file itself uses"},
      {exports::Format::PyTorch, "Optimizer", "is a name the generated pytorch file itself uses"},
      {exports::Format::PyTorch, "_schedule_factor", "is a name the generated pytorch file itself uses"},
      {exports::Format::PyTorch, "9lives", "is not an identifier"},
      {exports::Format::PyTorch, "bad-name", "is not an identifier"},
      {exports::Format::PyTorch, "na\xc3\xafve", "is not an identifier"},
      {exports::Format::PyTorch, "A\nimport os", "is not an identifier"},
      {exports::Format::PyTorch, "", "is not an identifier"},
      {exports::Format::Cpp, "int", "is a C++ keyword"},
      {exports::Format::Cpp, "class", "is a C++ keyword"},
      {exports::Format::Cpp, "nullptr", "is a C++ keyword"},
      {exports::Format::Cpp, "co_await", "is a C++ keyword"},
      {exports::Format::Cpp, "and", "is a C++ alternative token"},
      {exports::Format::Cpp, "or", "is a C++ alternative token"},
      {exports::Format::Cpp, "not", "is a C++ alternative token"},
      {exports::Format::Cpp, "bitand", "is a C++ alternative token"},
      {exports::Format::Cpp, "xor_eq", "is a C++ alternative token"},
      {exports::Format::Cpp, "final", "is a C++ identifier with a special meaning"},
      {exports::Format::Cpp, "_Opt", "is reserved in C++ (a leading underscore"},
      {exports::Format::Cpp, "_opt", "is reserved in C++ (a leading underscore"},
      {exports::Format::Cpp, "my__opt", "is reserved in C++ (it contains a double underscore)"},
      {exports::Format::Cpp, "assert", "is a standard C/C++ macro"},
      {exports::Format::Cpp, "NULL", "is a standard C/C++ macro"},
      {exports::Format::Cpp, "torch", "is a namespace of libtorch"},
      {exports::Format::Cpp, "std", "is a namespace of libtorch"},
      {exports::Format::Cpp, "at", "is a namespace of libtorch"},
      {exports::Format::Cpp, "c10", "is a namespace of libtorch"},
      {exports::Format::Cpp, "Optimizer", "is a name the generated cpp file itself uses"},
      {exports::Format::Cpp, "M_PI", "is a name the generated cpp file itself uses"},
      {exports::Format::Cpp, "TORCH_ARG", "is a name the generated cpp file itself uses"},
      {exports::Format::Cpp, "ParamState", "is a name the generated cpp file itself uses"},
      {exports::Format::Cpp, "step", "is a member of torch::optim::Optimizer"},
      {exports::Format::Cpp, "LossClosure", "is a member of torch::optim::Optimizer"},
      {exports::Format::Cpp, "zero_grad", "is a member of torch::optim::Optimizer"},
      {exports::Format::Cpp, "parameters", "is a member of torch::optim::Optimizer"},
      {exports::Format::Cpp, "OptimizerCloneable", "its options struct OptimizerCloneableOptions is a name the generated cpp file itself uses"},
      {exports::Format::Cpp, "9lives", "is not an identifier"},
      {exports::Format::Markdown, "<script>", "is not an identifier"},
      {exports::Format::Latex, "a}b", "is not an identifier"}};
  for (const auto& [format, name, why] : refused) {
    o.class_name = name;
    try {
      exports::export_genome(g, format, o);
      ADD_FAILURE() << exports::format_name(format) << " class name '" << name << "' accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(why), std::string::npos) << name << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      if (!name.empty() && name.find('\n') == std::string::npos) EXPECT_NE(msg.find("'" + name + "'"), std::string::npos) << msg;
    }
  }
  o.class_name = std::string(201, 'A');
  EXPECT_THROW(exports::export_genome(g, exports::Format::PyTorch, o), Error);
  for (const char* ok : {"EvolvedOptimizer", "MyOpt", "Lion2", "my_opt", "Sgd"})
    for (const auto f : {exports::Format::PyTorch, exports::Format::Cpp, exports::Format::Latex, exports::Format::Markdown}) {
      o.class_name = ok;
      EXPECT_NO_THROW(exports::export_genome(g, f, o)) << ok << " " << exports::format_name(f);
    }
  // Keywords of one language are fine in the other.
  o.class_name = "int";
  EXPECT_THROW(exports::export_genome(g, exports::Format::Cpp, o), Error);
  o.class_name = "None";
  EXPECT_NO_THROW(exports::export_genome(g, exports::Format::Cpp, o));

  // Through the CLI: one line, non-zero exit, nothing written.
  test::TempDir tmp;
  const fs::path out = tmp / "never";
  const auto r = test::run_cli("export adam --format cpp --class-name int -o " + out.string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err, "evoopt: error: class name 'int' is a C++ keyword\n");
  EXPECT_FALSE(fs::exists(out));
}

TEST(ExportSafety, ADamagedRunFileNamesTheFileAndTheKey) {
  test::TempDir tmp;
  const fs::path run = make_run(tmp / "ok", true);
  const nlohmann::json best = nlohmann::json::parse(read_text_file(run / "best_genome.json"));
  const nlohmann::json config = nlohmann::json::parse(read_text_file(run / "config.json"));
  const nlohmann::json summary = nlohmann::json::parse(read_text_file(run / "summary.json"));
  ASSERT_NO_THROW(exports::load_export_source(run.string()));
  using Edit = std::function<void(nlohmann::json&)>;
  struct Case {
    std::string file;
    Edit edit;
    std::string key_and_why;
  };
  const std::vector<Case> cases = {
      {"summary.json", [](auto& j) { j["final_test"]["overall_mean"] = "0.4"; }, "/final_test/overall_mean: expected a number, got a string"},
      {"summary.json", [](auto& j) { j["final_test"].erase("overall_std"); }, "/final_test/overall_std: missing"},
      {"summary.json", [](auto& j) { j["final_test"]["per_task"] = nlohmann::json::array(); },
       "/final_test/per_task: expected an object, got an array"},
      {"summary.json", [](auto& j) { j["final_test"]["per_task"] = nlohmann::json::object(); }, "/final_test/per_task: expected at least one task"},
      {"summary.json", [](auto& j) { j["final_test"]["per_task"]["a_task"]["mean"] = nullptr; },
       "/final_test/per_task/a_task/mean: expected a number, got null"},
      {"summary.json", [](auto& j) { j["final_test"]["per_task"]["a_task"]["accuracy"] = 3; },
       "/final_test/per_task/a_task/accuracy: expected an array, got an integer"},
      {"summary.json", [](auto& j) { j["final_test"]["per_task"]["a_task"]["accuracy"][1] = "x"; },
       "/final_test/per_task/a_task/accuracy/1: expected a number, got a string"},
      {"summary.json", [](auto& j) { j["final_test"]["per_task"]["b_task"]["label"] = 7; },
       "/final_test/per_task/b_task/label: expected a string, got an integer"},
      {"summary.json", [](auto& j) { j["final_test"]["per_task"]["b_task"]["label"] = std::string(1001, 'x'); },
       "/final_test/per_task/b_task/label: a string of 1001 bytes is longer than the limit of 1000"},
      {"summary.json", [](auto& j) { j["final_test"]["per_task"]["c_task"] = "x"; }, "/final_test/per_task/c_task: expected an object, got a string"},
      {"summary.json", [](auto& j) { j["final_test"] = 1; }, "/final_test: expected an object, got an integer"},
      {"summary.json", [](auto& j) { j = nlohmann::json::array(); }, "summary.json: expected an object, got an array"},
      {"config.json", [](auto& j) { j["steps"] = "60"; }, "/steps: expected an integer in ["},
      {"config.json", [](auto& j) { j["steps"] = -3; }, "/steps: expected an integer in ["},
      {"config.json", [](auto& j) { j["steps"] = 60.5; }, "/steps: expected an integer in ["},
      {"config.json", [](auto& j) { j["steps"] = 18446744073709551615ULL; }, "/steps: expected an integer in ["},
      {"config.json", [](auto& j) { j.erase("steps"); }, "/steps: missing"},
      {"best_genome.json", [](auto& j) { j["validation_fitness"] = "high"; }, "/validation_fitness: expected a number, got a string"},
      {"best_genome.json", [](auto& j) { j["genome"] = "adam"; }, "/genome: expected an object, got a string"},
      {"best_genome.json", [](auto& j) { j["genome"]["beta1"] = 2.0; }, "/genome: genome field beta1 = 2 is outside"},
      {"best_genome.json", [](auto& j) { j["genome"]["terms"] = 5; }, "/genome: genome JSON needs a 'terms' array"},
      {"best_genome.json", [](auto& j) { j.erase("genome"); }, "/genome: missing"}};
  const std::map<std::string, const nlohmann::json*> original = {{"best_genome.json", &best}, {"config.json", &config}, {"summary.json", &summary}};
  for (const auto& c : cases) {
    nlohmann::json j = *original.at(c.file);
    c.edit(j);
    write_file_atomic(run / c.file, j.dump());
    try {
      exports::load_export_source(run.string());
      ADD_FAILURE() << c.file << ": " << c.key_and_why << ": accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_TRUE(starts_with(msg, (run / c.file).string() + ": ")) << msg;
      EXPECT_NE(msg.find(c.key_and_why), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    write_file_atomic(run / c.file, original.at(c.file)->dump());
  }
  // Through the CLI: one line, non-zero exit, nothing written.
  nlohmann::json bad = summary;
  bad["final_test"]["overall_mean"] = "0.4";
  write_file_atomic(run / "summary.json", bad.dump());
  const fs::path out = tmp / "never.py";
  const auto r = test::run_cli("export " + run.string() + " --format pytorch -o " + out.string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find((run / "summary.json").string() + ": /final_test/overall_mean: expected a number, got a string"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// A program genome with two programs (Muon's: W is the hidden matrix, b the rest, at aux_lr,
// clipped over both) and one with an evaluation point (Schedule-Free AdamW's x, with the
// constants lr, wd and avg_weight) export too: the libtorch header and the PyTorch class train
// like evoopt's AlgorithmOptimizer in float64, and evaluate at the same x.
namespace {
struct Trained {
  std::pair<torch::Tensor, torch::Tensor> at_y, at_x;
};
// Trains W, b with `step` (called with the 1-based step), then moves them to x with `to_x`.
Trained train_and_evaluate(const Problem& p, torch::Tensor& w, torch::Tensor& b, const std::function<void(std::int64_t)>& step,
                           const std::function<void()>& to_x) {
  for (std::int64_t k = 0; k < kSteps; ++k) {
    if (w.grad().defined()) w.mutable_grad().zero_();
    if (b.grad().defined()) b.mutable_grad().zero_();
    auto loss = (torch::tanh(torch::matmul(p.x[k], w) + b) - p.y[k]).pow(2).mean();
    loss.backward();
    step(k + 1);
  }
  Trained t;
  t.at_y = {w.detach().clone(), b.detach().clone()};
  to_x();
  t.at_x = {w.detach().clone(), b.detach().clone()};
  return t;
}
}  // namespace

TEST(Export, TwoProgramsAndAnEvaluationPointTrainAndEvaluateLikeEvoopt) {
  test::TempDir tmp;
  const Problem p = make_problem(13);
  const fs::path data = tmp / "data.json";
  write_file_atomic(data,
                    nlohmann::json{{"W0", tensor_json(p.w0)}, {"b0", tensor_json(p.b0)}, {"X", tensor_json(p.x)}, {"Y", tensor_json(p.y)}}.dump());
  const std::string dir = std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_genomes/";
  for (const std::string cls : {"ExportedMuonProgram", "ExportedScheduleFreeProgram"}) {
    SCOPED_TRACE(cls);
    const bool muon = cls == "ExportedMuonProgram";
    const std::string file = dir + (muon ? "muon_program.json" : "schedule_free_program.json");
    const genome::Genome g = genome::load_genome(file);
    ASSERT_EQ(g.has_program_rest(), muon);
    ASSERT_EQ(g.evaluates_elsewhere(), !muon);
    // evoopt: AlgorithmOptimizer with W as the hidden matrix.
    auto w = p.w0.clone().requires_grad_(true), b = p.b0.clone().requires_grad_(true);
    optim::AlgorithmOptimizer ref_opt(g, {{"W", w}, {"b", b}}, kSteps, {"W"});
    const Trained reference = train_and_evaluate(
        p, w, b, [&](std::int64_t t) { ref_opt.step(t); }, [&] { ref_opt.to_evaluation(); });
    EXPECT_GT((reference.at_y.first - p.w0).abs().max().item<double>(), 1e-3);
    // x differs from the training weights where there is an evaluation point (else at_x proves nothing).
    EXPECT_EQ((reference.at_x.first - reference.at_y.first).abs().max().item<double>() > 1e-6, !muon);
    // The header exported at build time.
    auto hw = p.w0.clone().requires_grad_(true), hb = p.b0.clone().requires_grad_(true);
    Trained header;
    if (muon) {
      ExportedMuonProgram opt({hw}, {hb}, ExportedMuonProgramOptions().total_steps(kSteps));
      header = train_and_evaluate(
          p, hw, hb, [&](std::int64_t) { opt.step(); }, [] {});
      // The split of a model as evoopt splits it: first and last matrices with the rest.
      torch::nn::Sequential model(torch::nn::Linear(4, 8), torch::nn::Linear(8, 8), torch::nn::Linear(8, 2));
      const auto [hidden, rest] = ExportedMuonProgram::split_parameters(model->named_parameters());
      ASSERT_EQ(hidden.size(), 1U);
      EXPECT_TRUE(hidden[0].is_same(model[1]->as<torch::nn::Linear>()->weight));
      EXPECT_EQ(rest.size(), 5U);
    } else {
      ExportedScheduleFreeProgram opt({hw, hb}, ExportedScheduleFreeProgramOptions().total_steps(kSteps));
      header = train_and_evaluate(
          p, hw, hb, [&](std::int64_t) { opt.step(); }, [&] { opt.to_evaluation(); });
      EXPECT_THROW(opt.step(), std::logic_error);
      opt.to_training();
      EXPECT_TRUE(torch::equal(hw.detach(), header.at_y.first));
    }
    expect_close(header.at_y, reference.at_y, cls + " (libtorch header)");
    expect_close(header.at_x, reference.at_x, cls + " (libtorch header, at x)");
    // The PyTorch class, exported now by the CLI.
    const fs::path py = tmp / (cls + ".py");
    const auto made = test::run_cli("export " + file + " --format pytorch --total-steps 60 --class-name " + cls + " -o " + py.string());
    ASSERT_EQ(made.exit_code, 0) << made.err;
    const fs::path out = tmp / (cls + ".json");
    const std::string cmd = "/usr/bin/python3 " + std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_check.py " + py.string() + " " + cls + " " +
                            data.string() + " " + out.string() + (muon ? " --rest-b" : "") + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const auto j = nlohmann::json::parse(read_text_file(out));
    expect_close({json_tensor(j.at("W")), json_tensor(j.at("b"))}, reference.at_y, cls + " (PyTorch class)");
    EXPECT_TRUE(j.at("state_dict_resume_equal").get<bool>());
    if (!muon) {
      expect_close({json_tensor(j.at("W_x")), json_tensor(j.at("b_x"))}, reference.at_x, cls + " (PyTorch class, at x)");
      EXPECT_TRUE(j.at("train_restores").get<bool>());
    }
  }
}
