// Bad input that needs neither data nor the CLI (issue 9): a write to a full disk names the
// path. The table of bad inputs through the CLI (genome files, config files, flags, datasets,
// run directories) is tests/integration/bad_input_integration_test.cpp.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "evoopt/common/files.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

TEST(BadInput, AFullDiskNamesThePath) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  try {
    append_line_durable("/dev/full", "x");
    FAIL() << "a write to a full device succeeded";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full: write failed: No space left on device"), std::string::npos) << e.what();
  }
}
