#include "evoopt/common/files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <random>

#include "evoopt/common/error.hpp"

namespace evoopt {
namespace fs = std::filesystem;

namespace {
std::string byte_count(std::uint64_t n) { return std::to_string(n); }

// An open descriptor of a regular file no larger than `limit`; throws naming the file.
int open_regular(const fs::path& path, const limits::Limit& limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) throw Error(path.string() + ": file not found");
    throw Error(path.string() + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw Error(path.string() + ": cannot open: " + reason);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path.string() + ": not a regular file" + (S_ISDIR(st.st_mode) ? " (a directory)" : ""));
  }
  if (st.st_size > limit.max) {
    ::close(fd);
    throw Error(limits::exceeds(path.string() + ": size", byte_count(static_cast<std::uint64_t>(st.st_size)), limit));
  }
  return fd;
}

// Reads the whole of `fd` (closing it) into a container of bytes; at most `limit`.
template <typename Container>
Container read_all(int fd, const fs::path& path, const limits::Limit& limit) {
  Container out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<std::size_t>(st.st_size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      const std::string reason = std::strerror(errno);
      ::close(fd);
      throw Error(path.string() + ": cannot read: " + reason);
    }
    if (n == 0) break;
    if (static_cast<std::int64_t>(out.size()) + n > limit.max) {  // grew while being read
      ::close(fd);
      throw Error(limits::exceeds(path.string() + ": size", "more than " + byte_count(static_cast<std::uint64_t>(limit.max)), limit));
    }
    out.insert(out.end(), buffer, buffer + n);
  }
  ::close(fd);
  return out;
}
}  // namespace

Bytes read_file_maybe_gz(const fs::path& path, const limits::Limit& limit) {
  const int fd = open_regular(path, limit);
  gzFile file = gzdopen(fd, "rb");
  if (file == nullptr) {
    ::close(fd);
    throw Error(path.string() + ": cannot open: " + std::strerror(errno));
  }
  gzbuffer(file, 1 << 20);
  Bytes out;
  std::uint8_t buffer[1 << 16];
  for (;;) {
    int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int code = 0;
      std::string message = gzerror(file, &code);
      gzclose(file);
      throw Error(path.string() + ": corrupt or truncated gzip data (" + message + ")");
    }
    if (n == 0) break;
    if (static_cast<std::int64_t>(out.size()) + n > limit.max) {
      gzclose(file);
      throw Error(limits::exceeds(path.string() + ": decompressed size", "more than " + byte_count(static_cast<std::uint64_t>(limit.max)), limit));
    }
    out.insert(out.end(), buffer, buffer + n);
  }
  // gzread stops silently at a truncated gzip member; gzclose reports it.
  int rc = gzclose(file);
  if (rc != Z_OK) throw Error(path.string() + ": corrupt or truncated gzip data");
  return out;
}

Bytes gunzip(const Bytes& compressed, const std::string& what, const limits::Limit& limit) {
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) throw Error(what + ": zlib initialisation failed");
  Bytes out;
  out.reserve(std::min<std::size_t>(compressed.size() * 4, static_cast<std::size_t>(limit.max)));
  stream.next_in = const_cast<Bytef*>(compressed.data());
  stream.avail_in = static_cast<uInt>(compressed.size());
  std::uint8_t buffer[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    stream.next_out = buffer;
    stream.avail_out = sizeof(buffer);
    rc = inflate(&stream, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&stream);
      throw Error(what + ": corrupt or truncated gzip data");
    }
    const std::size_t n = sizeof(buffer) - stream.avail_out;
    if (static_cast<std::int64_t>(out.size() + n) > limit.max) {
      inflateEnd(&stream);
      throw Error(limits::exceeds(what + ": decompressed size", "more than " + byte_count(static_cast<std::uint64_t>(limit.max)), limit));
    }
    out.insert(out.end(), buffer, buffer + n);
    if (rc == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
      inflateEnd(&stream);
      throw Error(what + ": truncated gzip data");
    }
  }
  inflateEnd(&stream);
  return out;
}

Bytes read_binary_file(const fs::path& path, const limits::Limit& limit) { return read_all<Bytes>(open_regular(path, limit), path, limit); }

std::string read_text_file(const fs::path& path, const limits::Limit& limit) { return read_all<std::string>(open_regular(path, limit), path, limit); }

