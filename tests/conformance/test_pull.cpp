// Pull workflow (spec "Pull", end-1 to end-3): manifests and blobs by GET and HEAD,
// and what a registry answers for content it does not have.
#include "conformance.h"

using namespace conformance;

namespace {

// A digest no test ever pushes (sha256 of "hello world", as the official suite uses).
const std::string kUnknownDigest = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

}  // namespace

TEST_CASE("pull: GET /v2/ returns 200") {
  // "Determining Support": a 200 means the registry implements the specification.
  auto r = request("GET", "/v2/");
  CHECK_MESSAGE(r.status == 200, describe(r));
}

TEST_CASE("pull: GET manifest by tag returns 200 and the pushed bytes") {
  const std::string name = repo("pull-tag");
  Image image = push_image(name, "v1");
  auto r = get_manifest(name, "v1");
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(r.complete);
  CHECK(r.body == image.manifest.bytes);
}

TEST_CASE("pull: GET manifest by digest returns 200 and the pushed bytes") {
  const std::string name = repo("pull-digest");
  Image image = push_image(name, "v1");
  auto r = get_manifest(name, image.manifest.digest);
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(r.body == image.manifest.bytes);
  CHECK(sha256(r.body) == image.manifest.digest);
}

TEST_CASE("pull: GET manifest returns Docker-Content-Digest of the body") {
  // SHOULD contain the digest in Docker-Content-Digest; when present it is the
  // canonical digest of the returned manifest.
  const std::string name = repo("pull-dcd");
  Image image = push_image(name, "v1");
  for (const std::string& reference : {std::string("v1"), image.manifest.digest}) {
    CAPTURE(reference);
    auto r = get_manifest(name, reference);
    REQUIRE_MESSAGE(r.status == 200, describe(r));
    CHECK_MESSAGE(r.header("Docker-Content-Digest") == sha256(r.body), describe(r));
  }
}

TEST_CASE("pull: GET manifest Content-Type is the pushed type without parameters") {
  // Content-Type SHOULD match what the client pushed; the registry SHOULD NOT add
  // parameters to it.
  const std::string name = repo("pull-ctype");
  Image image = push_image(name, "v1");
  auto r = get_manifest(name, "v1");
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(r.header("Content-Type") == kManifestType);
}

TEST_CASE("pull: GET image index returns the index Content-Type and bytes") {
  const std::string name = repo("pull-index");
  Image a = push_image(name, "a");
  Image b = push_image(name, "b");
  Manifest index = image_index({a.manifest, b.manifest});
  push_manifest(name, "multi", index);
  for (const std::string& reference : {std::string("multi"), index.digest}) {
    CAPTURE(reference);
    auto r = get_manifest(name, reference);
    REQUIRE_MESSAGE(r.status == 200, describe(r));
    CHECK(r.body == index.bytes);
    CHECK(r.header("Content-Type") == kIndexType);
  }
}

TEST_CASE("pull: HEAD manifest by tag returns 200 with Docker-Content-Digest and Content-Length") {
  // MUST 200; SHOULD carry Docker-Content-Digest and the size in Content-Length.
  const std::string name = repo("pull-head-tag");
  Image image = push_image(name, "v1");
  auto r = get_manifest(name, "v1", "HEAD");
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(r.body.empty());
  CHECK(r.header("Docker-Content-Digest") == image.manifest.digest);
  CHECK(r.header("Content-Length") == std::to_string(image.manifest.bytes.size()));
}

TEST_CASE("pull: HEAD manifest by digest returns 200 with Docker-Content-Digest and Content-Length") {
  const std::string name = repo("pull-head-digest");
  Image image = push_image(name, "v1");
  auto r = get_manifest(name, image.manifest.digest, "HEAD");
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(r.body.empty());
  CHECK(r.header("Docker-Content-Digest") == image.manifest.digest);
  CHECK(r.header("Content-Length") == std::to_string(image.manifest.bytes.size()));
}

TEST_CASE("pull: GET unknown manifest tag returns 404 MANIFEST_UNKNOWN") {
  const std::string name = repo("pull-unknown-tag");
  push_image(name, "v1");
  auto r = get_manifest(name, "no-such-tag");
  CHECK_OCI_ERROR(r, 404, {"MANIFEST_UNKNOWN"});
}

TEST_CASE("pull: GET unknown manifest digest returns 404 MANIFEST_UNKNOWN") {
  const std::string name = repo("pull-unknown-digest");
  push_image(name, "v1");
  auto r = get_manifest(name, kUnknownDigest);
  CHECK_OCI_ERROR(r, 404, {"MANIFEST_UNKNOWN"});
}

TEST_CASE("pull: HEAD unknown manifest returns 404") {
  const std::string name = repo("pull-head-unknown");
  push_image(name, "v1");
  CHECK(get_manifest(name, "no-such-tag", "HEAD").status == 404);
  CHECK(get_manifest(name, kUnknownDigest, "HEAD").status == 404);
}

