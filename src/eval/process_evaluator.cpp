#include "evoopt/eval/process_evaluator.hpp"

#include <poll.h>
#include <signal.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <istream>
#include <ostream>

#include <fmt/format.h>
#include <torch/torch.h>

#include "evoopt/common/cpu_time.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/json_io.hpp"

extern char** environ;

namespace evoopt::eval {
using nlohmann::json;

namespace {
double own_cpu_seconds() { return process_cpu_seconds(); }

// Threads libraries may start on their own: one per worker, the parallelism is the pool's.
const char* const kThreadVariables[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"};

// How long a starting worker may take to load its tasks and answer.
constexpr int kStartTimeoutMs = 600 * 1000;

// The environment variable through which a worker learns its parent's pid.
constexpr const char* kParentPidVariable = "EVOOPT_WORKER_PARENT";

// A worker dies with its parent: the kernel sends SIGKILL when the parent exits (however it
// ends, SIGKILL included), so no run goes on for nobody and competes with a resume for cores.
// A parent that died before this call is caught by comparing getppid() with the pid it
// passed down (the worker has then been re-parented).
void die_with_parent() {
  const char* expected = std::getenv(kParentPidVariable);
  if (expected == nullptr || *expected == '\0') return;  // started by hand: no parent to follow
#ifdef __linux__
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
  if (std::to_string(::getppid()) != expected) std::_Exit(1);
}
}  // namespace

std::string WorkerSession::handle(const std::string& message, bool& fatal) {
  fatal = false;
  json j;
  try {
    j = parse_json(message, "worker message");
  } catch (const std::exception& e) {
    return json{{"id", -1}, {"error", e.what()}}.dump();
  }
  if (j.contains("setup")) {
    try {
      const json& setup = j.at("setup");
      const task::TaskOptions options = task::task_options_from_json(setup.at("task_options"));
      budget_ = train::budget_from_json(setup.at("budget"));
      tasks_.clear();
      json fingerprints = json::object();
      for (const auto& name : setup.at("tasks")) {
        const std::string n = name.get<std::string>();
        tasks_.emplace(n, task::load_task(n, options));
        fingerprints[n] = fingerprint_of(tasks_.at(n), budget_);
      }
      at::set_num_threads(1);
      return json{{"ready", {{"fingerprints", fingerprints}, {"pid", static_cast<long>(getpid())}}}}.dump();
    } catch (const std::exception& e) {
      tasks_.clear();
      fatal = true;
      return json{{"error", e.what()}}.dump();
    }
  }
  long id = -1;
  try {
    id = j.at("id").get<long>();
    if (tasks_.empty()) throw Error("request before setup");
    const RunRequest request = run_request_from_json(j.at("request"));
    const auto it = tasks_.find(request.task);
    if (it == tasks_.end()) throw Error("task '" + request.task + "' is not loaded in this worker");
    const train::RunResult r = run_request(it->second, budget_, request, nullptr);
    return json{{"id", id}, {"result", train::to_json(r)}, {"cpu_seconds", own_cpu_seconds()}}.dump();
  } catch (const std::exception& e) {
    return json{{"id", id}, {"error", e.what()}}.dump();
  }
}

int run_worker(std::istream& in, std::ostream& out) {
  die_with_parent();
  WorkerSession session;
  std::string line;
  while (std::getline(in, line)) {
    bool fatal = false;
    out << session.handle(line, fatal) << '\n' << std::flush;
    if (fatal) return 1;
  }
  return 0;
}

std::filesystem::path default_worker_program() {
  if (const char* env = std::getenv("EVOOPT_WORKER_PROGRAM"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw Error("cannot find this program's executable (/proc/self/exe) to start workers; set EVOOPT_WORKER_PROGRAM");
  return self;
}

WorkerPoolEvaluator::WorkerPoolEvaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget)
    : tasks_(std::move(tasks)), task_options_(std::move(task_options)), budget_(budget) {
  if (tasks_.empty()) throw Error("no tasks to evaluate on");
  budget_.validate();
  if (budget_.steps < 1) throw Error("the evaluator's budget needs a step count >= 1, got " + std::to_string(budget_.steps));
  for (const auto& [name, t] : tasks_) fingerprints_[name] = fingerprint_of(t, budget_);
}

std::string WorkerPoolEvaluator::fingerprint(const std::string& task) const {
  auto it = fingerprints_.find(task);
  if (it == fingerprints_.end()) throw Error("task '" + task + "' is not loaded in this evaluator");
  return it->second;
}

const task::Task* WorkerPoolEvaluator::loaded_task(const std::string& name) const {
  const auto it = tasks_.find(name);
  return it == tasks_.end() ? nullptr : &it->second;
}

double WorkerPoolEvaluator::live_worker_cpu_seconds() const {
  double s = 0;
  for (double c : cpu_) s += c;
  return s;
}

void WorkerPoolEvaluator::fail(std::size_t slot, const std::string& what, const RunRequest* request) {
  const std::string name = slot_name(slot);
  const std::string how = exit_detail(slot);
  std::string msg = name + " " + what + (how.empty() ? "" : " (" + how + ")");
  if (request != nullptr)
    msg += fmt::format(" while training genome {} on {} (seed {}, split {}, {} steps)", request->genome.hash_hex(), request->task, request->seed,
                       data::split_name(request->split), request->steps > 0 ? request->steps : budget_.steps);
  if (slot < running_.size()) running_[slot] = -1;  // it runs nothing more: abandon() must not wait for it
  abandon();
  queued_.clear();
  in_flight_.clear();
  throw Error(msg);
}

void WorkerPoolEvaluator::set_up(const std::string& what) {
  running_.assign(slots(), -1);
  cpu_.assign(slots(), 0.0);
  json names = json::array();
  for (const auto& [name, t] : tasks_) names.push_back(name);
  const std::string setup =
      json{{"setup", {{"tasks", names}, {"task_options", task::to_json(task_options_)}, {"budget", train::to_json(budget_)}}}}.dump();
  const std::string not_a_worker = "ended before it was ready (is " + what + " an evoopt binary?)";
  for (std::size_t slot = 0; slot < slots(); ++slot)
    if (!send(slot, setup)) fail(slot, not_a_worker, nullptr);
  std::vector<bool> ready(slots(), false);
  std::size_t left = slots();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (left > 0) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (ms <= 0) {
      std::size_t slot = 0;
      while (ready[slot]) ++slot;
      fail(slot, "did not get ready within " + std::to_string(kStartTimeoutMs / 1000) + " s", nullptr);
    }
    const auto m = receive(static_cast<int>(std::min<long long>(ms, 1000)));
    if (!m) continue;
    if (m->gone) fail(m->slot, not_a_worker, nullptr);
    json j;
    try {
      j = parse_json(m->text, "worker answer");
    } catch (const std::exception&) {
      fail(m->slot, "did not answer as an evoopt worker (" + what + " printed: " + m->text.substr(0, 80) + ")", nullptr);
    }
    if (j.contains("error")) fail(m->slot, "could not load its tasks: " + j.at("error").get<std::string>(), nullptr);
    if (!j.contains("ready") || !j.at("ready").contains("fingerprints"))
      fail(m->slot, "did not answer as an evoopt worker (" + what + " printed: " + m->text.substr(0, 80) + ")", nullptr);
    const json& fp = j.at("ready").at("fingerprints");
    for (const auto& [name, f] : fingerprints_)
      if (!fp.contains(name) || fp.at(name) != f)
        fail(m->slot,
             fmt::format("computes another fingerprint for task {} ({} there, {} here): its binary, libraries or data differ from this "
                         "process's",
                         name, fp.contains(name) ? fp.at(name).dump() : "none", f),
             nullptr);
    if (!ready[m->slot]) --left;
    ready[m->slot] = true;
  }
}

std::uint64_t WorkerPoolEvaluator::submit(const RunRequest& request) {
  fingerprint(request.task);  // an unknown task fails here, before any work
  if (!connected()) connect();
  queued_.emplace_back(next_ticket_, request);
  dispatch_idle();
  return next_ticket_++;
}

void WorkerPoolEvaluator::dispatch_idle() {
  for (std::size_t slot = 0; slot < slots() && !queued_.empty(); ++slot) {
    if (running_[slot] >= 0) continue;
    auto [ticket, request] = std::move(queued_.front());
    queued_.pop_front();
    const json msg = {{"id", static_cast<long>(ticket)}, {"request", to_json(request)}};
    running_[slot] = static_cast<long>(ticket);
    const RunRequest& r = in_flight_.emplace(ticket, std::move(request)).first->second;
    if (!send(slot, msg.dump())) fail(slot, "has gone", &r);
  }
}

std::optional<Completion> WorkerPoolEvaluator::next_done(const std::atomic<bool>* cancel) {
  auto cancelled = [&] { return cancel != nullptr && cancel->load(); };
  for (;;) {
    if (cancelled()) {
      queued_.clear();  // never started
      if (kill_on_cancel()) {
        abandon();
        in_flight_.clear();
        return std::nullopt;
      }
    }
    if (in_flight_.empty()) {
      if (queued_.empty()) return std::nullopt;
      dispatch_idle();  // after a failed connect, say
    }
    const auto m = receive(200);
    if (!m) continue;
    const std::size_t slot = m->slot;
    const RunRequest* req = running_[slot] >= 0 ? &in_flight_.at(static_cast<std::uint64_t>(running_[slot])) : nullptr;
    if (m->gone) fail(slot, "died", req);
    if (req == nullptr) fail(slot, "sent an answer it was not asked for", nullptr);
    json j;
    try {
      j = parse_json(m->text, "worker answer");
    } catch (const std::exception&) {
      fail(slot, "sent a malformed answer (" + m->text.substr(0, 80) + ")", req);
    }
    if (j.contains("error")) fail(slot, "failed: " + j.at("error").get<std::string>(), req);
    if (j.value("id", -1L) != running_[slot]) fail(slot, "answered another request than the one it was given", req);
    Completion done{static_cast<std::uint64_t>(running_[slot]), train::run_result_from_json(j.at("result"))};
    cpu_[slot] = j.value("cpu_seconds", cpu_[slot]);
    in_flight_.erase(done.ticket);
    running_[slot] = -1;
    if (!cancelled()) dispatch_idle();
    return done;
  }
}

ProcessEvaluator::ProcessEvaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget, int workers,
                                   std::filesystem::path program)
    : WorkerPoolEvaluator(std::move(tasks), std::move(task_options), budget), workers_(workers), program_(std::move(program)) {
  if (workers_ < 1) throw Error("workers must be >= 1, got " + std::to_string(workers_));
  connect();
}

ProcessEvaluator::~ProcessEvaluator() { abandon(); }

std::string ProcessEvaluator::describe() const { return std::to_string(workers_) + " worker process(es), 1 intra-op thread each"; }

std::vector<pid_t> ProcessEvaluator::worker_pids() const {
  std::vector<pid_t> pids;
  for (const auto& p : procs_) pids.push_back(p.pid);
  return pids;
}

std::string ProcessEvaluator::slot_name(std::size_t slot) const {
  return fmt::format("worker {} (pid {})", slot + 1, slot < procs_.size() ? procs_[slot].pid : -1);
}

void ProcessEvaluator::connect() {
  procs_.assign(slots(), Proc{});
  try {
    for (auto& p : procs_) spawn(p);
  } catch (...) {
    abandon();
    throw;
  }
  set_up(program_.string());
}

void ProcessEvaluator::spawn(Proc& proc) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(std::string("cannot create a socket for a worker process: ") + std::strerror(errno));
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    // A worker is not an MPI rank, even when its parent is one.
    if (std::strncmp(*e, "OMPI_", 5) == 0 || std::strncmp(*e, "PMIX_", 5) == 0 || std::strncmp(*e, "PMI_", 4) == 0) continue;
    if (std::strncmp(*e, kParentPidVariable, std::strlen(kParentPidVariable)) == 0 && (*e)[std::strlen(kParentPidVariable)] == '=') continue;
    bool replaced = false;
    for (const char* v : kThreadVariables) replaced = replaced || (std::strncmp(*e, v, std::strlen(v)) == 0 && (*e)[std::strlen(v)] == '=');
    if (!replaced) env.emplace_back(*e);
  }
  for (const char* v : kThreadVariables) env.push_back(std::string(v) + "=1");
  env.push_back(std::string(kParentPidVariable) + "=" + std::to_string(::getpid()));
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string prog = program_.string(), arg = "worker";
  char* argv[] = {prog.data(), arg.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sv[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, sv[1], STDOUT_FILENO);
  posix_spawnattr_init(&attr);
  // Its own process group: Ctrl-C in a terminal reaches the parent only, which stops the
  // workers itself (and a worker whose parent is gone is killed by the kernel: die_with_parent).
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, prog.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(sv[1]);
  if (rc != 0) {
    close(sv[0]);
    throw Error("cannot start worker program " + prog + ": " + std::strerror(rc));
  }
  proc.pid = pid;
  proc.fd = sv[0];
}

