#include "evoopt/eval/run_store.hpp"

#include <stdexcept>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"

namespace evoopt::eval {
using nlohmann::json;

namespace {
constexpr std::pair<RunStage, const char*> kStageNames[] = {{RunStage::Search, "search"},
                                                            {RunStage::Test, "test"},
                                                            {RunStage::BreakEven, "break-even"},
                                                            {RunStage::Sweep, "sweep"},
                                                            {RunStage::RandomSearch, "random-search"},
                                                            {RunStage::Attribution, "attribution"},
                                                            {RunStage::Transfer, "transfer"}};
}  // namespace

const char* run_stage_name(RunStage s) {
  for (const auto& [stage, name] : kStageNames)
    if (stage == s) return name;
  throw Error("unknown run stage");
}

RunStage run_stage_from_name(const std::string& name) {
  std::string known;
  for (const auto& [stage, n] : kStageNames) {
    if (name == n) return stage;
    known += known.empty() ? n : std::string(", ") + n;
  }
  throw Error(fmt::format("run stage '{}' is not one of {}", name, known));
}

// A stop shows as steps@stop; keys without one read as they always did.
std::string RunKey::str() const {
  const std::string at = stop > 0 ? fmt::format("{}@{}", steps, stop) : std::to_string(steps);
  return fmt::format("{}/{}/{}/{}/{}/{}", genome, task, split, at, seed, fingerprint);
}

json RunKey::to_json() const {
  json j = {{"genome", genome}, {"task", task}, {"split", split}, {"steps", steps}, {"seed", seed}, {"fingerprint", fingerprint}};
  if (stop > 0) j["stop"] = stop;
  return j;
}

RunKey RunKey::from_json(const json& j) {
  RunKey k;
  k.genome = j.at("genome").get<std::string>();
  k.task = j.at("task").get<std::string>();
  k.split = j.at("split").get<std::string>();
  k.steps = j.at("steps").get<std::int64_t>();
  k.seed = j.at("seed").get<std::uint64_t>();
  k.fingerprint = j.at("fingerprint").get<std::string>();
  if (k.steps < 1) throw Error("key field steps must be >= 1, got " + std::to_string(k.steps));
  k.stop = j.value("stop", std::int64_t{0});
  if (k.stop < 0 || k.stop >= k.steps) throw Error(fmt::format("key field stop must be in [0, steps = {}), got {}", k.steps, k.stop));
  return k;
}

RunKey run_key(const Evaluator& evaluator, const RunRequest& r) {
  RunKey k;
  k.genome = r.genome.hash_hex();
  k.task = r.task;
  k.split = data::split_name(r.split);
  if (r.eval_limit < 0) throw Error("eval_limit must be >= 0, got " + std::to_string(r.eval_limit));
  if (r.eval_limit > 0) k.split += ":first" + std::to_string(r.eval_limit);  // scored on a prefix: another result
  if (r.curve_every < 0) throw Error("curve_every must be >= 0, got " + std::to_string(r.curve_every));
  if (r.curve_every > 0) k.split += ":curve" + std::to_string(r.curve_every);  // the result holds the curve
  k.steps = r.steps > 0 ? r.steps : evaluator.default_steps();
  if (k.steps < 1) throw Error("a training run needs a step count >= 1 (the request and the evaluator's budget give none)");
  if (r.stop_at < 0 || r.stop_at >= k.steps)
    throw Error(fmt::format("stop_at must be 0 or fewer than the run's {} steps, got {}", k.steps, r.stop_at));
  k.stop = r.stop_at;
  k.seed = r.seed;
  k.fingerprint = evaluator.fingerprint(r.task);
  return k;
}

RunStore::RunStore(std::filesystem::path path) : path_(std::move(path)) {
  if (path_.empty() || !std::filesystem::exists(path_)) return;
  std::size_t line_no = 0;
  for (const auto& line : read_journal_lines(path_)) {
    ++line_no;
    try {
      const json j = parse_json(line, "entry");
      Entry e{RunKey::from_json(j.at("key")), run_stage_from_name(j.at("stage").get<std::string>()), train::run_result_from_json(j.at("result"))};
      const std::string k = e.key.str();
      if (index_.count(k)) continue;  // the first result of a key is the one used
      index_[k] = entries_.size();
      entries_.push_back(std::move(e));
    } catch (const std::exception& e) {
      throw Error(fmt::format("{} line {}: not a run-store entry ({})", path_.string(), line_no, e.what()));
    }
  }
}

std::optional<train::RunResult> RunStore::find(const RunKey& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = index_.find(key.str());
  if (it == index_.end()) return std::nullopt;
  return entries_[it->second].result;
}

void RunStore::append(const RunKey& key, RunStage stage, const train::RunResult& result) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string k = key.str();
  if (index_.count(k)) return;
  if (!path_.empty())
    append_line_durable(path_, json{{"key", key.to_json()}, {"stage", run_stage_name(stage)}, {"result", train::to_json(result)}}.dump());
  index_[k] = entries_.size();
  entries_.push_back({key, stage, result});
}

