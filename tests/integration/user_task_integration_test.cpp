// Bring your own task (issue 12): a [[task]] with a TorchScript model made in PyTorch
// (tests/unit/make_user_task.py under Debian's python3-torch) and generated data trains
// above chance from the CLI, in `evolve` with worker processes and held out in the
// comparison; shapes that do not fit are refused before training, with one line; image
// folders, MNIST's idx files and the offline mirror's CIFAR batches load with their models.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"
#include "test_support.hpp"
#include "user_task_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

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
