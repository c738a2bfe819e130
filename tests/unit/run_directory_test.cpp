// RunDirectory (common/run_dir.hpp): the one place that knows a run directory's file names,
// format headers and the versions this evoopt reads.
#include <gtest/gtest.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/run_dir.hpp"
#include "test_support.hpp"

using namespace evoopt;

TEST(RunDirectory, WritesTheHeaderAndReadsItBack) {
  test::TempDir tmp;
  const RunDirectory dir(tmp.path());
  EXPECT_FALSE(dir.has(run_files::kLineage));
  EXPECT_FALSE(dir.read_if_present(run_files::kLineage).has_value());
  dir.write_json(run_files::kLineage, {{"individuals", nlohmann::json::array()}}, 1);
  EXPECT_EQ(read_text_file(dir / run_files::kLineage), "{\n \"format\": \"evoopt.lineage\",\n \"individuals\": [],\n \"version\": 1\n}\n");
  EXPECT_EQ(dir.read(run_files::kLineage).at("individuals").size(), 0u);
  // A directory-less run has no files.
  EXPECT_TRUE((RunDirectory("") / run_files::kCheckpoint).empty());
}

TEST(RunDirectory, AnotherFormatOrAVersionItDoesNotReadIsRefusedNamingFileAndVersion) {
  test::TempDir tmp;
  const RunDirectory dir(tmp.path());
  const auto path = (dir / run_files::kCheckpoint).string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"format": "evoopt.lineage", "version": 1})", path + ": not an evoopt checkpoint (format field missing or different)"},
      {R"([])", path + ": not an evoopt checkpoint (format field missing or different)"},
      {R"({"format": "evoopt.checkpoint", "version": 2})",
       path + ": /version: evoopt.checkpoint version 2 is not one this evoopt reads (1): written by a newer evoopt"},
      {R"({"format": "evoopt.checkpoint", "version": "1"})", path + ": /version: evoopt.checkpoint version \"1\" is not one this evoopt reads (1)"},
      {R"({"format": "evoopt.checkpoint"})", path + ": /version: missing"},
  };
  for (const auto& [text, want] : cases) {
    write_file_atomic(dir / run_files::kCheckpoint, text);
    EXPECT_EQ(test::error_of([&] { dir.read(run_files::kCheckpoint); }), want) << text;
  }
  // The comparison's format is at version 2; version 1 files (older layout) are refused by name.
  write_file_atomic(dir / run_files::kComparison, R"({"format": "evoopt.comparison", "version": 1})");
  EXPECT_NE(test::error_of([&] { dir.read(run_files::kComparison); }).find("evoopt.comparison version 1 is not one this evoopt reads (2)"),
            std::string::npos);
}
