#include "evoopt/eval/mpi.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "evoopt/common/error.hpp"
#include "evoopt/eval/process_evaluator.hpp"

#ifdef EVOOPT_HAVE_MPI
#include <mpi.h>
#endif

namespace evoopt::eval::mpi {

namespace {
int env_int(std::initializer_list<const char*> names, int fallback) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v != nullptr && *v != '\0') return std::atoi(v);
  return fallback;
}

bool g_started = false;
int g_rank = 0, g_size = 1;
}  // namespace

int launched_size() { return env_int({"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"}, 1); }
int launched_rank() { return env_int({"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}, 0); }
bool active() { return g_started && g_size > 1; }
int rank() { return g_rank; }
int size() { return g_size; }

#ifndef EVOOPT_HAVE_MPI

bool built_with_mpi() { return false; }
void start(int*, char***) {
  throw Error("this evoopt was built without MPI, but it was launched as rank " + std::to_string(launched_rank()) + " of " +
              std::to_string(launched_size()) + " (install libopenmpi-dev and rebuild: scripts/setup.sh)");
}
int serve() { return 1; }
void finish() {}
std::unique_ptr<Evaluator> make_mpi_evaluator(std::map<std::string, task::Task>, task::TaskOptions, train::Budget) {
  throw Error("this evoopt was built without MPI");
}

#else

namespace {
constexpr int kTagWork = 1;    // rank 0 → rank: setup or request
constexpr int kTagAnswer = 2;  // rank → rank 0
constexpr int kTagStop = 3;    // rank 0 → rank: end

// Waits for a message without spinning a core (a blocking MPI_Recv busy-polls in Open MPI,
// which would take the CPU a training run needs); empty when `timeout_ms` passes (< 0: never).
bool wait_message(int source, int tag, MPI_Status& status, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int flag = 0;
    MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, &status);
    if (flag) return true;
    if (timeout_ms >= 0 && std::chrono::steady_clock::now() >= deadline) return false;
    usleep(1000);
  }
}

std::string receive_text(const MPI_Status& status) {
  int n = 0;
  MPI_Get_count(&status, MPI_CHAR, &n);
  std::string text(static_cast<std::size_t>(n), '\0');
  MPI_Recv(text.data(), n, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return text;
}

void send_text(const std::string& text, int dest, int tag) {
  MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD);
}

// Requests still running on a rank when rank 0 stopped waiting (cancel or failure); their
// answers are drained before the rank is used again or told to stop.
std::vector<int> g_outstanding;

void drain_outstanding() {
  for (int r = 1; r < g_size; ++r)
    while (g_outstanding[static_cast<std::size_t>(r)] > 0) {
      MPI_Status st;
      wait_message(r, kTagAnswer, st, -1);
      receive_text(st);
      --g_outstanding[static_cast<std::size_t>(r)];
    }
}

class MpiEvaluator : public WorkerPoolEvaluator {
 public:
  MpiEvaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget)
      : WorkerPoolEvaluator(std::move(tasks), std::move(task_options), budget) {
    connect();
  }
  ~MpiEvaluator() override { abandon(); }
  int workers() const override { return g_size - 1; }
  std::string describe() const override { return std::to_string(g_size - 1) + " MPI worker rank(s), 1 intra-op thread each"; }

 protected:
  std::size_t slots() const override { return static_cast<std::size_t>(g_size - 1); }
  bool connected() const override { return connected_; }
  void connect() override {
    drain_outstanding();
    connected_ = true;
    set_up("MPI rank");
  }
  bool send(std::size_t slot, const std::string& text) override {
    send_text(text, static_cast<int>(slot) + 1, kTagWork);
    return true;
  }
  std::optional<Message> receive(int timeout_ms) override {
    MPI_Status st;
    if (!wait_message(MPI_ANY_SOURCE, kTagAnswer, st, timeout_ms)) return std::nullopt;
    Message m;
    m.slot = static_cast<std::size_t>(st.MPI_SOURCE - 1);
    m.text = receive_text(st);
    return m;
  }
  // Runs still going on ranks are waited for (and dropped) before the next use or the end.
  void abandon() override {
    for (std::size_t slot = 0; slot < running_.size(); ++slot)
      if (running_[slot] >= 0) {
        ++g_outstanding[slot + 1];
        running_[slot] = -1;
      }
    drain_outstanding();
  }
  bool kill_on_cancel() const override { return false; }
  std::string slot_name(std::size_t slot) const override { return "MPI rank " + std::to_string(slot + 1); }

 private:
  bool connected_ = false;
};
}  // namespace

bool built_with_mpi() { return true; }

void start(int* argc, char*** argv) {
  if (g_started) return;
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_outstanding.assign(static_cast<std::size_t>(g_size), 0);
  g_started = true;
}

int serve() {
  WorkerSession session;
  for (;;) {
    MPI_Status st;
    wait_message(0, MPI_ANY_TAG, st, -1);
    const std::string text = receive_text(st);
    if (st.MPI_TAG == kTagStop) return 0;
    bool fatal = false;
    send_text(session.handle(text, fatal), 0, kTagAnswer);
  }
}

void finish() {
  if (!g_started) return;
  if (g_rank == 0) {
    drain_outstanding();
    for (int r = 1; r < g_size; ++r) send_text("", r, kTagStop);
  }
  MPI_Finalize();
  g_started = false;
}

std::unique_ptr<Evaluator> make_mpi_evaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget) {
  if (!active() || g_rank != 0) throw Error("the MPI evaluator needs rank 0 of an MPI job with at least 2 ranks");
  return std::make_unique<MpiEvaluator>(std::move(tasks), std::move(task_options), budget);
}

#endif

}  // namespace evoopt::eval::mpi