TEST_CASE("pull: GET manifest of an unknown repository returns 404") {
  // "An attempt to pull a nonexistent repository MUST return response code 404"; the
  // spec names no code: NAME_UNKNOWN and MANIFEST_UNKNOWN both describe it.
  const std::string name = repo("pull-no-repo");
  CHECK_OCI_ERROR(get_manifest(name, "v1"), 404, {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"});
  CHECK_OCI_ERROR(get_manifest(name, kUnknownDigest), 404, {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"});
  CHECK(get_manifest(name, "v1", "HEAD").status == 404);
}

TEST_CASE("pull: GET and HEAD manifest with an invalid tag name return 404") {
  // The official suite asks for ".INVALID_MANIFEST_NAME" (not a valid tag: it starts
  // with a dot) and expects exactly 404: such a manifest is "not found in the
  // repository". Any 4xx body format is allowed; a JSON one must be the error shape.
  const std::string name = repo("pull-invalid-tag");
  push_image(name, "v1");
  CHECK(get_manifest(name, ".INVALID_MANIFEST_NAME", "HEAD").status == 404);
  auto r = get_manifest(name, ".INVALID_MANIFEST_NAME");
  CHECK_OCI_ERROR(r, 404, {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "TAG_INVALID"}, false);
}

TEST_CASE("pull: GET manifest with a malformed digest reference returns 400 or 404") {
  // A reference MUST be a tag or a digest; "sha256:totallywrong" is neither. The
  // endpoint table gives 404 as the failure of end-3, the official suite accepts 400
  // or 404 for this reference; either way the answer is a client error with an OCI
  // error body, never a server error. regcache answers 400 DIGEST_INVALID.
  const std::string name = repo("pull-bad-digest");
  push_image(name, "v1");
  for (const std::string& reference :
       {std::string("sha256:totallywrong"), std::string("sha256:0123456789abcdef0123456789abcdef")}) {
    CAPTURE(reference);
    auto r = get_manifest(name, reference);
    if (regcache_contract())
      CHECK_OCI_ERROR(r, 400, {"DIGEST_INVALID"});
    else if (r.status == 404)
      CHECK_OCI_ERROR(r, 404, {"MANIFEST_UNKNOWN"}, false);
    else
      CHECK_OCI_ERROR(r, 400, {"DIGEST_INVALID", "MANIFEST_INVALID", "TAG_INVALID"});
  }
}

TEST_CASE("pull: GET blob returns 200 and the blob bytes") {
  // MUST 200 with the blob; a Docker-Content-Digest header, if present, MUST match.
  const std::string name = repo("pull-blob");
  Image image = push_image(name, "v1");
  for (const Blob& blob : {image.config, image.layer}) {
    CAPTURE(blob.digest);
    auto r = request("GET", "/v2/" + name + "/blobs/" + blob.digest);
    REQUIRE_MESSAGE(r.status == 200, describe(r));
    CHECK(r.complete);
    CHECK(r.body == blob.bytes);
    if (r.has_header("Docker-Content-Digest")) CHECK(r.header("Docker-Content-Digest") == blob.digest);
  }
}

TEST_CASE("pull: GET blob returns Docker-Content-Digest") {
  // SHOULD contain the digest in Docker-Content-Digest.
  const std::string name = repo("pull-blob-dcd");
  Image image = push_image(name, "v1");
  auto r = request("GET", "/v2/" + name + "/blobs/" + image.layer.digest);
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(r.header("Docker-Content-Digest") == image.layer.digest);
}

TEST_CASE("pull: HEAD blob returns 200 with Docker-Content-Digest and Content-Length") {
  const std::string name = repo("pull-blob-head");
  Image image = push_image(name, "v1");
  auto r = request("HEAD", "/v2/" + name + "/blobs/" + image.layer.digest);
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  CHECK(r.body.empty());
  CHECK(r.header("Docker-Content-Digest") == image.layer.digest);
  CHECK(r.header("Content-Length") == std::to_string(image.layer.bytes.size()));
}

TEST_CASE("pull: GET unknown blob returns 404 BLOB_UNKNOWN") {
  const std::string name = repo("pull-blob-unknown");
  push_image(name, "v1");
  CHECK_OCI_ERROR(request("GET", "/v2/" + name + "/blobs/" + kUnknownDigest), 404, {"BLOB_UNKNOWN"});
}

TEST_CASE("pull: HEAD unknown blob returns 404") {
  const std::string name = repo("pull-blob-head-unknown");
  push_image(name, "v1");
  auto r = request("HEAD", "/v2/" + name + "/blobs/" + kUnknownDigest);
  CHECK_MESSAGE(r.status == 404, describe(r));
}

TEST_CASE("pull: GET blob of an unknown repository returns 404") {
  const std::string name = repo("pull-blob-no-repo");
  CHECK_OCI_ERROR(request("GET", "/v2/" + name + "/blobs/" + kUnknownDigest), 404, {"BLOB_UNKNOWN", "NAME_UNKNOWN"});
  CHECK(request("HEAD", "/v2/" + name + "/blobs/" + kUnknownDigest).status == 404);
}

TEST_CASE("pull: GET blob with a malformed digest returns 400 DIGEST_INVALID or 404") {
  // The endpoint table lists 404 for end-2; a malformed digest is also fairly a 400
  // DIGEST_INVALID (docker-registry and regcache answer that).
  const std::string name = repo("pull-blob-bad-digest");
  push_image(name, "v1");
  auto r = request("GET", "/v2/" + name + "/blobs/sha256:0123");
  if (r.status == 404 && !regcache_contract())
    CHECK_OCI_ERROR(r, 404, {"BLOB_UNKNOWN"}, false);
  else
    CHECK_OCI_ERROR(r, 400, {"DIGEST_INVALID"});
}

TEST_CASE("pull: GET blob supports Range requests") {
  // A registry SHOULD support the Range request header (RFC 9110).
  const std::string name = repo("pull-blob-range");
  Image image = push_image(name, "v1");
  const std::string& bytes = image.layer.bytes;
  auto r = request("GET", "/v2/" + name + "/blobs/" + image.layer.digest, {{"Range", "bytes=10-99"}});
  REQUIRE_MESSAGE(r.status == 206, describe(r));
  CHECK(r.body == bytes.substr(10, 90));
  CHECK(r.header("Content-Range") == "bytes 10-99/" + std::to_string(bytes.size()));
}
