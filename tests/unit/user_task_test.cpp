// Bring your own task (issue 12): a [[task]] with a TorchScript model made in PyTorch
// (tests/unit/make_user_task.py under Debian's python3-torch) and generated data trains
// above chance from the CLI, reproducibly, in `evolve` with worker processes and held out
// in the comparison; shapes that do not fit are refused before training, with one line.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

namespace {

// The generated models and data plus a config holding their [[task]] tables, made once.
const fs::path& user_dir() {
  static test::TempDir dir;
  static const bool made = [] {
    const std::string cmd = "/usr/bin/python3 " + std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/make_user_task.py " + dir.path().string();
    if (std::system(cmd.c_str()) != 0) return false;
    std::ofstream(dir / "tasks.toml") << R"TOML(tasks = ["blobs"]
transfer_tasks = []

[[task]]
name = "blobs"
model = "cnn.pt"
data = "blobs.pt"
format = "tensors"
val_size = 400

[[task]]
name = "wrong_out"
model = "wrong_out.pt"
data = "blobs.pt"
format = "tensors"
val_size = 400

[[task]]
name = "wrong_in"
model = "wrong_in.pt"
data = "blobs.pt"
format = "tensors"
val_size = 400

[[task]]
name = "pattern"
model = "bigram.pt"
data = "tokens.pt"
format = "tensors"
kind = "next_token"
seq_len = 16
)TOML";
    return true;
  }();
  if (!made) ADD_FAILURE() << "make_user_task.py failed (is Debian's python3-torch installed? scripts/setup.sh installs it)";
  return dir.path();
}

task::TaskOptions options_with_user_tasks() {
  experiment::ExperimentConfig c;
  c.load_toml(user_dir() / "tasks.toml");
  task::TaskOptions o;
  o.user_tasks = c.user_tasks;
  return o;
}

}  // namespace

