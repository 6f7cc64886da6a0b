#pragma once
// Shared plumbing of the OCI distribution-spec v1.1.1 conformance suite.
//
// The registry under test is chosen by the environment (see README.md):
//   CONFORMANCE_TARGET=regcache         (default) REGCACHE_BINARY serve --upstream none
//   CONFORMANCE_TARGET=docker-registry  Debian's docker-registry, deletes enabled
//   CONFORMANCE_TARGET=url              a running registry at CONFORMANCE_URL
//   OCI_NAMESPACE                       prefix of every repository (default conformance/test)
// The server is started on first use and stopped when the process exits, so a whole
// run shares one server while a single test case (one CTest test) starts its own.
//
// Every test case works in repositories of its own (repo("slug") adds a random
// suffix), so test cases are independent of each other and of their order.
#include <doctest/doctest.h>

#include <cstddef>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/http_client.h"

namespace conformance {

using nlohmann::json;
using regcache::test::HttpHeaders;
using regcache::test::HttpResponse;

inline constexpr const char* kManifestType = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kIndexType = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kConfigType = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kLayerType = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr const char* kEmptyType = "application/vnd.oci.empty.v1+json";
inline constexpr const char* kEmptyDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

// ---- the registry under test ----------------------------------------------------

// "regcache", "docker-registry" or "url".
const std::string& target_name();
// True when the target is regcache: where the spec leaves a choice (MAY, or a SHOULD
// with an allowed alternative), tests also assert the choice regcache documents
// (issue 3: "Local registry: push, content discovery and content management").
bool regcache_contract();
// "http://127.0.0.1:PORT", starting the target on first use.
const std::string& base_url();
// OCI_NAMESPACE + "/" + slug + "-" + random hex: a repository no other test uses.
std::string repo(const std::string& slug);

// ---- HTTP -----------------------------------------------------------------------

// `target` is a path ("/v2/...") relative to base_url() or an absolute URL.
HttpResponse request(const std::string& method, const std::string& target, const HttpHeaders& headers = {},
                     const std::string& body = {});
// Like request(), for a request the server may answer before reading the whole body
// (a 413 for an oversized manifest): a failed write does not lose the response that
// was sent. One connection, "Connection: close", no chunked responses.
HttpResponse request_early_reply(const std::string& method, const std::string& target, const HttpHeaders& headers,
                                 const std::string& body);
// A Location header value (absolute, or relative as the spec allows) as an absolute URL.
std::string resolve(const std::string& location);
// Path (and query) of an absolute or relative URL.
std::string path_of(const std::string& url);
// `url` with `name=value` added to its query (values percent-encoded as needed).
std::string with_query(const std::string& url, const std::string& name, const std::string& value);
// The target of a `Link: <url>; rel="next"` header, or "" when there is no such header.
// Sets `well_formed` to false for a Link header that does not have that shape.
std::string next_link(const HttpResponse& response, bool& well_formed);
// "status reason / headers / body (first 2 KiB)" for failure messages.
std::string describe(const HttpResponse& response);

// Problems with an error response, "" when none: status must be `status`, the body must
// be the spec's error document ({"errors":[{"code","message"?,"detail"?},...]}) with
// only codes the spec defines, and the first code one of `codes` (any when empty).
// With json_required false a non-JSON body is accepted (the spec lets 4xx bodies be in
// any format; only a JSON body must have that shape).
std::string error_problems(const HttpResponse& response, int status, std::initializer_list<const char*> codes,
                           bool json_required = true);

#define CHECK_OCI_ERROR(response, status, ...)                                                          \
  do {                                                                                                  \
    const std::string oci_problems_ = ::conformance::error_problems((response), (status), __VA_ARGS__); \
    CHECK_MESSAGE(oci_problems_.empty(), oci_problems_);                                                \
  } while (0)

// ---- content --------------------------------------------------------------------

std::string random_bytes(std::size_t n);
std::string random_hex(std::size_t n);
std::string sha256(const std::string& bytes);

struct Blob {
  std::string bytes;
  std::string digest;
  std::string media_type;
  json descriptor() const;  // {mediaType, digest, size}
};
Blob make_blob(std::size_t size, const std::string& media_type = kLayerType);
Blob make_config();   // a small random image config JSON
Blob empty_config();  // "{}" typed application/vnd.oci.empty.v1+json

// A manifest or index document and its identity.
struct Manifest {
  std::string bytes;
  std::string digest;
  std::string media_type;
  json descriptor() const;  // {mediaType, digest, size}
};
Manifest make_manifest(const json& document);  // media type from document["mediaType"]
// An image manifest naming `config` and `layers`; `extra` fields are merged in
// (artifactType, subject, annotations...).
Manifest image_manifest(const Blob& config, const std::vector<Blob>& layers, const json& extra = json::object());
Manifest image_index(const std::vector<Manifest>& manifests, const json& extra = json::object());

// POST then PUT ?digest=; REQUIREs 201.
void push_blob(const std::string& repo, const Blob& blob);
// PUT /v2/<repo>/manifests/<reference> with Content-Type = the manifest's media type.
HttpResponse put_manifest(const std::string& repo, const std::string& reference, const Manifest& manifest);
// put_manifest, REQUIREing 201.
void push_manifest(const std::string& repo, const std::string& reference, const Manifest& manifest);

// An image pushed to a repository: config and one layer blob, manifest tagged `tag`.
struct Image {
  Blob config;
  Blob layer;
  Manifest manifest;
};
Image push_image(const std::string& repo, const std::string& tag, const json& extra = json::object());

// GET /v2/<repo>/manifests/<reference> accepting every OCI and Docker manifest type.
HttpResponse get_manifest(const std::string& repo, const std::string& reference, const std::string& method = "GET");

// Starts an upload session (POST, Content-Length: 0); REQUIREs 202 and a Location.
// Returns the absolute session URL.
std::string start_upload(const std::string& repo, HttpResponse* post_response = nullptr);

// PATCH a chunk with Content-Range "<offset>-<offset+size-1>".
HttpResponse patch_chunk(const std::string& session_url, const std::string& chunk, std::size_t offset);

// "[a, b, c]" for messages.
std::string join(const std::vector<std::string>& items);
std::string join(const std::set<std::string>& items);

// Parsed body, or a discarded value (is_discarded()) when it is not JSON.
json parse(const std::string& body);

}  // namespace conformance
