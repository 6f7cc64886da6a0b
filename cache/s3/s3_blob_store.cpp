#include "cache/s3/s3_blob_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <istream>
#include <set>
#include <streambuf>

#include "common/error.h"

namespace regcache::cache {

namespace {

constexpr std::uint64_t kMinPart = 5ull << 20;

RegistryError unavailable(const std::exception& e) {
  return RegistryError(ErrorCode::Unavailable, std::string("blob store (S3) unavailable: ") + e.what());
}

// A local file with no name: gone when the last descriptor closes, so a crash leaves
// nothing behind and sources can outlive the writer.
class SpoolFile {
 public:
  explicit SpoolFile(const std::filesystem::path& dir) {
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0) {  // file systems without O_TMPFILE: a name for an instant
      std::string tmpl = (dir / "spool-XXXXXX").string();
      fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
      if (fd_ >= 0) ::unlink(tmpl.c_str());
    }
    if (fd_ < 0)
      throw RegistryError(ErrorCode::Internal,
                          "cannot create a spool file in " + dir.string() + ": " + std::strerror(errno));
  }
  ~SpoolFile() { ::close(fd_); }
  SpoolFile(const SpoolFile&) = delete;
  SpoolFile& operator=(const SpoolFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// The spool as read-while-write sees it: every byte write() returned is there.
class SpoolSource final : public BlobSource {
 public:
  explicit SpoolSource(std::shared_ptr<SpoolFile> file) : file_(std::move(file)) {}
  std::optional<int> native_fd() const override { return file_->fd(); }
  std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) override {
    for (;;) {
      const auto got = ::pread(file_->fd(), buf, n, static_cast<off_t>(offset));
      if (got >= 0) return static_cast<std::size_t>(got);
      if (errno != EINTR) throw std::runtime_error(std::string("reading the spool: ") + std::strerror(errno));
    }
  }

 private:
  std::shared_ptr<SpoolFile> file_;
};

// [0, size) of a descriptor as a seekable istream, read with pread in 64 KiB steps: the
// client streams PUT and part bodies from it and rewinds it to retry.
class FdRangeBuf final : public std::streambuf {
 public:
  FdRangeBuf(int fd, std::uint64_t begin, std::uint64_t size) : fd_(fd), begin_(begin), size_(size) {}

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    pos_ += static_cast<std::uint64_t>(egptr() - eback());
    setg(buf_, buf_, buf_);
    if (pos_ >= size_) return traits_type::eof();
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof buf_, size_ - pos_));
    ssize_t got;
    do got = ::pread(fd_, buf_, want, static_cast<off_t>(begin_ + pos_));
    while (got < 0 && errno == EINTR);
    if (got <= 0) return traits_type::eof();
    setg(buf_, buf_, buf_ + got);
    return traits_type::to_int_type(*gptr());
  }
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode) override {
    const auto current = pos_ + static_cast<std::uint64_t>(gptr() - eback());
    std::int64_t target = dir == std::ios_base::beg ? off
                          : dir == std::ios_base::cur ? static_cast<std::int64_t>(current) + off
                                                      : static_cast<std::int64_t>(size_) + off;
    if (target < 0 || static_cast<std::uint64_t>(target) > size_) return pos_type(off_type(-1));
    pos_ = static_cast<std::uint64_t>(target);
    setg(buf_, buf_, buf_);
    return pos_type(target);
  }
  pos_type seekpos(pos_type pos, std::ios_base::openmode which) override {
    return seekoff(off_type(pos), std::ios_base::beg, which);
  }

 private:
  int fd_;
  std::uint64_t begin_, size_;
  std::uint64_t pos_ = 0;  // offset of eback()
  char buf_[64 * 1024];
};

std::int64_t parse_time(const std::string& text, const std::string& fmt) {
  int tzd = 0;
  return Poco::DateTimeParser::parse(fmt, text, tzd).timestamp().epochTime();
}

