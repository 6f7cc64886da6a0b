#include "cache/oci_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unordered_map>

namespace regcache::cache {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kLayoutVersion = R"({"imageLayoutVersion":"1.0.0"})";
constexpr std::size_t kMaxIndexBytes = 64 << 20;  // index.json of a very large export still fits
constexpr std::size_t kChunk = 1 << 20;

std::string string_field(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Descriptor descriptor_from(const json& j, const std::string& where) {
  if (!j.is_object()) throw std::runtime_error(where + " is not a descriptor object");
  Descriptor d{string_field(j, "mediaType"), Digest::parse("sha256:" + std::string(64, '0')).value(), 0, {}, {}, {}};
  auto digest = Digest::parse(string_field(j, "digest"));
  if (!digest) throw std::runtime_error(where + " has no valid digest");
  d.digest = *digest;
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_unsigned()) throw std::runtime_error(where + " has no valid size");
  d.size = size->get<std::uint64_t>();
  d.artifact_type = string_field(j, "artifactType");
  if (auto p = j.find("platform"); p != j.end() && p->is_object())
    d.platform = Platform{string_field(*p, "os"), string_field(*p, "architecture"), string_field(*p, "variant")};
  if (auto a = j.find("annotations"); a != j.end() && a->is_object())
    for (auto it = a->begin(); it != a->end(); ++it)
      if (it->is_string()) d.annotations[it.key()] = it->get<std::string>();
  return d;
}

json descriptor_json(const Descriptor& d) {
  json j = {{"mediaType", d.media_type}, {"digest", d.digest.str()}, {"size", d.size}};
  if (!d.artifact_type.empty()) j["artifactType"] = d.artifact_type;
  if (d.platform) {
    j["platform"] = {{"os", d.platform->os}, {"architecture", d.platform->architecture}};
    if (!d.platform->variant.empty()) j["platform"]["variant"] = d.platform->variant;
  }
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  return j;
}

std::string ref_name(const Descriptor& d) {
  auto it = d.annotations.find(kAnnotationRefName);
  return it == d.annotations.end() ? std::string() : it->second;
}

std::string blob_name(const Digest& d) { return "blobs/" + d.algorithm() + "/" + d.hex(); }

std::string index_json(const std::vector<Descriptor>& refs) {
  json manifests = json::array();
  for (const auto& d : refs) manifests.push_back(descriptor_json(d));
  return json{{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.index.v1+json"}, {"manifests", manifests}}
             .dump(2) +
         "\n";
}

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

void write_all(int fd, const char* data, std::size_t n, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_errno("write " + what);
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void close_checked(const std::string& what) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_errno("close " + what);
  }

 private:
  int fd_;
};

// Writes `bytes` to `path` through a temporary file and a rename.
void write_file_atomically(const fs::path& path, std::string_view bytes) {
  fs::path tmp = path;
  tmp += ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) fail_errno("create " + tmp.string());
  write_all(fd.get(), bytes.data(), bytes.size(), tmp.string());
  if (::fsync(fd.get()) != 0) fail_errno("fsync " + tmp.string());
  fd.close_checked(tmp.string());
  fs::rename(tmp, path);
}

// Streams `size` bytes of `read` into `fd`, hashing them; throws unless they
// hash to `digest`.
void copy_verified(int fd, const Digest& digest, std::uint64_t size, const ReadAt& read, const std::string& what) {
  DigestHasher hasher(digest.algorithm());
  std::vector<char> buf(kChunk);
  std::uint64_t done = 0;
  while (done < size) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - done));
    std::size_t n = read(done, buf.data(), want);
    if (n == 0) throw std::runtime_error(what + ": source ended after " + std::to_string(done) + " of " +
                                         std::to_string(size) + " bytes");
    hasher.update(buf.data(), n);
    write_all(fd, buf.data(), n, what);
    done += n;
  }
  Digest actual = hasher.finish();
  if (actual != digest) throw std::runtime_error(what + ": bytes hash to " + actual.str() + ", not " + digest.str());
}

// --- directory ---------------------------------------------------------------

class DirectoryWriter final : public LayoutWriter {
 public:
  explicit DirectoryWriter(fs::path dir) : dir_(std::move(dir)) {
    fs::create_directories(dir_ / "blobs" / "sha256");
    if (fs::exists(dir_ / "index.json")) {
      auto existing = LayoutReader::open(dir_);
      kept_ = existing->refs();
    } else if (!fs::exists(dir_ / "oci-layout")) {
      write_file_atomically(dir_ / "oci-layout", kLayoutVersion);
    }
  }

