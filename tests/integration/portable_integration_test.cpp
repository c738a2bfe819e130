// Portable mode (`--portable`): with the kernels pinned to AVX2, a small search gives the same
// history, lineage and winner whatever kernel choice the environment asks for (OpenBLAS's
// Sandybridge kernel and oneDNN capped at AVX, or what this CPU picks; the pins replace
// both); unpinned, the same two choices give different histories, and on a CPU with AVX-512
// the pinned history differs from the unpinned one (the pins take effect). Two physical CPUs
// are not tested. A run made in portable mode names its kernels in config.json and is resumed
// only in portable mode, and the other way round, each with a one-line error saying how.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "evoopt/common/files.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

namespace {

const std::string kSearch =
    " --tasks mnist cifar10 --population 4 --generations 2 --steps 30 --train-subset 1000 --val-size 300 --final-test-seeds 1 "
    "--no-compare --no-break-even --workers 2 --seed 3";
// Another CPU's choice, simulated: kernels every x86-64 CPU with AVX2 also runs.
const std::string kOtherKernels = "OPENBLAS_CORETYPE=Sandybridge DNNL_MAX_CPU_ISA=AVX";

// history.csv without its last column (the generation's wall seconds).
std::string history(const fs::path& run) {
  std::istringstream in(read_text_file(run / "history.csv"));
  std::string out;
  for (std::string line; std::getline(in, line);) out += line.substr(0, line.rfind(',')) + "\n";
  return out;
}

fs::path search(const test::TempDir& tmp, const std::string& name, const std::string& env, const std::string& flags) {
  const fs::path dir = tmp / name;
  const auto r = test::run_cli(flags + " evolve --out " + dir.string() + kSearch + " --data-dir " + test::data_dir().string(), env);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  return dir;
}

}  // namespace

TEST(Portable, PinnedKernelsGiveTheSameSearchUnderAnotherKernelChoice) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EVOOPT_REQUIRE_DATASET("cifar10");
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) GTEST_SKIP() << "portable mode needs AVX2 and FMA";
#else
  GTEST_SKIP() << "portable mode pins x86-64 kernels";
#endif
  test::TempDir tmp;
  const fs::path here = search(tmp, "here", "", "--portable");
  const fs::path other = search(tmp, "other", kOtherKernels, "--portable");
  EXPECT_EQ(history(here), history(other));
  EXPECT_EQ(read_text_file(here / "lineage.json"), read_text_file(other / "lineage.json"));
  EXPECT_EQ(read_text_file(here / "best_genome.json"), read_text_file(other / "best_genome.json"));
  EXPECT_NE(read_text_file(here / "config.json")
                .find("\"kernels\": \"OPENBLAS_CORETYPE=Haswell DNNL_MAX_CPU_ISA=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2\""),
            std::string::npos);

  // Unpinned, the two kernel choices round differently: the histories differ (what portable
  // mode is for), and neither run names kernels.
  const fs::path plain_here = search(tmp, "plain_here", "", "");
  const fs::path plain_other = search(tmp, "plain_other", kOtherKernels, "");
  EXPECT_NE(history(plain_here), history(plain_other));
  EXPECT_EQ(read_text_file(plain_here / "config.json").find("\"kernels\""), std::string::npos);
#if defined(__x86_64__)
  // On a CPU with AVX-512 oneDNN picks kernels beyond AVX2 unpinned: pinning changes the
  // history there, so the pins took effect (the pinned pair above could not show that alone).
  if (__builtin_cpu_supports("avx512f")) EXPECT_NE(history(here), history(plain_here));
#endif

  // Resume follows the run's mode, and says how when asked the other way.
  fs::remove(here / "summary.json");
  const auto unpinned = test::run_cli("resume " + here.string());
  EXPECT_EQ(unpinned.exit_code, 1);
  EXPECT_NE(unpinned.err.find("the run was made in portable mode"), std::string::npos) << unpinned.err;
  EXPECT_NE(unpinned.err.find("resume it with: evoopt --portable resume " + here.string()), std::string::npos) << unpinned.err;
  EXPECT_EQ(test::count_lines(unpinned.err), 1) << unpinned.err;
  EXPECT_EQ(test::run_cli("--portable resume " + here.string()).exit_code, 0);
  fs::remove(plain_here / "summary.json");
  const auto pinned = test::run_cli("resume " + plain_here.string(), "EVOOPT_PORTABLE=1");
  EXPECT_EQ(pinned.exit_code, 1);
  EXPECT_NE(pinned.err.find("the run was made without portable mode"), std::string::npos) << pinned.err;
}