// Deletes an upload's objects, the marker last, so a crash half-way leaves an upload
// that still exists (and can be removed again).
void remove_upload_objects(const s3::Client& client, const std::string& id) {
  std::vector<std::string> keys;
  client.for_each_object("uploads/" + id + "/", [&](const s3::ListedObject& o) { keys.push_back(o.key); });
  std::sort(keys.begin(), keys.end(), [](const std::string& a, const std::string& b) {
    const bool am = a.ends_with("/created"), bm = b.ends_with("/created");
    return am != bm ? bm : a < b;
  });
  for (const auto& k : keys) client.delete_object(k);
}

std::string chunk_key(const std::string& id, std::uint64_t offset) {
  std::string digits = std::to_string(offset);
  return "uploads/" + id + "/chunk-" + std::string(20 - digits.size(), '0') + digits;
}


// Bytes of one write in progress: appended to an unlinked local file, hashed (sha256)
// as they arrive.
struct Spool {
  explicit Spool(const std::filesystem::path& dir) : file(std::make_shared<SpoolFile>(dir)) {}

  void append(const char* data, std::size_t n) {
    if (failed) throw RegistryError(ErrorCode::Internal, "write after a failed write");
    std::size_t done = 0;
    while (done < n) {
      const auto w = ::write(file->fd(), data + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        failed = true;
        const int err = errno;
        if (err == ENOSPC || err == EDQUOT)
          throw RegistryError(ErrorCode::InsufficientStorage, "the S3 store's spool directory is full");
        throw RegistryError(ErrorCode::Internal, std::string("writing the S3 store's spool: ") + std::strerror(err));
      }
      done += static_cast<std::size_t>(w);
    }
    hasher.update(data, n);
    size += n;
  }

  // The digest of the spooled bytes with `algorithm` (sha256 from the running hash;
  // any other by reading the file again).
  Digest digest(const std::string& algorithm) {
    if (algorithm == "sha256") {
      if (!sha256) sha256 = hasher.finish();
      return *sha256;
    }
    DigestHasher other(algorithm);
    FdRangeBuf buf(file->fd(), 0, size);
    std::istream in(&buf);
    char chunk[64 * 1024];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) other.update(chunk, static_cast<std::size_t>(in.gcount()));
    return other.finish();
  }

  std::shared_ptr<SpoolFile> file;
  DigestHasher hasher{"sha256"};
  std::optional<Digest> sha256;
  std::uint64_t size = 0;
  bool failed = false;
};

}  // namespace

struct S3BlobStore::State {
  explicit State(S3BlobStoreOptions o) : options(std::move(o)), client(options.client) {}
  // Publishes the spool's bytes under `digest` (PUT, or multipart aborted on failure).
  void publish(Spool& spool, const Digest& digest) const { publish_fd(spool.file->fd(), spool.size, digest); }
  // The same for bytes [0, size) of a descriptor the caller verified.
  void publish_fd(int fd, std::uint64_t size, const Digest& digest) const;

  S3BlobStoreOptions options;
  s3::Client client;
};

namespace {

using State = S3BlobStore::State;

class S3Writer final : public BlobWriter {
 public:
  explicit S3Writer(std::shared_ptr<const State> state) : state_(std::move(state)), spool_(state_->options.spool_dir) {}
  void write(const char* data, std::size_t size) override { spool_.append(data, size); }
  std::uint64_t size() const override { return spool_.size; }
  void commit(const Digest& expected) override {
    if (committed_) throw std::logic_error("BlobWriter::commit called twice");
    committed_ = true;
    verify(expected);
    state_->publish(spool_, expected);
  }
  // The upload in commit() takes as long as sending the blob again: say
  // ahead of it that the spool is the blob.
  bool verify(const Digest& expected) override {
    if (verified_ && *verified_ == expected) return true;
    const Digest actual = spool_.digest(expected.algorithm());
    if (actual != expected)
      throw RegistryError(ErrorCode::DigestInvalid, "digest mismatch: expected " + expected.str() + ", got " + actual.str());
    verified_ = expected;
    return true;
  }
  BlobSourcePtr source() override { return std::make_shared<SpoolSource>(spool_.file); }