  bool has_blob(const Digest& digest) const override { return fs::exists(dir_ / blob_name(digest)); }

  void add_blob(const Digest& digest, std::uint64_t size, const ReadAt& read) override {
    fs::path path = dir_ / blob_name(digest);
    fs::create_directories(path.parent_path());
    fs::path tmp = path;
    tmp += ".part";
    try {
      Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (fd.get() < 0) fail_errno("create " + tmp.string());
      copy_verified(fd.get(), digest, size, read, "blob " + digest.str());
      if (::fsync(fd.get()) != 0) fail_errno("fsync " + tmp.string());
      fd.close_checked(tmp.string());
      fs::rename(tmp, path);
    } catch (...) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw;
    }
    bytes_written_ += size;
  }

  void finish() override {
    std::vector<Descriptor> all;
    for (const auto& old : kept_) {
      bool replaced = false;
      for (const auto& r : refs_)
        if (!ref_name(old).empty() ? ref_name(old) == ref_name(r) : (old.digest == r.digest && old.annotations == r.annotations))
          replaced = true;
      if (!replaced) all.push_back(old);
    }
    all.insert(all.end(), refs_.begin(), refs_.end());
    write_file_atomically(dir_ / "index.json", index_json(all));
  }

 private:
  fs::path dir_;
  std::vector<Descriptor> kept_;
};

class DirectoryReader final : public LayoutReader {
 public:
  explicit DirectoryReader(fs::path dir) : dir_(std::move(dir)) {
    load_index(read_text(dir_ / "oci-layout", 4096), read_text(dir_ / "index.json", kMaxIndexBytes));
  }
  std::optional<std::uint64_t> blob_size(const Digest& digest) const override {
    struct stat st {};
    if (::stat((dir_ / blob_name(digest)).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return static_cast<std::uint64_t>(st.st_size);
  }
  std::size_t read_blob(const Digest& digest, std::uint64_t offset, char* buf, std::size_t n) const override {
    // One descriptor kept open for the blob being streamed.
    if (!open_ || open_digest_ != digest) {
      open_ = std::make_shared<Fd>(::open((dir_ / blob_name(digest)).c_str(), O_RDONLY | O_CLOEXEC));
      if (open_->get() < 0) {
        open_.reset();
        fail_errno("open " + (dir_ / blob_name(digest)).string());
      }
      open_digest_ = digest;
    }
    for (;;) {
      ssize_t r = ::pread(open_->get(), buf, n, static_cast<off_t>(offset));
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR) fail_errno("read " + (dir_ / blob_name(digest)).string());
    }
  }

 private:
  static std::string read_text(const fs::path& path, std::size_t max) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) throw std::runtime_error(path.string() + ": " + std::strerror(errno) + " (not an OCI layout?)");
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t r = ::read(fd.get(), buf, sizeof buf);
      if (r < 0) fail_errno("read " + path.string());
      if (r == 0) break;
      out.append(buf, static_cast<std::size_t>(r));
      if (out.size() > max) throw std::runtime_error(path.string() + " is larger than " + std::to_string(max) + " bytes");
    }
    return out;
  }
  fs::path dir_;
  mutable std::shared_ptr<Fd> open_;
  mutable Digest open_digest_ = Digest::parse("sha256:" + std::string(64, '0')).value();
};

// --- tar ---------------------------------------------------------------------
// ustar headers; sizes of 8 GiB and more in the base-256 form GNU tar and Go's
// archive/tar read.

constexpr std::size_t kBlock = 512;

