#pragma once
// OCI image layouts (image-spec layout.md) and what a manifest points at: the
// format regcache export writes and regcache import reads, so skopeo, oras,
// crane and umoci can read and write the same thing.
//
//   DIR/
//   ├── oci-layout                 {"imageLayoutVersion": "1.0.0"}
//   ├── index.json                 one entry per exported tag or digest, with its origin
//   │                              in annotations (org.opencontainers.image.ref.name,
//   │                              io.regcache.namespace, .repository, .tag, .confirmed-at)
//   └── blobs/sha256/<64 hex>      every manifest, config and layer, named by digest
//
// A tar of that tree (regcache's own: ustar, index.json last) is read in place
// without unpacking it.
//
// Pure parts (manifest parsing, platform choice) have no I/O; the writers and
// readers stream: no blob is held in memory whole, manifests excepted (bounded).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/digest.h"
#include "common/image_ref.h"

namespace regcache::cache {

// Annotation keys regcache writes into index.json.
inline constexpr const char* kAnnotationRefName = "org.opencontainers.image.ref.name";
inline constexpr const char* kAnnotationNamespace = "io.regcache.namespace";      // upstream name, "" = hosted
inline constexpr const char* kAnnotationRepository = "io.regcache.repository";    // within that namespace
inline constexpr const char* kAnnotationTag = "io.regcache.tag";                  // absent for a digest
inline constexpr const char* kAnnotationConfirmedAt = "io.regcache.confirmed-at"; // RFC 3339, UTC

struct Descriptor {
  std::string media_type;
  Digest digest = sha256_of("");  // a placeholder until set
  std::uint64_t size = 0;
  std::optional<Platform> platform;
  std::string artifact_type;
  std::map<std::string, std::string> annotations;
};

// What one manifest references.
struct ManifestLinks {
  bool is_index = false;
  std::vector<Descriptor> manifests;  // an index's entries
  std::vector<Descriptor> blobs;      // an image's config and layers (non-distributable layers left out)
  std::optional<Descriptor> subject;
};

bool is_index_media_type(std::string_view media_type);
bool is_manifest_media_type(std::string_view media_type);

// Parses an image manifest or index (OCI or Docker schema 2). Throws
// std::runtime_error naming what is wrong when it is not one.
ManifestLinks parse_manifest_links(std::string_view body);

// The entries of an index whose platform is wanted (every entry when `wanted`
// is empty). With a filter, entries without a platform, or "unknown/unknown"
// (build attestations), are left out.
std::vector<Descriptor> select_platforms(const std::vector<Descriptor>& entries, const std::vector<Platform>& wanted);

// Reads up to `n` bytes at `offset`; 0 at the end.
using ReadAt = std::function<std::size_t(std::uint64_t offset, char* buf, std::size_t n)>;

// Writes a layout. Blobs are streamed in and verified against their digest as
// they pass; refs go to index.json at finish(). Destroying an unfinished writer
// leaves no index.json change (directory) or no file (tar).
class LayoutWriter {
 public:
  virtual ~LayoutWriter() = default;
  // A directory: created when missing; an existing layout is added to (its
  // index.json entries are kept unless a new ref has the same ref name).
  static std::unique_ptr<LayoutWriter> to_directory(const std::filesystem::path& dir);
  // A tar file: written to FILE.part and renamed to FILE by finish().
  static std::unique_ptr<LayoutWriter> to_tar(const std::filesystem::path& file);

  virtual bool has_blob(const Digest& digest) const = 0;
  // Copies `size` bytes from `read`. Throws std::runtime_error when they do not
  // hash to `digest` or are short; a directory then keeps nothing of them.
  virtual void add_blob(const Digest& digest, std::uint64_t size, const ReadAt& read) = 0;
  void add_blob_bytes(const Digest& digest, std::string_view bytes);
  // An index.json entry.
  void add_ref(Descriptor top);
  virtual void finish() = 0;
  std::uint64_t bytes_written() const { return bytes_written_; }

 protected:
  std::vector<Descriptor> refs_;
  std::uint64_t bytes_written_ = 0;
};

// Reads a layout directory or a tar of one.
class LayoutReader {
 public:
  virtual ~LayoutReader() = default;
  // Throws std::runtime_error when `source` is no OCI layout (missing or wrong
  // oci-layout, unreadable index.json).
  static std::unique_ptr<LayoutReader> open(const std::filesystem::path& source);

  // index.json's entries.
  const std::vector<Descriptor>& refs() const { return refs_; }
  // Size of the blob's file, nullopt when the layout does not have it.
  virtual std::optional<std::uint64_t> blob_size(const Digest& digest) const = 0;
  virtual std::size_t read_blob(const Digest& digest, std::uint64_t offset, char* buf, std::size_t n) const = 0;
  // A whole small blob (a manifest); throws when missing or over `max_bytes`.
  std::string read_small(const Digest& digest, std::size_t max_bytes) const;
  // Whether the blob's bytes hash to its digest (false when missing).
  bool verify(const Digest& digest) const;

 protected:
  void load_index(std::string_view oci_layout, std::string_view index_json);
  std::vector<Descriptor> refs_;
};

// ISO 8601 / RFC 3339 UTC ("2026-11-30T01:02:03Z") <-> unix seconds.
std::string format_utc(std::int64_t unix_seconds);
std::optional<std::int64_t> parse_utc(std::string_view text);

}  // namespace regcache::cache
