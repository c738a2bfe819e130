#pragma once
// An append-only journal of completed training runs keyed by a string, so a
// study stage (final test, sweep, comparison) never repeats a completed run
// after a crash or Ctrl-C.
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "evoopt/train/trainer.hpp"

namespace evoopt::eval {

class RunJournal {
 public:
  // Empty path: in memory only.
  explicit RunJournal(std::filesystem::path path = {});
  std::optional<train::RunResult> find(const std::string& key) const;
  void append(const std::string& key, const train::RunResult& result);
  std::size_t size() const;
  // Every stored run (for cost accounting).
  std::map<std::string, train::RunResult> all() const;

 private:
  std::filesystem::path path_;
  mutable std::mutex mutex_;
  std::map<std::string, train::RunResult> runs_;
};

}  // namespace evoopt::eval
