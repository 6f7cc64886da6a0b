#pragma once
// Carrying cached content between machines: what the store holds under a
// manifest (for ls and export), writing it to an OCI layout, and importing a
// layout into the store with its tag mappings.
//
// Works on the store and the metadata directly (no HTTP), so it runs with the
// server stopped or running: blobs are published by the store's atomic
// rename, rows go through the metadata store (SQLite WAL, multi-process safe).
//
// Import invariants:
// - Every digest of the selection is verified (sha256 of the bytes) before
//   anything is written: a corrupt layout publishes nothing.
// - Content goes in first, rows next, tags last: a tag never names content
//   that is not stored.
// - Idempotent: content already stored and tags already pointing at the same
//   digest are left untouched; a second import changes nothing.
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cache/blob_store.h"
#include "cache/oci_layout.h"
#include "db/metadata_store.h"

namespace regcache::cache {

// What the store holds under one manifest.
struct StoredImage {
  Digest top = sha256_of("");
  std::string media_type;
  std::vector<Descriptor> manifests;  // the top one first, then the index children that are stored
  std::vector<Descriptor> blobs;      // configs and layers, each once
  std::vector<Digest> missing_manifests;  // index children not stored (e.g. platforms never pulled)
  std::vector<Digest> missing_blobs;      // configs or layers of stored manifests that are not stored
  std::vector<Platform> platforms;    // of the stored images
  std::uint64_t stored_bytes = 0;     // manifests + blobs present, each digest once
  std::int64_t last_access = 0;       // of the top manifest's row
};

// The stored image `top` of repository `repo` in namespace `ns` (whose links say
// what media type each manifest is served as). Throws std::runtime_error when
// the top manifest is not stored or unreadable.
StoredImage walk_stored_image(BlobStore& blobs, db::MetadataStore& meta, const std::string& ns,
                              const std::string& repo, const Digest& top,
                              std::size_t max_manifest_bytes);

// Called after each object copied: (objects done, bytes done).
using TransferProgress = std::function<void(std::size_t objects, std::uint64_t bytes)>;

struct ExportItem {
  std::string ns;    // upstream name; "" = hosted
  std::string repo;
  std::string tag;   // "" when exported by digest
  Digest digest = sha256_of("");
  std::int64_t confirmed_at = 0;
};

struct TransferStats {
  std::size_t images = 0;
  std::size_t objects_copied = 0;
  std::size_t objects_present = 0;  // already there: not copied again
  std::uint64_t bytes_copied = 0;
  std::size_t tags_set = 0;        // import: tags created or moved
  std::size_t tags_unchanged = 0;  // import: already pointing there
  std::vector<std::string> notes;  // e.g. platforms of an index not cached
};

// Writes every item into `out` (blobs, then an index.json entry each with its
// origin annotations); does not call out.finish(). Index children that are not
// stored are left out and noted. Throws std::runtime_error naming the image
// when a stored manifest's config or layer is missing.
TransferStats export_images(BlobStore& blobs, db::MetadataStore& meta, const std::vector<ExportItem>& items,
                            LayoutWriter& out, std::size_t max_manifest_bytes, const TransferProgress& progress = {});

// Where one index.json entry of a layout goes.
struct ImportItem {
  Descriptor top;
  std::string ns;
  std::string repo;
  std::string tag;  // "" = content only, no tag
  std::int64_t confirmed_at = 0;
};

// The items named by a regcache export's annotations. Throws std::runtime_error
// for an entry without io.regcache.repository (a layout from another tool:
// name a target with --into instead).
std::vector<ImportItem> items_from_annotations(const LayoutReader& layout);

// Refused imports: a corrupt or incomplete layout. Nothing was written.
class ImportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Imports the items. Hosted targets (ns "") need every index child in the
// layout; mirrored ones take an index with only some platforms present (the
// others are fetched later when online, or answered 404 offline).
TransferStats import_layout(BlobStore& blobs, db::MetadataStore& meta, const LayoutReader& layout,
                            const std::vector<ImportItem>& items, std::size_t max_manifest_bytes,
                            std::int64_t now, const TransferProgress& progress = {});

}  // namespace regcache::cache