 private:
  std::shared_ptr<const State> state_;
  Spool spool_;
  bool committed_ = false;
  std::optional<Digest> verified_;  // verify() passed for this digest: commit() does not hash again
};

// A committed object read by ranged GETs of up to `window` bytes at a time.
class S3Reader final : public BlobReader {
 public:
  // `first` holds the object's first bytes (up to one window) when open() fetched them.
  S3Reader(std::shared_ptr<const State> state, std::string key, std::uint64_t size, std::string first)
      : state_(std::move(state)), key_(std::move(key)), size_(size),
        window_(std::max<std::size_t>(state_->options.read_ahead, 4096)), data_(std::move(first)) {}
  std::uint64_t size() const override { return size_; }
  std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) override {
    if (offset >= size_ || n == 0) return 0;
    if (offset < data_start_ || offset >= data_start_ + data_.size()) fill(offset);
    const auto from = static_cast<std::size_t>(offset - data_start_);
    const auto k = std::min(n, data_.size() - from);
    std::memcpy(buf, data_.data() + from, k);
    return k;
  }

 private:
  void fill(std::uint64_t offset) {
    const std::uint64_t last = std::min<std::uint64_t>(offset + window_, size_) - 1;
    std::string got;
    got.reserve(static_cast<std::size_t>(last - offset + 1));
    std::optional<s3::ObjectInfo> info;
    try {
      info = state_->client.get_object(key_, [&](const char* d, std::size_t k) {
        if (got.size() + k > last - offset + 1) throw s3::S3Error("s3 get " + key_ + ": more bytes than asked for", 0, "");
        got.append(d, k);
      }, s3::ByteRange{offset, last});
    } catch (const s3::S3Error& e) {
      throw unavailable(e);
    }
    // Removed (or replaced by something else) while we read: never other bytes.
    if (!info) throw RegistryError(ErrorCode::BlobUnknown, "blob " + key_ + " was removed while it was read");
    if (info->size != size_ || got.size() != last - offset + 1)
      throw RegistryError(ErrorCode::Internal, "blob " + key_ + " changed size while it was read");
    data_ = std::move(got);
    data_start_ = offset;
  }

  std::shared_ptr<const State> state_;
  std::string key_;
  std::uint64_t size_;
  std::size_t window_;
  std::string data_;
  std::uint64_t data_start_ = 0;
};

// A client's upload: chunks already sent live in the bucket (one object each); this
// session's bytes are staged locally until end_chunk() or commit().
class S3Upload final : public BlobUpload {
 public:
  S3Upload(std::shared_ptr<const State> state, std::string id, std::uint64_t base)
      : state_(std::move(state)), spool_dir_(state_->options.spool_dir), id_(std::move(id)), base_(base),
        staged_(std::make_unique<Spool>(spool_dir_)) {}

  void write(const char* data, std::size_t size) override { staged_->append(data, size); }
  std::uint64_t size() const override { return base_ + staged_->size; }

  void end_chunk() override {
    if (staged_->size == 0) return;
    FdRangeBuf buf(staged_->file->fd(), 0, staged_->size);
    std::istream in(&buf);
    try {
      state_->client.put_object(chunk_key(id_, base_), in, staged_->size, staged_->digest("sha256").hex());
    } catch (const s3::S3Error& e) {
      throw unavailable(e);
    }
    base_ += staged_->size;
    staged_ = std::make_unique<Spool>(spool_dir_);
  }