bool ProcessEvaluator::send(std::size_t slot, const std::string& text) {
  const std::string line = text + "\n";
  const int fd = procs_.at(slot).fd;
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::optional<WorkerPoolEvaluator::Message> ProcessEvaluator::receive(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    for (std::size_t slot = 0; slot < procs_.size(); ++slot) {
      auto& b = procs_[slot].buffer;
      if (const auto nl = b.find('\n'); nl != std::string::npos) {
        Message m{slot, b.substr(0, nl), false};
        b.erase(0, nl + 1);
        return m;
      }
    }
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t slot = 0; slot < procs_.size(); ++slot)
      if (procs_[slot].fd >= 0) {
        fds.push_back({procs_[slot].fd, POLLIN, 0});
        which.push_back(slot);
      }
    if (fds.empty()) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    const int r = poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(0, left)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error(std::string("waiting for worker processes failed: ") + std::strerror(errno));
    if (r == 0) return std::nullopt;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      char buf[65536];
      const ssize_t n = read(fds[k].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Message{which[k], "", true};
      procs_[which[k]].buffer.append(buf, static_cast<std::size_t>(n));
    }
  }
}

std::string ProcessEvaluator::exit_detail(std::size_t slot) {
  if (slot >= procs_.size() || procs_[slot].pid <= 0) return "";
  Proc& p = procs_[slot];
  if (p.fd >= 0) {
    close(p.fd);  // a worker that is still running sees end of input
    p.fd = -1;
  }
  int status = 0;
  for (int i = 0; i < 50; ++i) {
    const pid_t r = waitpid(p.pid, &status, WNOHANG);
    if (r == p.pid) {
      p.pid = -1;
      if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
      if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
      return "ended";
    }
    if (r < 0) return "";
    usleep(20000);
  }
  kill(p.pid, SIGKILL);
  waitpid(p.pid, &status, 0);
  p.pid = -1;
  return "stopped answering";
}

void ProcessEvaluator::abandon() {
  for (std::size_t slot = 0; slot < procs_.size(); ++slot) {
    Proc& p = procs_[slot];
    if (p.fd >= 0) close(p.fd);  // an idle worker sees end of input and exits
    p.fd = -1;
    if (p.pid > 0 && slot < running_.size() && running_[slot] >= 0) kill(p.pid, SIGKILL);  // a running one is not waited for
  }
  for (auto& p : procs_)
    if (p.pid > 0) {
      int status = 0;
      waitpid(p.pid, &status, 0);
    }
  procs_.clear();
  running_.assign(running_.size(), -1);
  cpu_.assign(cpu_.size(), 0.0);  // reaped: the operating system counts them now
}

}  // namespace evoopt::eval
