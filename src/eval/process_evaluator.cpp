#include "evoopt/eval/process_evaluator.hpp"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
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

#include "evoopt/common/error.hpp"
#include "evoopt/common/json_io.hpp"

extern char** environ;

namespace evoopt::eval {
using nlohmann::json;

namespace {
double own_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

void write_line(std::ostream& out, const json& j) { out << j.dump() << '\n' << std::flush; }

// Threads libraries may start on their own: one per worker, the parallelism is the pool's.
const char* const kThreadVariables[] = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"};

// How long a starting worker may take to load its tasks and answer.
constexpr int kStartTimeoutMs = 600 * 1000;
}  // namespace

int run_worker(std::istream& in, std::ostream& out) {
  std::string line;
  if (!std::getline(in, line)) return 0;
  std::map<std::string, task::Task> tasks;
  train::Budget budget;
  try {
    const json setup = parse_json(line, "worker setup").at("setup");
    const task::TaskOptions options = task::task_options_from_json(setup.at("task_options"));
    budget = train::budget_from_json(setup.at("budget"));
    json fingerprints = json::object();
    for (const auto& name : setup.at("tasks")) {
      const std::string n = name.get<std::string>();
      tasks.emplace(n, task::load_task(n, options));
      fingerprints[n] = fingerprint_of(tasks.at(n), budget);
    }
    write_line(out, {{"ready", {{"fingerprints", fingerprints}, {"pid", static_cast<long>(getpid())}}}});
  } catch (const std::exception& e) {
    write_line(out, {{"error", e.what()}});
    return 1;
  }
  at::set_num_threads(1);
  while (std::getline(in, line)) {
    long id = -1;
    try {
      const json j = parse_json(line, "worker request");
      id = j.at("id").get<long>();
      const RunRequest request = run_request_from_json(j.at("request"));
      const auto it = tasks.find(request.task);
      if (it == tasks.end()) throw Error("task '" + request.task + "' is not loaded in this worker");
      const train::RunResult r = run_request(it->second, budget, request, nullptr);
      write_line(out, {{"id", id}, {"result", train::to_json(r)}, {"cpu_seconds", own_cpu_seconds()}});
    } catch (const std::exception& e) {
      write_line(out, {{"id", id}, {"error", e.what()}});
    }
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

ProcessEvaluator::ProcessEvaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget, int workers,
                                   std::filesystem::path program)
    : tasks_(std::move(tasks)), task_options_(std::move(task_options)), budget_(budget), workers_(workers), program_(std::move(program)) {
  if (workers_ < 1) throw Error("workers must be >= 1, got " + std::to_string(workers_));
  if (tasks_.empty()) throw Error("no tasks to evaluate on");
  budget_.validate();
  if (budget_.steps < 1) throw Error("the evaluator's budget needs a step count >= 1, got " + std::to_string(budget_.steps));
  for (const auto& [name, t] : tasks_) fingerprints_[name] = fingerprint_of(t, budget_);
  start();
}

ProcessEvaluator::~ProcessEvaluator() { stop(); }

std::string ProcessEvaluator::describe() const { return std::to_string(workers_) + " worker process(es), 1 intra-op thread each"; }

std::string ProcessEvaluator::fingerprint(const std::string& task) const {
  auto it = fingerprints_.find(task);
  if (it == fingerprints_.end()) throw Error("task '" + task + "' is not loaded in this evaluator");
  return it->second;
}

double ProcessEvaluator::live_worker_cpu_seconds() const {
  double s = 0;
  for (const auto& w : pool_) s += w.cpu_seconds;
  return s;
}

std::vector<pid_t> ProcessEvaluator::worker_pids() const {
  std::vector<pid_t> pids;
  for (const auto& w : pool_) pids.push_back(w.pid);
  return pids;
}

void ProcessEvaluator::spawn(Worker& w) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(std::string("cannot create a socket for a worker process: ") + std::strerror(errno));
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    bool replaced = false;
    for (const char* v : kThreadVariables) replaced = replaced || std::strncmp(*e, v, std::strlen(v)) == 0 && (*e)[std::strlen(v)] == '=';
    if (!replaced) env.emplace_back(*e);
  }
  for (const char* v : kThreadVariables) env.push_back(std::string(v) + "=1");
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
  // workers itself (and a worker whose parent is gone sees end of input and exits).
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
  w = Worker{};
  w.pid = pid;
  w.fd = sv[0];
}