  void commit(const Digest& expected) override {
    if (committed_) throw std::logic_error("BlobWriter::commit called twice");
    committed_ = true;
    // The whole upload in one local spool: earlier chunks from the bucket, then ours.
    Spool all(spool_dir_);
    try {
      std::vector<std::pair<std::uint64_t, std::string>> chunks;
      state_->client.for_each_object("uploads/" + id_ + "/chunk-", [&](const s3::ListedObject& o) {
        chunks.emplace_back(std::stoull(o.key.substr(o.key.rfind('-') + 1)), o.key);
      });
      std::sort(chunks.begin(), chunks.end());
      for (const auto& [offset, key] : chunks) {
        if (offset != all.size)
          throw RegistryError(ErrorCode::BlobUploadInvalid, "upload " + id_ + " has a gap at " + std::to_string(all.size));
        if (!state_->client.get_object(key, [&](const char* d, std::size_t n) { all.append(d, n); }))
          throw RegistryError(ErrorCode::BlobUploadUnknown, "upload " + id_ + " lost a chunk");
      }
    } catch (const s3::S3Error& e) {
      throw unavailable(e);
    }
    char buf[64 * 1024];
    for (std::uint64_t off = 0; off < staged_->size;) {
      const auto got = ::pread(staged_->file->fd(), buf, sizeof buf, static_cast<off_t>(off));
      if (got <= 0) throw RegistryError(ErrorCode::Internal, "reading the upload's staged bytes failed");
      all.append(buf, static_cast<std::size_t>(got));
      off += static_cast<std::uint64_t>(got);
    }
    const Digest actual = all.digest(expected.algorithm());
    if (actual != expected)
      throw RegistryError(ErrorCode::DigestInvalid, "digest mismatch: expected " + expected.str() + ", got " + actual.str());
    state_->publish(all, expected);
    remove_upload_objects(state_->client, id_);
  }

  BlobSourcePtr source() override { return std::make_shared<SpoolSource>(staged_->file); }

 private:
  std::shared_ptr<const State> state_;
  std::filesystem::path spool_dir_;
  std::string id_;
  std::uint64_t base_;
  std::unique_ptr<Spool> staged_;
  bool committed_ = false;
};

}  // namespace

namespace {

S3BlobStoreOptions checked(S3BlobStoreOptions o) {
  if (o.part_size < kMinPart) o.part_size = kMinPart;
  if (o.multipart_threshold < o.part_size) o.multipart_threshold = o.part_size;
  std::filesystem::create_directories(o.spool_dir);
  return o;
}

}  // namespace

S3BlobStore::S3BlobStore(S3BlobStoreOptions options)
    : state_(std::make_shared<const State>(checked(std::move(options)))) {}

S3BlobStore::~S3BlobStore() = default;

const s3::Client& S3BlobStore::client() const { return state_->client; }

std::string S3BlobStore::blob_key(const Digest& digest) {
  return "blobs/" + digest.algorithm() + "/" + digest.hex().substr(0, 2) + "/" + digest.hex();
}

