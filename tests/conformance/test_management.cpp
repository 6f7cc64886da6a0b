// Content management workflow (spec "Content Management", end-9 and end-10): deleting
// manifests, tags and blobs. Both targets run with deletion enabled; a registry with
// deletion disabled would answer 400 or 405 instead of 202.
#include "conformance.h"

using namespace conformance;

namespace {

const std::string kUnknownDigest = "sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

std::vector<std::string> tags_of(const std::string& name) {
  auto r = request("GET", "/v2/" + name + "/tags/list");
  REQUIRE_MESSAGE(r.status == 200, describe(r));
  json body = parse(r.body);
  std::vector<std::string> out;
  if (body.is_object() && body.contains("tags") && body["tags"].is_array())
    for (const auto& t : body["tags"]) out.push_back(t);
  return out;
}

HttpResponse delete_manifest(const std::string& name, const std::string& reference) {
  return request("DELETE", "/v2/" + name + "/manifests/" + reference);
}

}  // namespace

TEST_CASE("management: DELETE manifest by digest returns 202") {
  const std::string name = repo("mgmt-manifest");
  Image image = push_image(name, "v1");
  auto r = delete_manifest(name, image.manifest.digest);
  CHECK_MESSAGE(r.status == 202, describe(r));
}

TEST_CASE("management: deleted manifest returns 404 by digest and by tag") {
  // "Once deleted, a GET to /v2/<name>/manifests/<digest> and any tag pointing to that
  // digest will return a 404."
  const std::string name = repo("mgmt-manifest-gone");
  Image image = push_image(name, "v1");
  push_manifest(name, "v1-alias", image.manifest);
  push_image(name, "other");  // keeps the repository alive
  auto r = delete_manifest(name, image.manifest.digest);
  REQUIRE_MESSAGE(r.status == 202, describe(r));
  CHECK_OCI_ERROR(get_manifest(name, image.manifest.digest), 404, {"MANIFEST_UNKNOWN"});
  CHECK_OCI_ERROR(get_manifest(name, "v1"), 404, {"MANIFEST_UNKNOWN"});
  CHECK_OCI_ERROR(get_manifest(name, "v1-alias"), 404, {"MANIFEST_UNKNOWN"});
  CHECK(get_manifest(name, image.manifest.digest, "HEAD").status == 404);
  CHECK(get_manifest(name, "other").status == 200);
}

TEST_CASE("management: tags list no longer shows the tags of a deleted manifest") {
  // The official suite's "GET request to tags list should reflect manifest deletion".
  const std::string name = repo("mgmt-manifest-tags");
  Image image = push_image(name, "gone-1");
  push_manifest(name, "gone-2", image.manifest);
  push_image(name, "stays");
  REQUIRE(tags_of(name).size() == 3);
  auto r = delete_manifest(name, image.manifest.digest);
  REQUIRE_MESSAGE(r.status == 202, describe(r));
  auto tags = tags_of(name);
  CHECK_MESSAGE(tags == std::vector<std::string>{"stays"}, join(tags));
}

TEST_CASE("management: DELETE tag returns 202 or is refused with UNSUPPORTED") {
  // Upon success MUST 202; a registry with tag deletion disabled MUST answer 400 or 405
  // (the official suite checks the code UNSUPPORTED). regcache deletes tags.
  const std::string name = repo("mgmt-tag");
  Image image = push_image(name, "v1");
  auto r = delete_manifest(name, "v1");
  if (regcache_contract() || r.status == 202)
    CHECK_MESSAGE(r.status == 202, describe(r));
  else if (r.status == 405)
    CHECK_OCI_ERROR(r, 405, {"UNSUPPORTED"});
  else
    CHECK_OCI_ERROR(r, 400, {"UNSUPPORTED"});
}

