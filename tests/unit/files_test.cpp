// Atomic writes, journals and run-directory locks (the crash-safety helpers).
#include <fstream>

#include <gtest/gtest.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "test_support.hpp"

using namespace evoopt;

TEST(Files, AtomicWriteReplacesWholeAndLeavesNoTemporaries) {
  test::TempDir tmp;
  write_file_atomic(tmp / "a/b.txt", std::string("first"));
  write_file_atomic(tmp / "a/b.txt", std::string("second"));
  EXPECT_EQ(read_text_file(tmp / "a/b.txt"), "second");
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp / "a")) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  EXPECT_THROW(write_file_atomic("/proc/evoopt-cannot-write/x", std::string("x")), std::exception);
}

TEST(Files, AJournalsTornLastLineIsSkippedByReadersAndCutByTheNextAppend) {
  test::TempDir tmp;
  append_line_durable(tmp / "j", "one");
  append_line_durable(tmp / "j", "two");
  { std::ofstream(tmp / "j", std::ios::app) << "thr"; }  // a crash mid-append
  EXPECT_EQ(read_journal_lines(tmp / "j"), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(read_text_file(tmp / "j"), "one\ntwo\nthr");  // reading changes nothing
  append_line_durable(tmp / "j", "three");                // cuts the torn line, starts on a fresh one
  EXPECT_EQ(read_journal_lines(tmp / "j"), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_TRUE(read_journal_lines(tmp / "missing").empty());
  // A torn line longer than the read-back block, and a file that is only a torn line.
  { std::ofstream(tmp / "j", std::ios::app) << std::string(10000, 'x'); }
  append_line_durable(tmp / "j", "four");
  EXPECT_EQ(read_text_file(tmp / "j"), "one\ntwo\nthree\nfour\n");
  { std::ofstream(tmp / "k") << "torn"; }
  append_line_durable(tmp / "k", "first");
  EXPECT_EQ(read_text_file(tmp / "k"), "first\n");
}

TEST(Files, RunDirectoryLockIsExclusive) {
  test::TempDir tmp;
  {
    DirLock a(tmp / "run");
    try {
      DirLock b(tmp / "run");
      FAIL() << "a second lock on the same run directory succeeded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("in use by another evoopt process"), std::string::npos);
    }
  }
  EXPECT_NO_THROW(DirLock c(tmp / "run"));  // released with its holder
}
