#pragma once
// Which blob store regcache uses (the `blobs` config key) and the one factory
// that opens it, for the server and the operator commands alike (like
// db/open_metadata_store.h for metadata).
#include <chrono>
#include <cstdint>
#include <filesystem>

#include "cache/blob_store.h"
#include "cache/s3/s3_client.h"

namespace regcache::cache {

enum class BlobBackend { Local, S3 };

struct BlobSettings {
  BlobBackend backend = BlobBackend::Local;  // local: data_dir/blobs (cache/blob_store.h)
  // s3: endpoint, bucket, region, credentials (secret read from
  // blobs.secret_key_file), addressing; the client's retry/timeouts as defaulted.
  s3::ClientConfig s3;
  std::uint64_t multipart_threshold = 64ull << 20;  // s3: from this size on, multipart
  std::uint64_t part_size = 16ull << 20;            // s3: >= 5 MiB
  // s3: bound of the local tier (cache/tiered_blob_store.h) in data_dir/blob-cache;
  // 0 = no local tier, every read goes to S3.
  std::uint64_t local_cache_bytes = 0;
  // s3 (blobs.redirect): answer a GET of a stored blob with a 307 to a presigned
  // URL valid this long, instead of streaming the bytes through regcache.
  struct Redirect {
    bool enabled = false;
    std::chrono::seconds expires{1200};
  } redirect;
};

// Opens the configured store: the local store in data_dir, or an S3 bucket
// (cache/s3/s3_blob_store.h) whose writes spool under data_dir/s3-spool, behind a
// local tier of hot blobs in data_dir/blob-cache when local_cache_bytes > 0. Opening
// an S3 store sends nothing: an unreachable endpoint or a missing bucket shows
// on the first request (503) and in readiness.
BlobStorePtr open_blob_store(const BlobSettings& settings, const std::filesystem::path& data_dir);

// "local" or "s3".
const char* backend_name(BlobBackend backend);

}  // namespace regcache::cache
