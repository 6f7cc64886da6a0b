#include "support/checks.h"

namespace regcache::test {

void check_layout_matches(const GeneratedImage& image, const std::filesystem::path& out, const std::string& tag) {
  OciLayoutContents pulled = read_oci_layout(out, tag);
  CHECK_MESSAGE(pulled.top_digest == image.top.digest, "tag " << tag << " in " << out);
  CHECK_MESSAGE(pulled.corrupt_blobs.empty(), "blobs whose bytes do not match their digest in " << out);
  for (const auto& digest : image.all_digests())
    CHECK_MESSAGE(pulled.blob_digests.count(digest) == 1, "missing from the pulled layout: " << digest);
  for (const auto& digest : pulled.blob_digests)
    CHECK_MESSAGE(image.all_digests().count(digest) == 1, "pulled layout has a blob that was never pushed: " << digest);
}

}  // namespace regcache::test