TEST(UserTask, TorchScriptModelTrainsAboveChanceFromTheCli) {
  const fs::path dir = user_dir();
  const std::string cfg = " --config " + (dir / "tasks.toml").string();
  auto r = test::run_cli("train --task blobs --steps 60" + cfg + " --out " + (dir / "blobs.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto j = nlohmann::json::parse(read_text_file(dir / "blobs.json"));
  EXPECT_GT(j["accuracy"].get<double>(), 0.9) << "4 classes: chance is 0.25";
  EXPECT_EQ(j["model"], "torchscript");
  // Next-token data: fitness = exp(−loss) = 1/perplexity, far above uniform guessing (1/8).
  auto p = test::run_cli("train --task pattern --steps 300" + cfg + " --out " + (dir / "pattern.json").string());
  ASSERT_EQ(p.exit_code, 0) << p.out << p.err;
  const auto pj = nlohmann::json::parse(read_text_file(dir / "pattern.json"));
  EXPECT_GT(pj["accuracy"].get<double>(), 0.3);
  EXPECT_NEAR(pj["accuracy"].get<double>(), std::exp(-pj["eval_loss"].get<double>()), 1e-9);
  EXPECT_NE(p.out.find("perplexity"), std::string::npos) << p.out;
}

TEST(UserTask, ShapesThatDoNotFitAreRefusedBeforeTraining) {
  const std::string cfg = " --config " + (user_dir() / "tasks.toml").string();
  auto out = test::run_cli("train --task wrong_out --steps 5" + cfg);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_EQ(test::count_lines(out.err), 1) << out.err;
  EXPECT_NE(out.err.find("returns (64, 3) for a batch of images (64, 1, 8, 8); expected logits (64, 4) (4 classes)"), std::string::npos) << out.err;
  EXPECT_EQ(out.out.find("step "), std::string::npos);  // nothing trained
  auto in = test::run_cli("train --task wrong_in --steps 5" + cfg);
  EXPECT_NE(in.exit_code, 0);
  EXPECT_EQ(test::count_lines(in.err), 1) << in.err;
  EXPECT_NE(in.err.find("cannot take a batch of images (64, 1, 8, 8): RuntimeError: mat1 and mat2 shapes cannot be multiplied"), std::string::npos)
      << in.err;
  // Bad [[task]] tables: one line naming the problem.
  const fs::path bad = user_dir() / "bad.toml";
  for (const auto& [table, expect] : std::vector<std::pair<std::string, std::string>>{
           {"name = \"x\"\nmodle = \"cnn.pt\"\n", "unknown key task[0].modle"},
           {"name = \"x\"\nmodel = \"absent.pt\"\ndata = \"blobs.pt\"\nformat = \"tensors\"\n", "absent.pt does not exist"},
           {"name = \"x\"\nmodel = \"cnn.pt\"\ndata = \"blobs.pt\"\nformat = \"npz\"\n", "unknown format 'npz'"},
           {"name = \"x\"\nmodel = \"blobs.pt\"\ndata = \"blobs.pt\"\nformat = \"tensors\"\n", "not a TorchScript model"},
           {"name = \"x\"\nmodel = \"cnn.pt\"\ndata = \"cnn.pt\"\nformat = \"tensors\"\n", "cannot be read as tensors"},
           {"name = \"mnist\"\nmodel = \"cnn.pt\"\ndata = \"blobs.pt\"\nformat = \"tensors\"\n", "the name of a built-in dataset"}}) {
    std::ofstream(bad, std::ios::trunc) << "tasks = [\"x\"]\n[[task]]\n" << table;
    const std::string task = table.find("mnist") != std::string::npos ? "mnist" : "x";
    auto r = test::run_cli("evolve --config " + bad.string() + " --tasks " + task + " --out " + (user_dir() / "never").string());
    EXPECT_NE(r.exit_code, 0) << table;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << table << "\n" << r.err;
    EXPECT_FALSE(fs::exists(user_dir() / "never"));
  }
}

TEST(UserTask, SameSeedSameRunAndTheFingerprintHoldsTheModelAndData) {
  const task::TaskOptions o = options_with_user_tasks();
  const task::Task t = task::load_task("blobs", o);
  EXPECT_EQ(t.model, task::ModelPreset::TorchScript);
  EXPECT_EQ(t.description().at("user_task").at("model_sha256").get<std::string>().size(), 64u);
  EXPECT_FALSE(t.data->digest.empty());
  train::Budget b;
  b.steps = 20;
  b.log_every = 1;
  const auto g = genome::preset("adam");
  const auto r1 = train::train_and_evaluate(g, t, 3, b), r2 = train::train_and_evaluate(g, t, 3, b);
  ASSERT_EQ(r1.loss_curve.size(), r2.loss_curve.size());
  for (std::size_t i = 0; i < r1.loss_curve.size(); ++i) EXPECT_EQ(r1.loss_curve[i].loss, r2.loss_curve[i].loss);
  EXPECT_EQ(r1.accuracy, r2.accuracy);
  // Another seed draws other initial weights (the first loss differs).
  const auto r3 = train::train_and_evaluate(g, t, 4, b);
  EXPECT_NE(r1.loss_curve.front().loss, r3.loss_curve.front().loss);
  // A task's own steps stand for the study's: with steps = 40 where the study trains 20, a
  // request for 10 steps (a racing rung) trains 20, and one for 40 (the 2x block) trains 80.
  task::TaskOptions scaled = o;
  scaled.study_steps = 20;
  scaled.user_tasks[0].steps = 40;
  const task::Task s = task::load_task("blobs", scaled);
  EXPECT_EQ(s.step_scale, 2.0);
  EXPECT_EQ(s.description().at("step_scale"), 2.0);
  b.steps = 10;
  EXPECT_EQ(train::train_and_evaluate(g, s, 3, b).steps_done, 20);
  b.steps = 40;
  EXPECT_EQ(train::train_and_evaluate(g, s, 3, b).steps_planned, 80);
  // The spec travels to worker processes through TaskOptions' one field list.
  const auto back = task::task_options_from_json(task::to_json(o));
  ASSERT_EQ(back.user_tasks.size(), o.user_tasks.size());
  EXPECT_EQ(back.user_tasks[0].to_json(), o.user_tasks[0].to_json());
  EXPECT_EQ(task::task_options_from_json(task::to_json(scaled)).study_steps, 20);
  // A [[task]] table takes the JSON's keys (UserTaskSpec::fields, one list): the spec written
  // back as TOML reads back the same.
  const fs::path again = user_dir() / "again.toml";
  {
    std::ofstream t(again, std::ios::trunc);
    t << "tasks = [\"" << o.user_tasks[0].name << "\"]\n[[task]]\n";
    const nlohmann::json spec = o.user_tasks[0].to_json();
    for (const auto& [k, v] : spec.items()) t << k << " = " << v.dump() << "\n";
  }
  experiment::ExperimentConfig c;
  c.load_toml(again);
  ASSERT_EQ(c.user_tasks.size(), 1u);
  EXPECT_EQ(c.user_tasks[0].to_json(), o.user_tasks[0].to_json());
}

TEST(UserTask, EvolveWithWorkersHoldsItOutAndResumeRefusesAChangedModel) {
  const fs::path dir = user_dir();
  const fs::path run = dir / "run";
  // Its own copy of the model, changed below.
  fs::copy_file(dir / "cnn.pt", dir / "cnn_run.pt", fs::copy_options::overwrite_existing);
  std::string toml = read_text_file(dir / "tasks.toml");
  toml.replace(toml.find("\"cnn.pt\""), 8, "\"cnn_run.pt\"");
  std::ofstream(dir / "run.toml") << toml;
  const std::string args = "evolve --config " + (dir / "run.toml").string() +
                           " --tasks blobs --transfer-tasks pattern --population 4 --generations 2 --steps 10 --workers 2 --final-test-seeds 2"
                           " --no-break-even --baselines seed --out " +
                           run.string();
  auto r = test::run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("Transfer: tasks the search never saw"), std::string::npos) << r.out;
  const auto cmp = nlohmann::json::parse(read_text_file(run / "comparison.json"));
  EXPECT_EQ(cmp["transfer"]["tasks"], nlohmann::json::array({"pattern"}));
  const auto cfg = nlohmann::json::parse(read_text_file(run / "config.json"));
  EXPECT_EQ(cfg["user_tasks"].size(), 4u);
  EXPECT_TRUE(cfg["task_fingerprint_inputs"]["blobs"]["task"]["user_task"].contains("model_sha256"));
  // The search never ran the held-out task.
  for (const auto& line : read_journal_lines(run / "journal.jsonl")) {
    const auto e = nlohmann::json::parse(line);
    if (e["key"]["task"] == "pattern") EXPECT_EQ(e["key"]["split"], "test");
  }
  // The unchanged run resumes (it is complete: nothing to train); a model file changed since
  // the start (same architecture, other bytes) is refused, naming the task.
  auto same = test::run_cli("resume " + run.string());
  EXPECT_EQ(same.exit_code, 0) << same.err;
  fs::copy_file(dir / "cnn_b.pt", dir / "cnn_run.pt", fs::copy_options::overwrite_existing);
  auto resumed = test::run_cli("resume " + run.string());
  EXPECT_NE(resumed.exit_code, 0);
  EXPECT_EQ(test::count_lines(resumed.err), 1) << resumed.err;
  EXPECT_NE(resumed.err.find("task blobs no longer matches the run"), std::string::npos) << resumed.err;
}

TEST(UserTask, ImageFolderIdxAndCifarDataLoadWithTheirModels) {
  const fs::path dir = user_dir();
  task::TaskOptions o;
  auto spec = [&](const std::string& name, const std::string& model, const fs::path& data, const std::string& format) {
    task::UserTaskSpec s;
    s.name = name;
    s.model = dir / model;
    s.data = data;
    s.format = format;
    return s;
  };
  // image_folder: PNGs written by make_user_task.py, classes from the directory names.
  auto folder = spec("folder", "cnn.pt", dir / "folder", "image_folder");
  folder.input = {1, 8, 8};
  folder.val_size = 8;
  o.user_tasks = {folder};
  const task::Task f = task::load_task("folder", o);
  EXPECT_EQ(f.data->classes, (std::vector<std::string>{"class0", "class1", "class2", "class3"}));
  EXPECT_EQ(f.data->train.size() + f.data->val.size(), 48);
  EXPECT_EQ(f.data->test.size(), 16);
  EXPECT_FALSE(f.data->digest.empty());
  train::Budget b;
  b.steps = 5;
  EXPECT_FALSE(train::train_and_evaluate(genome::preset("adam"), f, 0, b).diverged);
  // idx: MNIST's four files under their official names.
  EVOOPT_REQUIRE_DATASET("mnist");
  const fs::path idx = dir / "idx";
  fs::create_directories(idx);
  for (const char* n : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    if (!fs::exists(idx / n)) fs::create_symlink(fs::absolute(test::data_dir() / "mnist" / n), idx / n);
  o.user_tasks = {spec("digits", "linear28.pt", idx, "idx")};
  const task::Task d = task::load_task("digits", o);
  EXPECT_EQ(d.data->train.size() + d.data->val.size(), 60000);
  EXPECT_EQ(d.data->test.size(), 10000);
  EXPECT_EQ(d.input().classes, 10);
  // A model for other images is refused on the first batch.
  o.user_tasks = {spec("digits", "linear32.pt", idx, "idx")};
  EXPECT_THROW(task::load_task("digits", o), Error);
  // cifar: the official-format sample batches of the offline mirror.
  EVOOPT_REQUIRE_MIRROR();
  const fs::path cifar = dir / "cifar";
  fs::create_directories(cifar);
  if (!fs::exists(cifar / "data_batch_1.bin"))
    fs::create_symlink(fs::absolute(test::mirror_dir() / "cifar10" / "data_batch_1_first1000.bin.gz"), cifar / "data_batch_1.bin");
  if (!fs::exists(cifar / "test_batch.bin"))
    fs::create_symlink(fs::absolute(test::mirror_dir() / "cifar10" / "test_batch_first1000.bin.gz"), cifar / "test_batch.bin");
  auto c = spec("photos", "linear32.pt", cifar, "cifar");
  c.val_size = 100;
  o.user_tasks = {c};
  const task::Task p = task::load_task("photos", o);
  EXPECT_EQ(p.data->train.size(), 900);
  EXPECT_EQ(p.data->test.size(), 1000);
  EXPECT_EQ(p.data->train.images.size(1), 3);
}
