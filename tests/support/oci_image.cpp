#include "support/oci_image.h"

#include <Poco/DeflatingStream.h>

#include <openssl/rand.h>

#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "support/files.h"

namespace regcache::test {
namespace {

using nlohmann::json;

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t off = 0; off < n;) {
    int chunk = static_cast<int>(std::min<std::size_t>(n - off, 1 << 20));
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data() + off), chunk) != 1)
      throw std::runtime_error("RAND_bytes failed");
    off += static_cast<std::size_t>(chunk);
  }
  return out;
}

// A ustar archive with one regular file.
std::string tar_with_one_file(const std::string& name, const std::string& content) {
  char header[512] = {};
  std::snprintf(header, 100, "%s", name.c_str());
  std::snprintf(header + 100, 8, "%07o", 0644);
  std::snprintf(header + 108, 8, "%07o", 0);
  std::snprintf(header + 116, 8, "%07o", 0);
  std::snprintf(header + 124, 12, "%011llo", static_cast<unsigned long long>(content.size()));
  std::snprintf(header + 136, 12, "%011o", 1700000000U);
  header[156] = '0';
  std::memcpy(header + 257, "ustar", 6);  // magic "ustar\0"
  std::memcpy(header + 263, "00", 2);     // version
  std::memset(header + 148, ' ', 8);      // checksum counts as spaces while summing
  unsigned sum = 0;
  for (unsigned char c : header) sum += c;
  std::snprintf(header + 148, 8, "%06o", sum);  // six digits, NUL, then the space left in place

  std::string tar(header, sizeof header);
  tar += content;
  tar.append((512 - content.size() % 512) % 512, '\0');
  tar.append(1024, '\0');  // end-of-archive marker
  return tar;
}

std::string gzip(const std::string& bytes) {
  std::ostringstream out;
  Poco::DeflatingOutputStream deflater(out, Poco::DeflatingStreamBuf::STREAM_GZIP, 1);
  deflater.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  deflater.close();
  return out.str();
}

OciDescriptor write_blob(const std::filesystem::path& layout, const std::string& media_type, const std::string& bytes) {
  OciDescriptor d{media_type, sha256_digest(bytes), bytes.size()};
  write_file(layout / "blobs" / "sha256" / d.digest.substr(7), bytes);
  return d;
}

json to_json(const OciDescriptor& d) { return {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}}; }

void start_layout(const std::filesystem::path& layout) {
  std::filesystem::create_directories(layout / "blobs" / "sha256");
  write_file(layout / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
}

void write_index_json(const std::filesystem::path& layout, const OciDescriptor& top, const std::string& tag) {
  json entry = to_json(top);
  entry["annotations"] = {{"org.opencontainers.image.ref.name", tag}};
  json index = {{"schemaVersion", 2}, {"mediaType", kOciIndexType}, {"manifests", json::array({entry})}};
  write_file(layout / "index.json", index.dump());
}

GeneratedManifest write_image(const std::filesystem::path& layout, const std::string& architecture,
                              const std::vector<std::size_t>& layer_sizes) {
  GeneratedManifest image;
  image.os = "linux";
  image.architecture = architecture;
  json diff_ids = json::array();
  json layers = json::array();
  for (std::size_t i = 0; i < layer_sizes.size(); ++i) {
    std::string tar = tar_with_one_file("layer-" + std::to_string(i) + ".bin", random_bytes(layer_sizes[i]));
    diff_ids.push_back(sha256_digest(tar));
    image.layers.push_back(write_blob(layout, kOciLayerGzipType, gzip(tar)));
    layers.push_back(to_json(image.layers.back()));
  }
  json config = {{"architecture", architecture},
                 {"os", image.os},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  image.config = write_blob(layout, kOciConfigType, config.dump());
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifestType},
                   {"config", to_json(image.config)},
                   {"layers", layers}};
  image.manifest = write_blob(layout, kOciManifestType, manifest.dump());
  return image;
}

}  // namespace

std::vector<OciDescriptor> GeneratedImage::blobs() const {
  std::vector<OciDescriptor> out;
  for (const auto& m : manifests) {
    out.push_back(m.config);
    out.insert(out.end(), m.layers.begin(), m.layers.end());
  }
  return out;
}

std::set<std::string> GeneratedImage::all_digests() const {
  std::set<std::string> out{top.digest};
  for (const auto& m : manifests) out.insert(m.manifest.digest);
  for (const auto& b : blobs()) out.insert(b.digest);
  return out;
}

std::string GeneratedImage::bytes_of(const std::string& digest) const {
  return read_file(layout / "blobs" / "sha256" / digest.substr(digest.find(':') + 1));
}

GeneratedImage make_oci_image(const std::filesystem::path& dir, const std::string& tag,
                              const std::vector<std::size_t>& layer_sizes) {
  GeneratedImage image{dir, tag, {}, {}};
  start_layout(dir);
  image.manifests.push_back(write_image(dir, "amd64", layer_sizes));
  image.top = image.manifests.front().manifest;
  write_index_json(dir, image.top, tag);
  return image;
}

GeneratedImage make_oci_index(const std::filesystem::path& dir, const std::string& tag,
                              const std::vector<std::size_t>& layer_sizes) {
  GeneratedImage image{dir, tag, {}, {}};
  start_layout(dir);
  json entries = json::array();
  for (const char* arch : {"amd64", "arm64"}) {
    image.manifests.push_back(write_image(dir, arch, layer_sizes));
    json entry = to_json(image.manifests.back().manifest);
    entry["platform"] = {{"os", "linux"}, {"architecture", arch}};
    entries.push_back(entry);
  }
  json index = {{"schemaVersion", 2}, {"mediaType", kOciIndexType}, {"manifests", entries}};
  image.top = write_blob(dir, kOciIndexType, index.dump());
  write_index_json(dir, image.top, tag);
  return image;
}

OciLayoutContents read_oci_layout(const std::filesystem::path& dir, const std::string& tag) {
  OciLayoutContents contents;
  json index = json::parse(read_file(dir / "index.json"), nullptr, false);
  if (index.is_object() && index.contains("manifests")) {
    for (const auto& entry : index["manifests"]) {
      std::string name = entry.value("annotations", json::object()).value("org.opencontainers.image.ref.name", "");
      if (name == tag) contents.top_digest = entry.value("digest", "");
    }
  }
  std::error_code ec;
  for (const auto& file : std::filesystem::directory_iterator(dir / "blobs" / "sha256", ec)) {
    std::string digest = "sha256:" + file.path().filename().string();
    if (sha256_digest(read_file(file.path())) == digest)
      contents.blob_digests.insert(digest);
    else
      contents.corrupt_blobs.push_back(digest);
  }
  return contents;
}

}  // namespace regcache::test
