#pragma once
// A fresh bucket on the test process's RGW (CephRgw::shared()), emptied and
// removed at the end, and the secret key in a private file for regcache's
// blobs.secret_key_file. Header-only: only the s3_tests binary links the S3
// client, while every test binary compiles tests/support/*.cpp.
#include <sys/stat.h>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/s3/s3_client.h"
#include "support/ceph_rgw.h"
#include "support/files.h"

namespace regcache::test {

struct S3Bucket {
  std::filesystem::path secret_file;
  s3::ClientConfig client;

  S3Bucket(const std::filesystem::path& dir, const std::string& suffix) {
    auto& rgw = CephRgw::shared();
    client.endpoint = rgw.endpoint();
    client.bucket = rgw.unique_bucket_name(suffix);
    client.region = rgw.region();
    client.credentials = {rgw.access_key(), rgw.secret_key()};
    client.backoff_base = std::chrono::milliseconds(10);
    s3::Client(client).create_bucket();
    std::filesystem::create_directories(dir);
    secret_file = dir / "s3-secret";
    write_file(secret_file, rgw.secret_key() + "\n");
    ::chmod(secret_file.c_str(), 0600);
  }
  ~S3Bucket() {
    try {
      s3::Client c(client);
      for (const auto& u : c.list_multipart_uploads()) c.abort_multipart_upload(u.key, u.upload_id);
      for (const auto& k : keys()) c.delete_object(k);
      c.delete_bucket();
    } catch (const std::exception& e) {
      MESSAGE("cleaning up bucket " << client.bucket << ": " << e.what());
    }
  }
  S3Bucket(const S3Bucket&) = delete;
  S3Bucket& operator=(const S3Bucket&) = delete;

  nlohmann::json blobs_config() const {
    return {{"backend", "s3"},           {"endpoint", client.endpoint},
            {"bucket", client.bucket},   {"region", client.region},
            {"access_key", client.credentials.access_key}, {"secret_key_file", secret_file.string()}};
  }
  static std::string blob_key(const std::string& digest) {
    const std::string hex = digest.substr(digest.find(':') + 1);
    return "blobs/sha256/" + hex.substr(0, 2) + "/" + hex;
  }
  // The object of a committed blob, nullopt when the bucket has none.
  std::optional<std::string> object(const std::string& digest) const {
    std::string bytes;
    auto info = s3::Client(client).get_object(blob_key(digest), [&](const char* p, std::size_t n) { bytes.append(p, n); });
    if (!info) return std::nullopt;
    return bytes;
  }
  // Every object key in the bucket.
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    s3::Client(client).for_each_object("", [&](const s3::ListedObject& o) { out.push_back(o.key); });
    return out;
  }
  // Keys of the multipart uploads not completed nor aborted.
  std::vector<std::string> incomplete_uploads() const {
    std::vector<std::string> out;
    for (const auto& u : s3::Client(client).list_multipart_uploads()) out.push_back(u.key);
    return out;
  }
};

}  // namespace regcache::test
