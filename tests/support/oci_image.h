#pragma once
// Test images as OCI image layouts (oci-layout, index.json, blobs/sha256/...), ready
// for `skopeo copy oci:DIR:TAG docker://...`. Layers are real tar archives (one member
// of random bytes) compressed with gzip and typed ...layer.v1.tar+gzip, so skopeo
// pushes them unchanged and every digest survives the trip. Each call makes fresh
// random content, so no two tests share a blob.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace regcache::test {

inline constexpr const char* kOciManifestType = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndexType = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciConfigType = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kOciLayerGzipType = "application/vnd.oci.image.layer.v1.tar+gzip";

struct OciDescriptor {
  std::string media_type;
  std::string digest;  // "sha256:..."
  std::uint64_t size = 0;
};

struct GeneratedManifest {
  OciDescriptor manifest;  // the image manifest itself
  std::string os;
  std::string architecture;
  OciDescriptor config;
  std::vector<OciDescriptor> layers;
};

struct GeneratedImage {
  std::filesystem::path layout;  // the OCI layout directory
  std::string tag;
  OciDescriptor top;                         // what the tag names: a manifest, or an index
  std::vector<GeneratedManifest> manifests;  // one per platform (one for a plain image)

  std::string oci_reference() const { return "oci:" + layout.string() + ":" + tag; }
  // Config and layer descriptors of every manifest.
  std::vector<OciDescriptor> blobs() const;
  // top, every manifest, config and layer digest.
  std::set<std::string> all_digests() const;
  // The stored bytes of any blob of this layout (manifests included).
  std::string bytes_of(const std::string& digest) const;
};

// A linux/amd64 image with one gzip layer per entry of `layer_sizes` (uncompressed
// payload bytes). `dir` is created.
GeneratedImage make_oci_image(const std::filesystem::path& dir, const std::string& tag,
                              const std::vector<std::size_t>& layer_sizes);

// An image index naming two images, linux/amd64 and linux/arm64, each with its own
// config and random layers of `layer_sizes`.
GeneratedImage make_oci_index(const std::filesystem::path& dir, const std::string& tag,
                              const std::vector<std::size_t>& layer_sizes);

// What an OCI layout written by skopeo holds.
struct OciLayoutContents {
  std::string top_digest;                 // the index.json entry for the tag ("" if missing)
  std::set<std::string> blob_digests;     // every blobs/sha256/<hex> whose bytes hash to its name
  std::vector<std::string> corrupt_blobs; // blob files whose bytes do not match their name
};
OciLayoutContents read_oci_layout(const std::filesystem::path& dir, const std::string& tag);

}  // namespace regcache::test