std::size_t RunStore::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

std::vector<RunStore::Entry> RunStore::entries() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_;
}

std::vector<train::RunResult> run_with_store(RunStore& store, Evaluator& evaluator, RunStage stage, const std::vector<RunRequest>& requests,
                                             const StoreEvents& events, const std::atomic<bool>* cancel) {
  std::vector<std::optional<train::RunResult>> results(requests.size());
  std::vector<RunKey> keys;
  for (const auto& r : requests) keys.push_back(run_key(evaluator, r));
  // Missing runs, once per key, with the resolved step count.
  std::vector<RunRequest> missing;
  std::vector<RunKey> missing_keys;
  std::map<std::string, std::size_t> first;
  std::size_t found = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (auto r = store.find(keys[i])) {
      results[i] = r;
      ++found;
    } else if (first.emplace(keys[i].str(), missing.size()).second) {
      RunRequest req = requests[i];
      req.steps = keys[i].steps;
      missing.push_back(std::move(req));
      missing_keys.push_back(keys[i]);
    }
  }
  if (events.planned) events.planned(found, missing.size());
  if (!missing.empty()) {
    evaluator.evaluate(
        missing,
        [&](std::size_t i, const train::RunResult& r) {
          store.append(missing_keys[i], stage, r);
          if (events.trained) events.trained(r);
        },
        cancel);
    for (std::size_t i = 0; i < requests.size(); ++i)
      if (!results[i]) results[i] = store.find(keys[i]);
  }
  std::vector<train::RunResult> out;
  out.reserve(results.size());
  for (auto& r : results) {
    if (!r) throw Interrupted();  // cancelled before it finished
    out.push_back(std::move(*r));
  }
  return out;
}

StoreStream::StoreStream(RunStore& store, Evaluator& evaluator, RunStage stage) : store_(store), evaluator_(evaluator), stage_(stage) {}

std::uint64_t StoreStream::submit(const RunRequest& request) {
  const std::uint64_t ticket = next_ticket_++;
  const RunKey key = run_key(evaluator_, request);
  if (auto r = store_.find(key)) {
    ready_.push_back({ticket, *r});
    return ticket;
  }
  if (auto it = evaluator_ticket_.find(key.str()); it != evaluator_ticket_.end()) {
    waiting_.at(it->second).tickets.push_back(ticket);
    return ticket;
  }
  RunRequest req = request;
  req.steps = key.steps;
  const std::uint64_t t = evaluator_.submit(req);
  evaluator_ticket_[key.str()] = t;
  waiting_[t] = Waiting{key, {ticket}};
  return ticket;
}

std::optional<Completion> StoreStream::next_done(const std::atomic<bool>* cancel) {
  const bool cancelled = cancel != nullptr && cancel->load();
  if (cancelled) ready_.clear();
  if (ready_.empty()) {
    if (waiting_.empty()) {
      if (cancelled) throw Interrupted();
      return std::nullopt;
    }
    auto done = evaluator_.next_done(cancel);
    if (!done) {  // nothing more comes back
      waiting_.clear();
      evaluator_ticket_.clear();
      if (cancel != nullptr && cancel->load()) throw Interrupted();
      throw std::logic_error("StoreStream: the evaluator returned nothing for runs it was given");
    }
    const auto it = waiting_.find(done->ticket);
    if (it == waiting_.end()) throw std::logic_error("StoreStream: the evaluator returned a ticket it was not given");
    store_.append(it->second.key, stage_, done->result);
    if (on_trained) on_trained(done->result);
    for (std::uint64_t t : it->second.tickets) ready_.push_back({t, done->result});
    evaluator_ticket_.erase(it->second.key.str());
    waiting_.erase(it);
  }
  Completion c = std::move(ready_.front());
  ready_.pop_front();
  return c;
}

}  // namespace evoopt::eval
