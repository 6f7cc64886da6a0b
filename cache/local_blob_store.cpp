#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>

#include "cache/blob_store.h"
#include "cache/spool_hasher.h"
#include "common/error.h"

namespace fs = std::filesystem;

namespace regcache::cache {
namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// A failed write or fsync of stored bytes: the disk being full is the caller's
// to act on (pass-through, 507), so it gets its own code.
[[noreturn]] void throw_store_errno(const std::string& what, const fs::path& where) {
  int err = errno;
  if (err == ENOSPC || err == EDQUOT)
    throw RegistryError(ErrorCode::InsufficientStorage,
                        "the data directory's file system is full (" + where.string() + "): " + what + ": " +
                            std::strerror(err));
  throw RegistryError(ErrorCode::Internal, "writing to the data directory failed (" + where.string() + "): " + what +
                                               ": " + std::strerror(err));
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the file itself is already durable
  ::fsync(fd);
  ::close(fd);
}

std::size_t pread_some(int fd, std::uint64_t offset, char* buf, std::size_t n, const char* what) {
  ssize_t got;
  do {
    got = ::pread(fd, buf, n, static_cast<off_t>(offset));
  } while (got < 0 && errno == EINTR);
  if (got < 0) throw_errno(what);
  return static_cast<std::size_t>(got);
}

class FileReader final : public BlobReader {
 public:
  FileReader(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
  ~FileReader() override { ::close(fd_); }
  std::uint64_t size() const override { return size_; }
  std::optional<int> native_fd() const override { return fd_; }
  std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) override {
    return pread_some(fd_, offset, buf, n, "read blob");
  }

 private:
  int fd_;
  std::uint64_t size_;
};

// A spool seen by read-while-write readers: its own descriptor (a dup), so the
// bytes stay readable after the writer is gone — also when the spool was
// unlinked (a failed fill) or renamed into blobs/ (committed).
class SpoolSource final : public BlobSource {
 public:
  explicit SpoolSource(int writer_fd) : fd_(::fcntl(writer_fd, F_DUPFD_CLOEXEC, 0)) {
    if (fd_ < 0) throw_errno("duplicate spool descriptor");
  }
  ~SpoolSource() override { ::close(fd_); }
  SpoolSource(const SpoolSource&) = delete;
  SpoolSource& operator=(const SpoolSource&) = delete;
  std::optional<int> native_fd() const override { return fd_; }
  std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) override {
    return pread_some(fd_, offset, buf, n, "read spool file");
  }

 private:
  int fd_;
};

// A fill's spool (create_writer) or a client's upload file (open_upload): one
// file appended to; an upload's chunks end as they are written (end_chunk()
// has nothing to flush).
class FileWriter final : public BlobUpload {
 public:
  // A fresh spool in `tmp_dir`, removed unless committed.
  FileWriter(const LocalBlobStore& store, const fs::path& tmp_dir) : store_(store) {
    // Created under a name start-up cleanup does not take, locked, then
    // renamed to spool-*: a spool is never visible as a candidate before its
    // lock is held, so another replica starting on the same data directory
    // (remove_orphan_spools) cannot take a live fill's spool away.
    // Start-up cleanup may also take a new-spool-* in the moment before its
    // lock is held (it cannot tell it from one a crash left): the name is
    // then gone or locked by the cleanup, and a fresh one is made.
    for (int attempt = 1;; ++attempt) {
      std::string tmpl = (tmp_dir / "new-spool-XXXXXX").string();
      fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
      if (fd_ < 0) throw_store_errno("create spool file", tmp_dir);
      fs::path fresh = tmpl;
      fs::path named = tmp_dir / ("spool-" + fresh.filename().string().substr(sizeof "new-spool-" - 1));
      const bool locked = ::flock(fd_, LOCK_EX | LOCK_NB) == 0;
      if (locked && ::rename(fresh.c_str(), named.c_str()) == 0) {
        path_ = named;
        return;
      }
      int err = errno;
      const bool taken = locked ? err == ENOENT : err == EWOULDBLOCK;
      if (!taken) ::unlink(fresh.c_str());  // a taken name is the cleanup's to remove (it may be reused by now)
      ::close(fd_);
      if (!taken || attempt == 3) {
        errno = err;
        throw_store_errno("create spool file", tmp_dir);
      }
    }
  }
  // An upload file, appended to and kept unless committed. Bytes that were
  // there before this writer are not in its running hash.
  FileWriter(const LocalBlobStore& store, fs::path path, int fd, std::uint64_t existing)
      : store_(store), fd_(fd), path_(std::move(path)), size_(existing), opened_size_(existing), keep_(true),
        hash_complete_(existing == 0) {}
  ~FileWriter() override {
    background_.reset();
    if (!committed_ && !keep_) ::unlink(path_.c_str());
    ::close(fd_);
  }