void put_octal(char* field, std::size_t width, std::uint64_t value) {
  // width - 1 digits and a NUL
  for (std::size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  field[width - 1] = '\0';
}

std::array<char, kBlock> tar_header(const std::string& name, std::uint64_t size, char type) {
  std::array<char, kBlock> h{};
  if (name.size() > 100) throw std::runtime_error("tar: name too long: " + name);
  std::memcpy(h.data(), name.data(), name.size());
  put_octal(h.data() + 100, 8, type == '5' ? 0755 : 0644);
  put_octal(h.data() + 108, 8, 0);
  put_octal(h.data() + 116, 8, 0);
  if (size < (1ULL << 33)) {
    put_octal(h.data() + 124, 12, size);
  } else {
    h[124] = static_cast<char>(0x80);
    for (int i = 11; i >= 1; --i) {
      h[124 + i] = static_cast<char>(size & 0xff);
      size >>= 8;
    }
  }
  put_octal(h.data() + 136, 12, static_cast<std::uint64_t>(std::time(nullptr)));
  h[156] = type;
  std::memcpy(h.data() + 257, "ustar", 6);
  std::memcpy(h.data() + 263, "00", 2);
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  put_octal(h.data() + 148, 7, sum);
  h[155] = ' ';
  return h;
}

class TarWriter final : public LayoutWriter {
 public:
  explicit TarWriter(fs::path file) : file_(std::move(file)), part_(file_) {
    part_ += ".part";
    fd_ = ::open(part_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail_errno("create " + part_.string());
    add_dir("blobs/");
    add_dir("blobs/sha256/");
    add_file("oci-layout", kLayoutVersion);
  }
  ~TarWriter() override {
    if (fd_ >= 0) {
      ::close(fd_);
      std::error_code ec;
      fs::remove(part_, ec);
    }
  }

  bool has_blob(const Digest& digest) const override { return written_.count(digest.str()) > 0; }

  void add_blob(const Digest& digest, std::uint64_t size, const ReadAt& read) override {
    if (digest.algorithm() != "sha256") add_dir("blobs/" + digest.algorithm() + "/");
    auto h = tar_header(blob_name(digest), size, '0');
    write_all(fd_, h.data(), h.size(), part_.string());
    // A mismatch here leaves a tar that cannot be finished: the caller gives up
    // and the destructor removes it.
    copy_verified(fd_, digest, size, read, "blob " + digest.str());
    pad(size);
    written_.emplace(digest.str(), true);
    bytes_written_ += size;
  }

  void finish() override {
    add_file("index.json", index_json(refs_));
    std::array<char, 2 * kBlock> end{};
    write_all(fd_, end.data(), end.size(), part_.string());
    if (::fsync(fd_) != 0) fail_errno("fsync " + part_.string());
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_errno("close " + part_.string());
    fs::rename(part_, file_);
  }

 private:
  void pad(std::uint64_t size) {
    static const std::array<char, kBlock> zeros{};
    if (std::size_t rest = size % kBlock) write_all(fd_, zeros.data(), kBlock - rest, part_.string());
  }
  void add_dir(const std::string& name) {
    if (!dirs_.emplace(name, true).second) return;
    auto h = tar_header(name, 0, '5');
    write_all(fd_, h.data(), h.size(), part_.string());
  }
  void add_file(const std::string& name, std::string_view bytes) {
    auto h = tar_header(name, bytes.size(), '0');
    write_all(fd_, h.data(), h.size(), part_.string());
    write_all(fd_, bytes.data(), bytes.size(), part_.string());
    pad(bytes.size());
  }
  fs::path file_, part_;
  int fd_ = -1;
  std::unordered_map<std::string, bool> written_, dirs_;
};

std::uint64_t parse_tar_size(const char* field) {
  if (static_cast<unsigned char>(field[0]) & 0x80) {
    std::uint64_t v = 0;
    for (int i = 1; i < 12; ++i) v = (v << 8) | static_cast<unsigned char>(field[i]);
    return v;
  }
  std::uint64_t v = 0;
  for (int i = 0; i < 12 && field[i]; ++i) {
    if (field[i] == ' ') continue;
    if (field[i] < '0' || field[i] > '7') throw std::runtime_error("tar: bad size field");
    v = (v << 3) | static_cast<std::uint64_t>(field[i] - '0');
  }
  return v;
}

std::string c_field(const char* field, std::size_t width) { return std::string(field, strnlen(field, width)); }

std::string clean_name(std::string name) {
  while (name.rfind("./", 0) == 0) name.erase(0, 2);
  return name;
}

class TarReader final : public LayoutReader {
 public:
  explicit TarReader(const fs::path& file) : path_(file.string()) {
    fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail_errno("open " + path_);
    index_members();
    load_index(member_text("oci-layout", 4096), member_text("index.json", kMaxIndexBytes));
  }
  ~TarReader() override { ::close(fd_); }

  std::optional<std::uint64_t> blob_size(const Digest& digest) const override {
    auto it = members_.find(blob_name(digest));
    if (it == members_.end()) return std::nullopt;
    return it->second.size;
  }
  std::size_t read_blob(const Digest& digest, std::uint64_t offset, char* buf, std::size_t n) const override {
    auto it = members_.find(blob_name(digest));
    if (it == members_.end()) throw std::runtime_error(path_ + " has no " + blob_name(digest));
    return read_member(it->second, offset, buf, n);
  }

 private:
  struct Member {
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
  };

  std::size_t read_member(const Member& m, std::uint64_t offset, char* buf, std::size_t n) const {
    if (offset >= m.size) return 0;
    n = static_cast<std::size_t>(std::min<std::uint64_t>(n, m.size - offset));
    for (;;) {
      ssize_t r = ::pread(fd_, buf, n, static_cast<off_t>(m.offset + offset));
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR) fail_errno("read " + path_);
    }
  }

  std::string member_text(const std::string& name, std::size_t max) const {
    auto it = members_.find(name);
    if (it == members_.end()) throw std::runtime_error(path_ + " has no " + name + " (not a tar of an OCI layout?)");
    if (it->second.size > max) throw std::runtime_error(path_ + ": " + name + " is too large");
    std::string out(static_cast<std::size_t>(it->second.size), '\0');
    std::size_t got = 0;
    while (got < out.size()) {
      std::size_t r = read_member(it->second, got, out.data() + got, out.size() - got);
      if (r == 0) throw std::runtime_error(path_ + " ends inside " + name);
      got += r;
    }
    return out;
  }

  // One pass over the headers: names and where each member's bytes are.
  void index_members() {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail_errno("stat " + path_);
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    std::uint64_t pos = 0;
    std::string long_name;
    std::array<char, kBlock> h{};
    while (pos + kBlock <= file_size) {
      if (read_member({0, file_size}, pos, h.data(), kBlock) != kBlock) throw std::runtime_error(path_ + ": short read");
      if (std::all_of(h.begin(), h.end(), [](char c) { return c == 0; })) break;
      if (std::memcmp(h.data() + 257, "ustar", 5) != 0) throw std::runtime_error(path_ + " is not a tar archive");
      std::uint64_t size = parse_tar_size(h.data() + 124);
      std::uint64_t data = pos + kBlock;
      if (data + size > file_size) throw std::runtime_error(path_ + " is truncated");
      char type = h[156];
      if (type == 'x' || type == 'L') {
        if (size > 65536) throw std::runtime_error(path_ + ": extended header too large");
        std::string ext(static_cast<std::size_t>(size), '\0');
        read_member({data, size}, 0, ext.data(), ext.size());
        if (type == 'L') {
          long_name = c_field(ext.data(), ext.size());
        } else {
          // PAX records: "<len> key=value\n"
          std::size_t i = 0;
          while (i < ext.size()) {
            std::size_t sp = ext.find(' ', i);
            if (sp == std::string::npos) break;
            std::size_t len = std::stoul(ext.substr(i, sp - i));
            if (len == 0 || i + len > ext.size()) break;
            std::string rec = ext.substr(sp + 1, len - (sp - i) - 2);
            if (rec.rfind("path=", 0) == 0) long_name = rec.substr(5);
            i += len;
          }
        }
      } else if (type == '0' || type == '\0') {
        std::string name = long_name;
        if (name.empty()) {
          name = c_field(h.data(), 100);
          std::string prefix = c_field(h.data() + 345, 155);
          if (!prefix.empty()) name = prefix + "/" + name;
        }
        members_[clean_name(name)] = {data, size};
        long_name.clear();
      } else {
        long_name.clear();
      }
      pos = data + (size + kBlock - 1) / kBlock * kBlock;
    }
  }

  std::string path_;
  int fd_ = -1;
  std::unordered_map<std::string, Member> members_;
};

}  // namespace