namespace {
bool send_line(int fd, const std::string& line) {
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = send(fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}
}  // namespace

// Thrown by read_line at a worker's end of output.
struct WorkerGone {};

// A full line from `w`, waiting up to timeout_ms (< 0: forever); empty on timeout.
std::string ProcessEvaluator::read_line(Worker& w, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (const auto nl = w.buffer.find('\n'); nl != std::string::npos) {
      std::string line = w.buffer.substr(0, nl);
      w.buffer.erase(0, nl + 1);
      return line;
    }
    int wait = -1;
    if (timeout_ms >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      wait = static_cast<int>(std::max<long long>(0, left));
    }
    pollfd p{w.fd, POLLIN, 0};
    const int r = poll(&p, 1, wait);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return "";
    char buf[65536];
    const ssize_t n = read(w.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw WorkerGone{};
    w.buffer.append(buf, static_cast<std::size_t>(n));
  }
}

std::string ProcessEvaluator::describe_exit(Worker& w) {
  if (w.pid <= 0) return "";
  int status = 0;
  // A worker that closed its end exits at once; one that hangs is killed.
  for (int i = 0; i < 50; ++i) {
    const pid_t r = waitpid(w.pid, &status, WNOHANG);
    if (r == w.pid) {
      w.pid = -1;
      if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
      if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
      return "ended";
    }
    if (r < 0) return "";
    usleep(20000);
  }
  kill(w.pid, SIGKILL);
  waitpid(w.pid, &status, 0);
  w.pid = -1;
  return "stopped answering";
}

void ProcessEvaluator::fail(Worker& w, const std::string& what, const RunRequest* request) {
  const std::size_t index = static_cast<std::size_t>(&w - pool_.data());
  const pid_t pid = w.pid;
  if (w.fd >= 0) {
    close(w.fd);
    w.fd = -1;
  }
  const std::string how = describe_exit(w);
  std::string msg = fmt::format("worker {} (pid {}) {}{}", index + 1, pid, what, how.empty() ? "" : " (" + how + ")");
  if (request != nullptr)
    msg += fmt::format(" while training genome {} on {} (seed {}, split {}, {} steps)", request->genome.hash_hex(), request->task, request->seed,
                       data::split_name(request->split), request->steps > 0 ? request->steps : budget_.steps);
  stop();
  throw Error(msg);
}

void ProcessEvaluator::start() {
  pool_.assign(static_cast<std::size_t>(workers_), Worker{});
  try {
    for (auto& w : pool_) spawn(w);
  } catch (...) {
    stop();
    throw;
  }
  json names = json::array();
  for (const auto& [name, t] : tasks_) names.push_back(name);
  const std::string setup = json{{"setup", {{"tasks", names}, {"task_options", task::to_json(task_options_)}, {"budget", train::to_json(budget_)}}}}.dump() + "\n";
  for (auto& w : pool_)
    if (!send_line(w.fd, setup)) fail(w, "ended before it was ready (is " + program_.string() + " an evoopt binary?)", nullptr);
  for (auto& w : pool_) {
    std::string line;
    try {
      line = read_line(w, kStartTimeoutMs);
    } catch (const WorkerGone&) {
      fail(w, "ended before it was ready (is " + program_.string() + " an evoopt binary?)", nullptr);
    }
    if (line.empty()) fail(w, "did not get ready within " + std::to_string(kStartTimeoutMs / 1000) + " s", nullptr);
    json j;
    try {
      j = json::parse(line);
    } catch (const std::exception&) {
      fail(w, "did not answer as an evoopt worker (" + program_.string() + " printed: " + line.substr(0, 80) + ")", nullptr);
    }
    if (j.contains("error")) fail(w, "could not load its tasks: " + j.at("error").get<std::string>(), nullptr);
    if (!j.contains("ready") || !j.at("ready").contains("fingerprints"))
      fail(w, "did not answer as an evoopt worker (" + program_.string() + " printed: " + line.substr(0, 80) + ")", nullptr);
    const json& fp = j.at("ready").at("fingerprints");
    for (const auto& [name, f] : fingerprints_)
      if (!fp.contains(name) || fp.at(name) != f)
        fail(w,
             fmt::format("computes another fingerprint for task {} ({} there, {} here): its binary, libraries or data differ from this "
                         "process's",
                         name, fp.contains(name) ? fp.at(name).dump() : "none", f),
             nullptr);
  }
}

void ProcessEvaluator::stop() {
  for (auto& w : pool_) {
    if (w.fd >= 0) close(w.fd);  // an idle worker sees end of input and exits
    w.fd = -1;
    if (w.pid > 0 && w.request >= 0) kill(w.pid, SIGKILL);  // a running one is not waited for
  }
  for (auto& w : pool_) {
    if (w.pid > 0) {
      int status = 0;
      waitpid(w.pid, &status, 0);
    }
  }
  pool_.clear();
}

std::vector<std::optional<train::RunResult>> ProcessEvaluator::evaluate(const std::vector<RunRequest>& requests, const RunDone& on_done,
                                                                        const std::atomic<bool>* cancel) {
  for (const auto& r : requests) fingerprint(r.task);  // fail before any work
  std::vector<std::optional<train::RunResult>> results(requests.size());
  if (requests.empty()) return results;
  if (pool_.empty()) start();
  auto cancelled = [&] { return cancel != nullptr && cancel->load(); };
  std::size_t next = 0, running = 0;
  auto dispatch = [&](Worker& w) {
    if (next >= requests.size() || cancelled()) return;
    const json msg = {{"id", static_cast<long>(next)}, {"request", to_json(requests[next])}};
    w.request = static_cast<long>(next);
    ++next;
    ++running;
    if (!send_line(w.fd, msg.dump() + "\n")) fail(w, "ended", &requests[static_cast<std::size_t>(w.request)]);
  };
  for (auto& w : pool_) dispatch(w);
  while (running > 0) {
    if (cancelled()) {
      stop();
      return results;
    }
    std::vector<pollfd> fds;
    std::vector<Worker*> busy;
    for (auto& w : pool_)
      if (w.request >= 0) {
        fds.push_back({w.fd, POLLIN, 0});
        busy.push_back(&w);
      }
    const int r = poll(fds.data(), fds.size(), 200);
    if (r < 0 && errno != EINTR) throw Error(std::string("waiting for worker processes failed: ") + std::strerror(errno));
    if (r <= 0) continue;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      Worker& w = *busy[k];
      const RunRequest& req = requests[static_cast<std::size_t>(w.request)];
      std::string line;
      try {
        line = read_line(w, 0);
      } catch (const WorkerGone&) {
        fail(w, "died", &req);
      }
      if (line.empty()) continue;  // a partial line; the rest follows
      json j;
      try {
        j = json::parse(line);
      } catch (const std::exception&) {
        fail(w, "sent a malformed answer (" + line.substr(0, 80) + ")", &req);
      }
      if (j.contains("error")) fail(w, "failed: " + j.at("error").get<std::string>(), &req);
      if (j.value("id", -1L) != w.request) fail(w, "answered another request than the one it was given", &req);
      const auto index = static_cast<std::size_t>(w.request);
      results[index] = train::run_result_from_json(j.at("result"));
      w.cpu_seconds = j.value("cpu_seconds", w.cpu_seconds);
      w.request = -1;
      --running;
      if (on_done) on_done(index, *results[index]);
      dispatch(w);
    }
  }
  return results;
}

}  // namespace evoopt::eval