  void write(const char* data, std::size_t size) override {
    if (broken_) throw RegistryError(ErrorCode::Internal, "write to a spool that already failed (" + path_.string() + ")");
    // Small blobs are hashed here; from kInlineHashLimit on, a SpoolHasher
    // takes over on its own thread (reading the bytes back from the file).
    bool inline_hash = hash_complete_ && !background_;
    if (inline_hash) hasher_->update(data, size);
    while (size > 0) {
      ssize_t n = ::write(fd_, data, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_write();
      }
      data += n;
      size -= static_cast<std::size_t>(n);
      size_ += static_cast<std::uint64_t>(n);
    }
    if (background_)
      background_->available(size_);
    else if (inline_hash && size_ >= kInlineHashLimit)
      background_ = std::make_unique<SpoolHasher>(fd_, std::move(hasher_), size_);
  }

  std::uint64_t size() const override { return size_; }

  void commit(const Digest& expected) override {
    if (expected.algorithm() != "sha256" || !hash_complete_) {
      // The running hash is sha256 over what this writer wrote; anything else
      // is hashed from the file.
      DigestHasher h(expected.algorithm());
      char buf[1 << 16];
      std::uint64_t off = 0;
      for (;;) {
        ssize_t n = ::pread(fd_, buf, sizeof buf, static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("read spool file");
        if (n == 0) break;
        h.update(buf, static_cast<std::size_t>(n));
        off += static_cast<std::uint64_t>(n);
      }
      check(h.finish(), expected);
    } else {
      Digest actual = background_ ? background_->finish(size_) : hasher_->finish();
      background_.reset();
      check(actual, expected);
    }
    if (::fsync(fd_) != 0) throw_store_errno("fsync spool file", path_);
    fs::path target = store_.blob_path(expected);
    fs::create_directories(target.parent_path());
    if (::rename(path_.c_str(), target.c_str()) != 0) throw_errno("publish blob " + expected.str());
    committed_ = true;
    fsync_dir(target.parent_path());
  }

  BlobSourcePtr source() override { return std::make_shared<SpoolSource>(fd_); }

 private:
  // A write failed (errno set): stop hashing, and put an upload back to the
  // bytes it had before this writer's chunk, so that the session stays as the
  // client last saw it acknowledged. Then throw.
  [[noreturn]] void fail_write() {
    int err = errno;
    broken_ = true;
    background_.reset();
    if (keep_ && ::ftruncate(fd_, static_cast<off_t>(opened_size_)) == 0) size_ = opened_size_;
    errno = err;
    throw_store_errno("write " + std::string(keep_ ? "upload" : "spool") + " file", path_.parent_path());
  }

  static void check(const Digest& actual, const Digest& expected) {
    if (actual != expected)
      throw RegistryError(ErrorCode::DigestInvalid, "content digest " + actual.str() + " does not match " + expected.str());
  }

  const LocalBlobStore& store_;
  int fd_ = -1;
  fs::path path_;
  static constexpr std::uint64_t kInlineHashLimit = 1 << 20;
  std::unique_ptr<DigestHasher> hasher_ = std::make_unique<DigestHasher>("sha256");
  std::unique_ptr<SpoolHasher> background_;  // reads fd_: the destructor stops it before closing fd_
  std::uint64_t size_ = 0;
  std::uint64_t opened_size_ = 0;  // an upload's bytes before this writer
  bool broken_ = false;            // a write failed
  bool committed_ = false;
  bool keep_ = false;
  bool hash_complete_ = true;
};

}  // namespace

LocalBlobStore::LocalBlobStore(fs::path data_dir)
    : root_(data_dir / "blobs"), tmp_(data_dir / "tmp"), uploads_(data_dir / "uploads"),
      quarantine_(data_dir / "quarantine") {
  fs::create_directories(root_);
  fs::create_directories(tmp_);
  fs::create_directories(uploads_);
}

fs::path LocalBlobStore::upload_path(const std::string& id) const {
  // Callers pass ids they validated; this keeps a bad one from naming another path.
  if (id.empty() || id.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw std::invalid_argument("invalid upload id");
  return uploads_ / id;
}

BlobUploadPtr LocalBlobStore::open_upload(const std::string& id, bool create) {
  fs::path path = upload_path(id);
  int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0) {
    if (errno == ENOENT && !create) return nullptr;
    throw_errno("open upload " + id);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw_errno("stat upload " + id);
  }
  return std::make_unique<FileWriter>(*this, path, fd, static_cast<std::uint64_t>(st.st_size));
}