bool is_index_media_type(std::string_view t) {
  return t == "application/vnd.oci.image.index.v1+json" ||
         t == "application/vnd.docker.distribution.manifest.list.v2+json";
}

bool is_manifest_media_type(std::string_view t) {
  return is_index_media_type(t) || t == "application/vnd.oci.image.manifest.v1+json" ||
         t == "application/vnd.docker.distribution.manifest.v2+json";
}

ManifestLinks parse_manifest_links(std::string_view body) {
  json doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) throw std::runtime_error("manifest is not a JSON object");
  ManifestLinks links;
  if (auto s = doc.find("subject"); s != doc.end()) links.subject = descriptor_from(*s, "subject");
  std::string media_type = string_field(doc, "mediaType");
  if (auto list = doc.find("manifests"); list != doc.end() || is_index_media_type(media_type)) {
    links.is_index = true;
    if (list == doc.end() || !list->is_array()) throw std::runtime_error("index has no manifests list");
    for (std::size_t i = 0; i < list->size(); ++i)
      links.manifests.push_back(descriptor_from((*list)[i], "manifests[" + std::to_string(i) + "]"));
    return links;
  }
  auto config = doc.find("config");
  if (config == doc.end()) throw std::runtime_error("manifest has neither manifests nor config");
  links.blobs.push_back(descriptor_from(*config, "config"));
  if (auto layers = doc.find("layers"); layers != doc.end()) {
    if (!layers->is_array()) throw std::runtime_error("layers is not a list");
    for (std::size_t i = 0; i < layers->size(); ++i) {
      if ((*layers)[i].is_object() && (*layers)[i].contains("urls")) continue;  // non-distributable
      links.blobs.push_back(descriptor_from((*layers)[i], "layers[" + std::to_string(i) + "]"));
    }
  }
  return links;
}

