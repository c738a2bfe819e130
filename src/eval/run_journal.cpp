#include "evoopt/eval/run_journal.hpp"

#include <fstream>

#include <nlohmann/json.hpp>

#include "evoopt/common/files.hpp"

namespace evoopt::eval {

RunJournal::RunJournal(std::filesystem::path path) : path_(std::move(path)) {
  if (path_.empty() || !std::filesystem::exists(path_)) return;
  for (const auto& line : read_journal_lines(path_)) {
    auto j = nlohmann::json::parse(line);
    runs_[j.at("key").get<std::string>()] = train::run_result_from_json(j.at("result"));
  }
}

std::optional<train::RunResult> RunJournal::find(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = runs_.find(key);
  if (it == runs_.end()) return std::nullopt;
  return it->second;
}

void RunJournal::append(const std::string& key, const train::RunResult& result) {
  std::lock_guard<std::mutex> lock(mutex_);
  runs_[key] = result;
  if (!path_.empty()) append_line_durable(path_, nlohmann::json{{"key", key}, {"result", train::to_json(result)}}.dump());
}

std::size_t RunJournal::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return runs_.size();
}

std::map<std::string, train::RunResult> RunJournal::all() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return runs_;
}

}  // namespace evoopt::eval
