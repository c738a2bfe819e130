#pragma once
// The user task of the [[task]] tests (unit/user_task_test.cpp,
// integration/user_task_integration_test.cpp): TorchScript models and data made by
// make_user_task.py under Debian's python3-torch, and a config holding their [[task]] tables.
// File-local (an unnamed namespace) in each test file that includes it.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace {

// The generated models and data plus a config holding their [[task]] tables, made once.
const std::filesystem::path& user_dir() {
  static evoopt::test::TempDir dir;
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

}  // namespace
