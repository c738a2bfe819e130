#pragma once
// File helpers: whole-file reads (gzip or raw, transparently) and atomic writes
// (temporary name in the same directory, fsync, rename), so that a crash never
// leaves a half-written result behind.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "evoopt/common/limits.hpp"

namespace evoopt {

using Bytes = std::vector<std::uint8_t>;

// Whole-file reads take only regular files (not /dev/zero, a FIFO or a directory) and at
// most `limit` bytes (limits.hpp), so no file can make evoopt read until memory runs out;
// either is an evoopt::Error naming the file.

// Reads a file; gzip-compressed files are decompressed (zlib detects the
// header, plain files are returned as they are). Throws evoopt::Error naming
// the file when it is missing, unreadable, a corrupt gzip stream, or when it or its
// decompressed content is larger than `limit`.
Bytes read_file_maybe_gz(const std::filesystem::path& path, const limits::Limit& limit = limits::kDataFileBytes);

// Decompresses a gzip stream held in memory; `what` names it in errors (also when the
// decompressed content would exceed `limit`).
Bytes gunzip(const Bytes& compressed, const std::string& what, const limits::Limit& limit = limits::kDataFileBytes);

// Reads a file whole, as bytes or as text; throws evoopt::Error when it cannot.
Bytes read_binary_file(const std::filesystem::path& path, const limits::Limit& limit = limits::kDataFileBytes);
std::string read_text_file(const std::filesystem::path& path, const limits::Limit& limit = limits::kJsonFileBytes);

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