void S3BlobStore::State::publish_fd(int fd, std::uint64_t size, const Digest& digest) const {
  const std::string key = blob_key(digest);
  try {
    // Content-addressed, and only verified bytes are ever published: an object
    // already there under this digest with this size holds these bytes (another
    // replica's fill, a concurrent writer). One HEAD instead of a second PUT.
    if (const auto there = client.head_object(key); there && there->size == size) return;
    if (size < options.multipart_threshold) {
      FdRangeBuf buf(fd, 0, size);
      std::istream in(&buf);
      // The digest is the body's SHA-256: signing it makes S3 check the transfer.
      client.put_object(key, in, size,
                         digest.algorithm() == "sha256" ? digest.hex() : std::string(s3::kUnsignedPayload));
      return;
    }
    const std::string id = client.create_multipart_upload(key);
    try {
      std::vector<s3::CompletedPart> parts;
      int number = 1;
      for (std::uint64_t off = 0; off < size; off += options.part_size, ++number) {
        const auto n = std::min(options.part_size, size - off);
        FdRangeBuf buf(fd, off, n);
        std::istream in(&buf);
        parts.push_back({number, client.upload_part(key, id, number, in, n)});
      }
      client.complete_multipart_upload(key, id, parts);
    } catch (...) {
      try {
        client.abort_multipart_upload(key, id);
      } catch (const s3::S3Error&) {
        // Left for remove_orphan_spools() at the next start-up.
      }
      throw;
    }
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
}

void S3BlobStore::publish_verified(const Digest& digest, int fd, std::uint64_t size) {
  state_->publish_fd(fd, size, digest);
}

BlobWriterPtr S3BlobStore::create_writer() { return std::make_unique<S3Writer>(state_); }

BlobReaderPtr S3BlobStore::open(const Digest& digest) {
  // One ranged GET of the first window instead of HEAD: it tells the size (from
  // Content-Range) and brings a small blob whole, so a reader of one costs one request.
  const std::string key = blob_key(digest);
  const std::uint64_t window = std::max<std::size_t>(state_->options.read_ahead, 4096);
  std::string first;
  std::optional<s3::ObjectInfo> info;
  try {
    try {
      info = state_->client.get_object(key, [&](const char* d, std::size_t n) {
        if (first.size() + n > window) throw s3::S3Error("s3 get " + key + ": more bytes than asked for", 0, "");
        first.append(d, n);
      }, s3::ByteRange{0, window - 1});
    } catch (const s3::S3Error& e) {
      if (e.status() != 416) throw;
      info = state_->client.head_object(key);  // an empty object has no byte 0
      if (info && info->size != 0) throw;
    }
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
  if (!info) return nullptr;
  if (first.size() != std::min<std::uint64_t>(info->size, window))
    throw RegistryError(ErrorCode::Internal, "blob " + key + ": short first read from the store");
  return std::make_unique<S3Reader>(state_, key, info->size, std::move(first));
}

bool S3BlobStore::exists(const Digest& digest) { return presence(digest) == Presence::Present; }

Presence S3BlobStore::presence(const Digest& digest) {
  try {
    return state_->client.head_object(blob_key(digest)) ? Presence::Present : Presence::Absent;
  } catch (const s3::S3Error&) {
    return Presence::Unreadable;
  }
}

void S3BlobStore::remove(const Digest& digest) {
  try {
    state_->client.delete_object(blob_key(digest));
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
}

std::vector<StoredBlob> S3BlobStore::list() {
  std::vector<StoredBlob> out;
  try {
    state_->client.for_each_object("blobs/", [&](const s3::ListedObject& o) {
      // blobs/<algorithm>/<2 hex>/<hex>; anything else in the prefix is not ours.
      const auto a = o.key.find('/', 6);
      const auto b = a == std::string::npos ? a : o.key.find('/', a + 1);
      if (b == std::string::npos) return;
      const auto digest = Digest::parse(o.key.substr(6, a - 6) + ":" + o.key.substr(b + 1));
      if (digest && blob_key(*digest) == o.key) out.push_back({*digest, o.size});
    });
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
  return out;
}

std::size_t S3BlobStore::remove_orphan_spools() {
  std::size_t removed = 0;
  // Local: only the named fallback spools of a crash in the instant before unlink.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_->options.spool_dir, ec)) {
    if (entry.path().filename().string().rfind("spool-", 0) == 0 && std::filesystem::remove(entry.path(), ec))
      ++removed;
  }
  // Remote: multipart commits that never completed. Young ones may be another replica's
  // commit in progress.
  try {
    const auto now = std::time(nullptr);
    for (const auto& u : state_->client.list_multipart_uploads("blobs/")) {
      std::int64_t initiated = 0;
      try {
        initiated = parse_time(u.initiated, Poco::DateTimeFormat::ISO8601_FRAC_FORMAT);
      } catch (const Poco::Exception&) {
        continue;  // cannot tell its age: leave it
      }
      if (now - initiated < state_->options.abort_incomplete_after.count()) continue;
      state_->client.abort_multipart_upload(u.key, u.upload_id);
      ++removed;
    }
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
  return removed;
}

BlobUploadPtr S3BlobStore::open_upload(const std::string& id, bool create) {
  auto size = upload_size(id);
  if (!size) {
    if (!create) return nullptr;
    try {
      state_->client.put_object("uploads/" + id + "/created", "");
    } catch (const s3::S3Error& e) {
      throw unavailable(e);
    }
    size = 0;
  }
  return std::make_unique<S3Upload>(state_, id, *size);
}

std::optional<std::uint64_t> S3BlobStore::upload_size(const std::string& id) {
  bool found = false;
  std::uint64_t total = 0;
  try {
    state_->client.for_each_object("uploads/" + id + "/", [&](const s3::ListedObject& o) {
      found = true;
      if (o.key.find("/chunk-") != std::string::npos) total += o.size;
    });
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
  if (!found) return std::nullopt;
  return total;
}

void S3BlobStore::remove_upload(const std::string& id) {
  try {
    remove_upload_objects(state_->client, id);
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
}

std::vector<std::string> S3BlobStore::list_uploads() {
  std::set<std::string> ids;
  try {
    state_->client.for_each_object("uploads/", [&](const s3::ListedObject& o) {
      const auto slash = o.key.find('/', 8);
      if (slash != std::string::npos && o.key.substr(slash) == "/created") ids.insert(o.key.substr(8, slash - 8));
    });
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
  return {ids.begin(), ids.end()};
}

std::optional<std::int64_t> S3BlobStore::written_at(const Digest& digest) {
  std::optional<s3::ObjectInfo> info;
  try {
    info = state_->client.head_object(blob_key(digest));
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
  if (!info) return std::nullopt;
  try {
    return parse_time(info->last_modified, Poco::DateTimeFormat::HTTP_FORMAT);
  } catch (const Poco::Exception&) {
    // No usable date: say "just now", which maintenance treats as too young to touch.
    return static_cast<std::int64_t>(std::time(nullptr));
  }
}

std::optional<std::string> S3BlobStore::quarantine(const Digest& digest) {
  const std::string key = blob_key(digest);
  const std::string target =
      "quarantine/" + digest.algorithm() + "-" + digest.hex() + "-" + std::to_string(std::time(nullptr));
  try {
    Spool copy(state_->options.spool_dir);
    if (!state_->client.get_object(key, [&](const char* d, std::size_t n) { copy.append(d, n); })) return std::nullopt;
    FdRangeBuf buf(copy.file->fd(), 0, copy.size);
    std::istream in(&buf);
    state_->client.put_object(target, in, copy.size);
    state_->client.delete_object(key);
  } catch (const s3::S3Error& e) {
    throw unavailable(e);
  }
  return "s3://" + state_->options.client.bucket + "/" + target;
}

std::optional<std::string> S3BlobStore::redirect_url(const Digest& digest, std::chrono::seconds expires) {
  return state_->client.presigned_get_url(blob_key(digest), expires);
}

std::optional<std::string> S3BlobStore::check_reachable() {
  static constexpr auto kFresh = std::chrono::seconds(1);
  std::lock_guard lock(probe_.mutex);
  const auto now = std::chrono::steady_clock::now();
  if (!probe_.done || now - probe_.at >= kFresh) {
    if (!probe_.client) {
      s3::ClientConfig c = state_->options.client;
      c.max_attempts = 1;
      c.timeout = std::chrono::seconds(2);
      probe_.client = std::make_unique<s3::Client>(std::move(c));
    }
    try {
      probe_.client->list_objects("blobs/", std::nullopt, 1);
      probe_.error.clear();
    } catch (const std::exception& e) {
      probe_.error = e.what();
      if (probe_.error.empty()) probe_.error = "the bucket does not answer";
    }
    probe_.done = true;
    probe_.at = std::chrono::steady_clock::now();
  }
  if (!probe_.error.empty()) throw std::runtime_error(probe_.error);
  return "bucket " + state_->options.client.bucket + " answers";
}

}  // namespace regcache::cache