std::optional<std::uint64_t> LocalBlobStore::upload_size(const std::string& id) {
  std::error_code ec;
  auto size = fs::file_size(upload_path(id), ec);
  if (ec) return std::nullopt;
  return size;
}

void LocalBlobStore::remove_upload(const std::string& id) {
  std::error_code ec;
  fs::remove(upload_path(id), ec);
}

std::vector<std::string> LocalBlobStore::list_uploads() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(uploads_, ec)) out.push_back(entry.path().filename().string());
  return out;
}

fs::path LocalBlobStore::blob_path(const Digest& digest) const {
  // The digest is validated by construction (lowercase hex only), so the path
  // can never leave the blobs directory.
  return root_ / digest.algorithm() / digest.hex().substr(0, 2) / digest.hex();
}

std::optional<std::uint64_t> LocalBlobStore::free_bytes() const {
  // tmp/ is where new content lands first, on the same file system as blobs/.
  struct statvfs st {};
  if (::statvfs(tmp_.c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

BlobWriterPtr LocalBlobStore::create_writer() { return std::make_unique<FileWriter>(*this, tmp_); }

BlobReaderPtr LocalBlobStore::open(const Digest& digest) {
  int fd = ::open(blob_path(digest).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return nullptr;
    throw_errno("open blob " + digest.str());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw_errno("stat blob " + digest.str());
  }
  return std::make_unique<FileReader>(fd, static_cast<std::uint64_t>(st.st_size));
}

bool LocalBlobStore::exists(const Digest& digest) {
  std::error_code ec;
  return fs::is_regular_file(blob_path(digest), ec);
}

Presence LocalBlobStore::presence(const Digest& digest) {
  struct stat st {};
  if (::stat(blob_path(digest).c_str(), &st) != 0) {
    // Only "no such file" (the object, or a directory above it) is absence;
    // EACCES, EIO, ELOOP and the like say nothing about whether it is there.
    return errno == ENOENT ? Presence::Absent : Presence::Unreadable;
  }
  return S_ISREG(st.st_mode) ? Presence::Present : Presence::Unreadable;
}

void LocalBlobStore::remove(const Digest& digest) {
  std::error_code ec;
  fs::remove(blob_path(digest), ec);
}

std::vector<StoredBlob> LocalBlobStore::list() {
  std::vector<StoredBlob> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root_, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    // Entries that cannot be stat'ed (a symlink loop, EACCES) are skipped, not
    // fatal: the rest of the store is still listed.
    std::error_code entry_ec;
    if (!it->is_regular_file(entry_ec)) continue;
    const fs::path& p = it->path();
    auto algorithm = p.parent_path().parent_path().filename().string();
    auto size = it->file_size(entry_ec);
    if (entry_ec) continue;
    if (auto d = Digest::parse(algorithm + ":" + p.filename().string()); d && p == blob_path(*d))
      out.push_back({*d, static_cast<std::uint64_t>(size)});
  }
  return out;
}

std::optional<std::int64_t> LocalBlobStore::written_at(const Digest& digest) {
  struct stat st {};
  if (::stat(blob_path(digest).c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("stat blob " + digest.str());
  }
  return static_cast<std::int64_t>(st.st_mtime);
}

std::optional<std::string> LocalBlobStore::quarantine(const Digest& digest) {
  // Created on first use: a store that never quarantined anything has no such directory.
  fs::create_directories(quarantine_);
  fs::path to = quarantine_ / (digest.algorithm() + "-" + digest.hex() + "-" + std::to_string(::time(nullptr)));
  // Same file system: the object leaves blobs/ in one step, and a reader that
  // has it open keeps reading the same (corrupt, but whole) file.
  if (::rename(blob_path(digest).c_str(), to.c_str()) != 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("quarantine blob " + digest.str());
  }
  return to.string();
}

// A spool is an orphan when no process holds its lock: a writer holds it
// from before the spool gets its spool-* name until the descriptor closes
// (whoever crashed released it). Spools of live writers, in this process or in
// another replica on the same data directory, are left alone. An unlocked
// new-spool-* file was left by a crash between creating and naming a spool,
// or belongs to a writer in the moment before it locks: removing it then makes
// that writer start over with a fresh name (FileWriter), so it goes at once.
std::size_t LocalBlobStore::remove_orphan_spools() {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(tmp_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("spool-", 0) != 0 && name.rfind("new-spool-", 0) != 0) continue;
    int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      // A symlink or something unreadable in the spool directory: not a live
      // writer's (those are regular files we can open); remove the name.
      if (errno == ELOOP && fs::remove(entry.path(), ec)) ++removed;
      continue;
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && fs::remove(entry.path(), ec)) ++removed;
    ::close(fd);
  }
  return removed;
}

}  // namespace regcache::cache