TEST_CASE("management: DELETE tag removes the tag and only the tag") {
  // Once deleted, a GET of the tag returns 404. The manifest and its other tags stay.
  // (Nothing to check when the registry refuses tag deletion: see the test above.)
  const std::string name = repo("mgmt-tag-only");
  Image image = push_image(name, "v1");
  push_manifest(name, "v1-alias", image.manifest);
  auto r = delete_manifest(name, "v1");
  if (r.status != 202 && !regcache_contract()) {
    MESSAGE("tag deletion refused with " << r.status << ": nothing more to check");
    return;
  }
  REQUIRE_MESSAGE(r.status == 202, describe(r));
  CHECK_OCI_ERROR(get_manifest(name, "v1"), 404, {"MANIFEST_UNKNOWN"});
  CHECK(get_manifest(name, "v1", "HEAD").status == 404);
  CHECK(get_manifest(name, image.manifest.digest).status == 200);
  CHECK(get_manifest(name, "v1-alias").status == 200);
  auto tags = tags_of(name);
  CHECK_MESSAGE(tags == std::vector<std::string>{"v1-alias"}, join(tags));
}

TEST_CASE("management: DELETE blob returns 202 and the blob is gone") {
  const std::string name = repo("mgmt-blob");
  Blob blob = make_blob(512);
  push_blob(name, blob);
  auto r = request("DELETE", "/v2/" + name + "/blobs/" + blob.digest);
  CHECK_MESSAGE(r.status == 202, describe(r));
  CHECK_OCI_ERROR(request("GET", "/v2/" + name + "/blobs/" + blob.digest), 404, {"BLOB_UNKNOWN"});
  CHECK(request("HEAD", "/v2/" + name + "/blobs/" + blob.digest).status == 404);
}

TEST_CASE("management: DELETE unknown blob returns 404 BLOB_UNKNOWN") {
  // "If the blob is not found, a 404 Not Found code MUST be returned."
  const std::string name = repo("mgmt-blob-unknown");
  push_image(name, "v1");
  CHECK_OCI_ERROR(request("DELETE", "/v2/" + name + "/blobs/" + kUnknownDigest), 404, {"BLOB_UNKNOWN"});
}

TEST_CASE("management: DELETE blob in an unknown repository returns 404") {
  CHECK_OCI_ERROR(request("DELETE", "/v2/" + repo("mgmt-blob-no-repo") + "/blobs/" + kUnknownDigest), 404,
                  {"BLOB_UNKNOWN", "NAME_UNKNOWN"});
}

TEST_CASE("management: DELETE unknown manifest returns 404 MANIFEST_UNKNOWN") {
  const std::string name = repo("mgmt-manifest-unknown");
  push_image(name, "v1");
  CHECK_OCI_ERROR(delete_manifest(name, kUnknownDigest), 404, {"MANIFEST_UNKNOWN"});
}

TEST_CASE("management: DELETE manifest in an unknown repository returns 404") {
  // "If the repository does not exist, the response MUST return 404 Not Found."
  CHECK_OCI_ERROR(delete_manifest(repo("mgmt-no-repo"), kUnknownDigest), 404, {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"});
}

TEST_CASE("management: deleting a referrer removes it from the referrers list") {
  // The referrers list holds manifests of the repository; a deleted one is not listed.
  const std::string name = repo("mgmt-referrer");
  Image image = push_image(name, "v1");
  push_blob(name, empty_config());
  Manifest keep =
      image_manifest(empty_config(), {image.layer},
                     {{"artifactType", "application/vnd.conformance.keep"}, {"subject", image.manifest.descriptor()}});
  Manifest drop =
      image_manifest(empty_config(), {image.layer},
                     {{"artifactType", "application/vnd.conformance.drop"}, {"subject", image.manifest.descriptor()}});
  push_manifest(name, keep.digest, keep);
  push_manifest(name, drop.digest, drop);
  auto r = delete_manifest(name, drop.digest);
  REQUIRE_MESSAGE(r.status == 202, describe(r));
  auto listed = request("GET", "/v2/" + name + "/referrers/" + image.manifest.digest);
  REQUIRE_MESSAGE(listed.status == 200, describe(listed));
  json body = parse(listed.body);
  REQUIRE_MESSAGE((body.is_object() && body.contains("manifests") && body["manifests"].is_array()), describe(listed));
  std::vector<std::string> digests;
  for (const auto& d : body["manifests"]) digests.push_back(d.value("digest", ""));
  CHECK_MESSAGE(digests == std::vector<std::string>{keep.digest}, join(digests));
}
