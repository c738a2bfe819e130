#pragma once
// The run directory's files: the one place that knows their names, their format headers
// ({"format": "evoopt.X", "version": N}) and which versions this evoopt reads. Every layer
// that writes or reads a run directory (ga, experiment, export, report, the CLI's status)
// names a file by its RunFile and goes through RunDirectory.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "evoopt/common/json_io.hpp"

namespace evoopt {

struct RunFile {
  std::string_view name;    // "checkpoint.json"
  std::string_view format;  // "evoopt.checkpoint"; empty: the file has no format header
  int version = 0;          // the version written; reads accept [min_version, version]
  int min_version = 0;
  std::string_view what;  // in messages: "not an evoopt checkpoint"
};

namespace run_files {
inline constexpr RunFile kConfig{"config.json", "evoopt.config", 1, 1, "config"};
inline constexpr RunFile kJournal{"journal.jsonl", "", 0, 0, "journal"};
inline constexpr RunFile kCompletions{"completions.jsonl", "evoopt.completions", 1, 1, "completion log"};  // --async: the order runs finished
inline constexpr RunFile kCheckpoint{"checkpoint.json", "evoopt.checkpoint", 1, 1, "checkpoint"};
inline constexpr RunFile kHistoryCsv{"history.csv", "", 0, 0, "history table"};
inline constexpr RunFile kHistory{"history.json", "evoopt.history", 1, 1, "history"};
inline constexpr RunFile kLineage{"lineage.json", "evoopt.lineage", 1, 1, "lineage"};
inline constexpr RunFile kBestGenome{"best_genome.json", "evoopt.best_genome", 1, 1, "best genome"};
inline constexpr RunFile kFinalTest{"final_test.json", "evoopt.final_test", 1, 1, "final test"};
inline constexpr RunFile kSummary{"summary.json", "evoopt.summary", 1, 1, "summary"};
inline constexpr RunFile kComparison{"comparison.json", "evoopt.comparison", 2, 2, "comparison"};
inline constexpr RunFile kComparisonCsv{"comparison.csv", "", 0, 0, "comparison table"};
inline constexpr RunFile kReport{"report.html", "", 0, 0, "report"};
}  // namespace run_files

class RunDirectory {
 public:
  explicit RunDirectory(std::filesystem::path dir) : dir_(std::move(dir)) {}
  const std::filesystem::path& path() const { return dir_; }
  // The file's path; an empty RunDirectory gives an empty path (runs without a directory).
  std::filesystem::path operator/(const RunFile& f) const;
  bool has(const RunFile& f) const;

  // The file parsed; where it has a format header, the header checked: another format, or a
  // version outside [min_version, version], is an error naming the file and the version.
  JsonView read(const RunFile& f) const;
  std::optional<JsonView> read_if_present(const RunFile& f) const;
  // Written atomically (common/files.hpp); `body` gets the file's header where it has one.
  void write_json(const RunFile& f, nlohmann::json body, int indent) const;
  void write_text(const RunFile& f, const std::string& text) const;

  // The header {"format", "version"} of `f` (empty object when it has none).
  static nlohmann::json header(const RunFile& f);
  // Checks a parsed header: the throw names `where` and the version found.
  static void check_header(const RunFile& f, const JsonView& doc);

 private:
  std::filesystem::path dir_;
};

}  // namespace evoopt