namespace {
// Writes everything or throws naming `target` (the file the user knows, not a temporary);
// `tmp`, when given, is removed on failure.
void write_all(int fd, const void* data, std::size_t size, const fs::path& target, const fs::path& tmp) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::string reason = std::strerror(errno);
      ::close(fd);
      std::error_code ec;
      if (!tmp.empty()) fs::remove(tmp, ec);
      throw Error(target.string() + ": write failed: " + reason);
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}
}  // namespace

namespace {
// Test hook of the kill-torture test: EVOOPT_TEST_KILL_BEFORE_RENAME=NAME:N makes this process
// SIGKILL itself in its N-th atomic write of a file named NAME, after the temporary file is
// written and before it is renamed into place: a crash inside an output write, on demand.
void kill_before_rename_if_asked(const fs::path& path) {
  static const std::pair<std::string, long> spec = [] {
    const char* v = std::getenv("EVOOPT_TEST_KILL_BEFORE_RENAME");
    const std::string s = v != nullptr ? v : "";
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) return std::pair<std::string, long>{"", 0};
    return std::pair<std::string, long>{s.substr(0, colon), std::strtol(s.c_str() + colon + 1, nullptr, 10)};
  }();
  static std::atomic<long> writes{0};
  if (spec.first.empty() || path.filename() != spec.first) return;
  if (++writes == spec.second) ::raise(SIGKILL);
}
}  // namespace

void write_file_atomic(const fs::path& path, const void* data, std::size_t size) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::random_device rd;
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error(path.string() + ": cannot write: " + std::strerror(errno));
  write_all(fd, data, size, path, tmp);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string reason = std::strerror(errno);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error(path.string() + ": cannot flush to disk: " + reason);
  }
  kill_before_rename_if_asked(path);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp);
    throw Error(path.string() + ": cannot rename into place: " + ec.message());
  }
}

void write_file_atomic(const fs::path& path, const std::string& text) { write_file_atomic(path, text.data(), text.size()); }

namespace {
// Cuts a torn last line (a crash mid-append) off the journal open as `fd`, so the next line
// starts on a fresh one. Done by the appender, not the reader: reading never changes a file.
void cut_torn_tail(int fd, const fs::path& path) {
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size <= 0) return;
  char last = 0;
  if (::pread(fd, &last, 1, size - 1) != 1) throw Error(path.string() + ": cannot read: " + std::strerror(errno));
  if (last == '\n') return;
  off_t end = size;  // the end of the complete lines: just past the last newline, or 0
  char buffer[4096];
  while (end > 0) {
    const off_t from = std::max<off_t>(0, end - static_cast<off_t>(sizeof buffer));
    const ssize_t n = ::pread(fd, buffer, static_cast<std::size_t>(end - from), from);
    if (n != end - from) throw Error(path.string() + ": cannot read: " + std::strerror(errno));
    const char* nl = static_cast<const char*>(::memrchr(buffer, '\n', static_cast<std::size_t>(n)));
    if (nl != nullptr) {
      end = from + (nl - buffer) + 1;
      break;
    }
    end = from;
  }
  if (::ftruncate(fd, end) != 0) throw Error(path.string() + ": cannot cut its torn last line: " + std::strerror(errno));
}
}  // namespace

void append_line_durable(const fs::path& path, const std::string& line) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND, 0644);
  if (fd < 0) fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);  // a write-only special file
  if (fd < 0) throw Error(path.string() + ": cannot append: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    try {
      cut_torn_tail(fd, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
  }
  std::string data = line + "\n";
  write_all(fd, data.data(), data.size(), path, fs::path());
  if (::fsync(fd) != 0 && errno != EINVAL) {  // EINVAL: a special file that cannot sync
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw Error(path.string() + ": cannot flush to disk: " + reason);
  }
  if (::close(fd) != 0) throw Error(path.string() + ": cannot flush to disk: " + std::strerror(errno));
}

DirLock::DirLock(const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path p = dir / ".lock";
  fd_ = ::open(p.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd_ < 0) throw Error(p.string() + ": cannot open lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw Error(dir.string() + " is in use by another evoopt process");
  }
}

bool dir_in_use(const fs::path& dir) {
  const fs::path p = dir / ".lock";
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0;
  ::close(fd);
  return held;
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

std::vector<std::string> read_journal_lines(const fs::path& path) {
  std::vector<std::string> lines;
  if (!fs::exists(path)) return lines;
  const std::string text = read_text_file(path, limits::kJournalBytes);
  const auto last_newline = text.rfind('\n');
  const std::size_t complete = last_newline == std::string::npos ? 0 : last_newline + 1;
  std::size_t start = 0;
  while (start < complete) {
    const auto nl = text.find('\n', start);
    if (nl > start) lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

}  // namespace evoopt
