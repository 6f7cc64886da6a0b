#pragma once
// Maps a request path to the registry resource it names (OCI distribution
// spec, "Endpoints"). Pure: no validation of names or references beyond the
// path's shape; the handlers validate and answer NAME_INVALID & co.
#include <string>
#include <string_view>

namespace regcache::proxy {

enum class Resource {
  Base,        // /v2/
  Catalog,     // /v2/_catalog
  Manifest,    // /v2/<name>/manifests/<reference>
  Blob,        // /v2/<name>/blobs/<digest>
  UploadStart, // /v2/<name>/blobs/uploads/
  Upload,      // /v2/<name>/blobs/uploads/<id>
  TagList,     // /v2/<name>/tags/list
  Referrers,   // /v2/<name>/referrers/<digest>
  Unknown,
};

struct Route {
  Resource resource = Resource::Unknown;
  std::string name;       // repository name as it appears in the path
  std::string reference;  // tag, digest or upload id
};

// `path` is the request target without its query string.
Route route(std::string_view path);

}  // namespace regcache::proxy
