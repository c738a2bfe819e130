#pragma once
// File helpers: whole-file reads (gzip or raw, transparently) and atomic writes
// (temporary name in the same directory, fsync, rename), so that a crash never
// leaves a half-written result behind.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace evoopt {

using Bytes = std::vector<std::uint8_t>;

// Reads a file; gzip-compressed files are decompressed (zlib detects the
// header, plain files are returned as they are). Throws evoopt::Error naming
// the file when it is missing, unreadable or a corrupt gzip stream.
Bytes read_file_maybe_gz(const std::filesystem::path& path);

// Decompresses a gzip stream held in memory; `what` names it in errors.
Bytes gunzip(const Bytes& compressed, const std::string& what);

// Reads a text file whole; throws evoopt::Error when it cannot.
std::string read_text_file(const std::filesystem::path& path);

// Writes `data` to `path` atomically: a temporary file beside it, fsync, rename.
void write_file_atomic(const std::filesystem::path& path, const void* data, std::size_t size);
void write_file_atomic(const std::filesystem::path& path, const std::string& text);

// Appends one line to a file and fsyncs it (for append-only journals). A torn last line
// (a crash mid-append) is cut off first, so the new line starts on a fresh one.
void append_line_durable(const std::filesystem::path& path, const std::string& line);

// An exclusive lock on a run directory (flock on DIR/.lock), held for the
// object's lifetime, so two processes never append to the same journals.
// Whether another process holds `dir`'s DirLock now (a run going on). Never creates the lock.
bool dir_in_use(const std::filesystem::path& dir);

class DirLock {
 public:
  explicit DirLock(const std::filesystem::path& dir);  // throws evoopt::Error when another process holds it
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

// Reads the complete lines of a journal; a torn last line (a crash mid-append) is left out
// (and left in the file: append_line_durable cuts it). Never changes the file.
std::vector<std::string> read_journal_lines(const std::filesystem::path& path);

}  // namespace evoopt
