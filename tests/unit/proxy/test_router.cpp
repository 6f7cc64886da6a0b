// Unit tests for request routing (proxy/router.h).
#include <doctest/doctest.h>

#include <string>

#include "proxy/router.h"

using namespace regcache::proxy;

namespace {

void check_route(const std::string& path, Resource resource, const std::string& name, const std::string& reference) {
  CAPTURE(path);
  Route r = route(path);
  CHECK(r.resource == resource);
  CHECK(r.name == name);
  CHECK(r.reference == reference);
}

void check_unknown(const std::string& path) { check_route(path, Resource::Unknown, "", ""); }

}  // namespace

TEST_CASE("router: base and catalog") {
  check_route("/v2/", Resource::Base, "", "");
  check_route("/v2", Resource::Base, "", "");
  check_route("/v2/_catalog", Resource::Catalog, "", "");
}

TEST_CASE("router: manifests") {
  check_route("/v2/busybox/manifests/latest", Resource::Manifest, "busybox", "latest");
  check_route("/v2/library/busybox/manifests/1.36", Resource::Manifest, "library/busybox", "1.36");
  check_route("/v2/a/b/c/manifests/latest", Resource::Manifest, "a/b/c", "latest");
  check_route("/v2/a/manifests/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
              Resource::Manifest, "a", "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("router: a name may contain a 'manifests' component") {
  check_route("/v2/a/manifests/b/manifests/x", Resource::Manifest, "a/manifests/b", "x");
  check_route("/v2/manifests/manifests/latest", Resource::Manifest, "manifests", "latest");
  check_route("/v2/blobs/manifests/uploads", Resource::Manifest, "blobs", "uploads");
}

TEST_CASE("router: blobs") {
  check_route("/v2/library/busybox/blobs/sha256:abc", Resource::Blob, "library/busybox", "sha256:abc");
  check_route("/v2/a/blobs/blobs/x", Resource::Blob, "a/blobs", "x");
}

TEST_CASE("router: uploads") {
  check_route("/v2/a/blobs/uploads/", Resource::UploadStart, "a", "");
  check_route("/v2/a/b/blobs/uploads/", Resource::UploadStart, "a/b", "");
  check_route("/v2/a/blobs/uploads/3f1e-uuid", Resource::Upload, "a", "3f1e-uuid");
  check_route("/v2/a/b/c/blobs/uploads/id", Resource::Upload, "a/b/c", "id");
}

TEST_CASE("router: tags and referrers") {
  check_route("/v2/library/busybox/tags/list", Resource::TagList, "library/busybox", "");
  check_route("/v2/a/referrers/sha256:abc", Resource::Referrers, "a", "sha256:abc");
  check_route("/v2/x/y/referrers/sha256:def", Resource::Referrers, "x/y", "sha256:def");
}

TEST_CASE("router: unknown paths") {
  check_unknown("");
  check_unknown("/");
  check_unknown("/v1/");
  check_unknown("/v1/busybox/manifests/latest");
  check_unknown("/v2x");
  check_unknown("/v3/");
  check_unknown("/v2/x");
  check_unknown("/v2/x/y");
  check_unknown("/v2/x/manifests/");   // empty reference
  check_unknown("/v2/x/blobs/");       // empty digest
  check_unknown("/v2/x/referrers/");   // empty digest
  check_unknown("/v2/x/tags/");
  check_unknown("/v2/x/tags/other");
  check_unknown("/v2/x/tags/list/");
  check_unknown("/v2/_catalog/");
  check_unknown("/v2/manifests/latest");  // no name
  check_unknown("/v2/x/manifests/a/b");
}