std::vector<Descriptor> select_platforms(const std::vector<Descriptor>& entries, const std::vector<Platform>& wanted) {
  if (wanted.empty()) return entries;
  std::vector<Descriptor> out;
  for (const auto& e : entries) {
    if (!e.platform || e.platform->os == "unknown") continue;
    if (platform_wanted(*e.platform, wanted)) out.push_back(e);
  }
  return out;
}

void LayoutWriter::add_blob_bytes(const Digest& digest, std::string_view bytes) {
  add_blob(digest, bytes.size(), [bytes](std::uint64_t offset, char* buf, std::size_t n) {
    if (offset >= bytes.size()) return std::size_t{0};
    n = std::min<std::size_t>(n, bytes.size() - static_cast<std::size_t>(offset));
    std::memcpy(buf, bytes.data() + offset, n);
    return n;
  });
}

void LayoutWriter::add_ref(Descriptor top) {
  // A later ref with the same name replaces an earlier one of this run.
  std::erase_if(refs_, [&](const Descriptor& d) { return !ref_name(top).empty() && ref_name(d) == ref_name(top); });
  refs_.push_back(std::move(top));
}

std::unique_ptr<LayoutWriter> LayoutWriter::to_directory(const fs::path& dir) {
  return std::make_unique<DirectoryWriter>(dir);
}

std::unique_ptr<LayoutWriter> LayoutWriter::to_tar(const fs::path& file) { return std::make_unique<TarWriter>(file); }

std::unique_ptr<LayoutReader> LayoutReader::open(const fs::path& source) {
  std::error_code ec;
  if (fs::is_directory(source, ec)) return std::make_unique<DirectoryReader>(source);
  if (!fs::exists(source, ec)) throw std::runtime_error(source.string() + " does not exist");
  return std::make_unique<TarReader>(source);
}

void LayoutReader::load_index(std::string_view oci_layout, std::string_view index_text) {
  json layout = json::parse(oci_layout, nullptr, false);
  if (!layout.is_object() || string_field(layout, "imageLayoutVersion").empty())
    throw std::runtime_error("oci-layout has no imageLayoutVersion (not an OCI layout?)");
  json index = json::parse(index_text, nullptr, false);
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array())
    throw std::runtime_error("index.json is not an image index");
  for (std::size_t i = 0; i < index["manifests"].size(); ++i)
    refs_.push_back(descriptor_from(index["manifests"][i], "index.json manifests[" + std::to_string(i) + "]"));
}

std::string LayoutReader::read_small(const Digest& digest, std::size_t max_bytes) const {
  auto size = blob_size(digest);
  if (!size) throw std::runtime_error("the layout has no blob " + digest.str());
  if (*size > max_bytes)
    throw std::runtime_error("blob " + digest.str() + " has " + std::to_string(*size) + " bytes, over the limit of " +
                             std::to_string(max_bytes));
  std::string out(static_cast<std::size_t>(*size), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    std::size_t n = read_blob(digest, got, out.data() + got, out.size() - got);
    if (n == 0) throw std::runtime_error("blob " + digest.str() + " is shorter than its file size");
    got += n;
  }
  return out;
}

bool LayoutReader::verify(const Digest& digest) const {
  auto size = blob_size(digest);
  if (!size) return false;
  DigestHasher hasher(digest.algorithm());
  std::vector<char> buf(kChunk);
  std::uint64_t done = 0;
  while (done < *size) {
    std::size_t n = read_blob(digest, done, buf.data(), buf.size());
    if (n == 0) return false;
    hasher.update(buf.data(), n);
    done += n;
  }
  return hasher.finish() == digest;
}

std::string format_utc(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<std::int64_t> parse_utc(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (!end || *end != '\0') return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm));
}

}  // namespace regcache::cache
