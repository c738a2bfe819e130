// Bring your own task (issue 12): a [[task]] with a TorchScript model made in PyTorch
// (tests/unit/make_user_task.py under Debian's python3-torch) and generated data trains
// reproducibly, and its fingerprint holds the model and the data. From the CLI, with worker
// processes, and with idx and cifar data: tests/integration/user_task_integration_test.cpp.
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

namespace {

task::TaskOptions options_with_user_tasks() {
  experiment::ExperimentConfig c;
  c.load_toml(user_dir() / "tasks.toml");
  task::TaskOptions o;
  o.user_tasks = c.user_tasks;
  return o;
}

}  // namespace

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

// A user's TorchScript model says which parameters Muon steps (muon_parameters): used by the
// Muon baseline, part of the task's key only when given, and checked when the task loads.
TEST(UserTask, MuonParametersNameWhatMuonStepsAndAreCheckedOnLoad) {
  task::TaskOptions o = options_with_user_tasks();
  const task::Task automatic = task::load_task("blobs", o);
  std::vector<std::string> matrices;
  for (auto& [name, p] : automatic.instantiate_model(0)->named_state())
    if (name.rfind("param/", 0) == 0 && p.dim() >= 2) matrices.push_back(name.substr(6));
  ASSERT_GE(matrices.size(), 2u);
  o.user_tasks[0].muon_parameters = {matrices.front()};  // the input layer: the automatic split keeps it on AdamW
  const task::Task named = task::load_task("blobs", o);
  EXPECT_EQ(automatic.description().dump().find("muon_parameters"), std::string::npos);  // keys of tasks without it unchanged
  EXPECT_NE(named.description().dump().find("muon_parameters"), std::string::npos);
  train::Budget b;
  b.steps = 5;
  const auto r = train::train_and_evaluate(genome::preset("muon"), named, 3, b);
  EXPECT_EQ(r.parameter_split.rfind("Muon: " + matrices.front() + " [", 0), 0u) << r.parameter_split;
  EXPECT_EQ(train::train_and_evaluate(genome::preset("muon"), automatic, 3, b).parameter_split.find("Muon: " + matrices.front() + " ["),
            std::string::npos);
  o.user_tasks[0].muon_parameters = {"no_such"};
  try {
    task::load_task("blobs", o);
    ADD_FAILURE() << "an unknown parameter name was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[[task]] 'blobs': muon_parameters: Muon: the model has no parameter named 'no_such'"), std::string::npos)
        << e.what();
  }
}
