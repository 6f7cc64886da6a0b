#include "cache/open_blob_store.h"

#include "cache/s3/s3_blob_store.h"
#include "cache/tiered_blob_store.h"

namespace regcache::cache {

BlobStorePtr open_blob_store(const BlobSettings& settings, const std::filesystem::path& data_dir) {
  switch (settings.backend) {
    case BlobBackend::S3: {
      S3BlobStoreOptions o;
      o.client = settings.s3;
      o.spool_dir = data_dir / "s3-spool";
      o.multipart_threshold = settings.multipart_threshold;
      o.part_size = settings.part_size;
      auto s3 = std::make_unique<S3BlobStore>(std::move(o));
      if (settings.local_cache_bytes == 0) return s3;
      return std::make_unique<TieredBlobStore>(std::move(s3),
                                               TieredBlobStoreOptions{data_dir / "blob-cache", settings.local_cache_bytes});
    }
    case BlobBackend::Local:
      break;
  }
  return std::make_unique<LocalBlobStore>(data_dir);
}

const char* backend_name(BlobBackend backend) { return backend == BlobBackend::S3 ? "s3" : "local"; }

}  // namespace regcache::cache
