// /v2/<name>/blobs/uploads/[<id>]: blob upload sessions of hosted repositories
//   POST   start a session; ?digest= monolithic upload; ?mount=&from= cross-repository mount
//   PATCH  append a chunk (Content-Range optional)
//   PUT    ?digest= finish, with an optional last chunk
//   GET    status;  DELETE  cancel
#include <charconv>

#include "proxy/registry_api.h"

namespace regcache::proxy {
namespace {

std::string upload_location(const std::string& name, const std::string& id) {
  return "/v2/" + name + "/blobs/uploads/" + id;
}

// Range header value for a session holding `size` bytes ("0-0" when empty, as
// distribution answers).
std::string range_of(std::uint64_t size) { return "0-" + std::to_string(size == 0 ? 0 : size - 1); }

void send_session(Exchange& ex, const std::string& name, const cache::UploadStatus& status,
                  Poco::Net::HTTPResponse::HTTPStatus code) {
  ex.response.setStatusAndReason(code);
  ex.response.set("Location", upload_location(name, status.id));
  ex.response.set("Range", range_of(status.size));
  ex.response.set("Docker-Upload-UUID", status.id);
  send_body(ex, "", "text/plain");
}

void send_blob_created(Exchange& ex, const std::string& name, const Digest& digest) {
  ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_CREATED);
  ex.response.set("Location", "/v2/" + name + "/blobs/" + digest.str());
  ex.response.set("Docker-Content-Digest", digest.str());
  send_body(ex, "", "text/plain");
}

std::optional<std::uint64_t> number(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Content-Range of a chunk: "<first>-<last>" (a "bytes " prefix is tolerated).
// Returns the first byte, after checking the range against Content-Length.
std::optional<std::uint64_t> chunk_start(Exchange& ex) {
  if (!ex.request.has("Content-Range")) return std::nullopt;
  std::string value = ex.request.get("Content-Range");
  if (value.rfind("bytes ", 0) == 0) value = value.substr(6);
  auto dash = value.find('-');
  auto first = dash == std::string::npos ? std::nullopt : number(std::string_view(value).substr(0, dash));
  auto last = dash == std::string::npos ? std::nullopt : number(std::string_view(value).substr(dash + 1));
  if (!first || !last || *last < *first)
    throw RegistryError(ErrorCode::UploadRangeInvalid, "malformed Content-Range '" + value + "'");
  if (ex.request.hasContentLength() &&
      static_cast<std::uint64_t>(ex.request.getContentLength64()) != *last - *first + 1)
    throw RegistryError(ErrorCode::UploadRangeInvalid, "Content-Range " + value + " does not match Content-Length");
  return first;
}

bool has_body(Exchange& ex) {
  return ex.request.getChunkedTransferEncoding() ||
         (ex.request.hasContentLength() && ex.request.getContentLength64() > 0);
}

}  // namespace

void RegistryApi::upload(Exchange& ex, const Route& r) {
  auto [origin, repo] = resolve_hosted(ex, r.name);
  const std::string& method = ex.request.getMethod();

  if (method == "POST") {
    if (std::string mount = query_param(ex.query, "mount"); !mount.empty()) {
      Digest digest = parse_digest(mount);
      std::string from = query_param(ex.query, "from");
      auto source = from.empty() ? std::nullopt : RepoName::parse(from);
      if (source && hosted_.mount_blob(repo, *source, digest)) return send_blob_created(ex, r.name, digest);
      // Not mountable: the spec asks for an ordinary session instead.
    } else if (std::string digest_text = query_param(ex.query, "digest"); !digest_text.empty()) {
      Digest digest = parse_digest(digest_text);
      hosted_.put_blob(repo, request_body(ex), digest);
      return send_blob_created(ex, r.name, digest);
    }
    // The peer's address: what the per-client session cap counts by (behind a
    // reverse proxy that is the proxy, so its cap should be set accordingly).
    const std::string client = ex.request.clientAddress().host().toString();
    return send_session(ex, r.name, hosted_.start_upload(repo, client), Poco::Net::HTTPResponse::HTTP_ACCEPTED);
  }

  const std::string& id = r.reference;
  try {
    if (method == "GET")
      return send_session(ex, r.name, hosted_.upload_status(repo, id), Poco::Net::HTTPResponse::HTTP_NO_CONTENT);
    if (method == "DELETE") {
      hosted_.cancel_upload(repo, id);
      ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_NO_CONTENT);
      return send_body(ex, "", "text/plain");
    }
    if (method == "PATCH") {
      auto first = chunk_start(ex);
      return send_session(ex, r.name, hosted_.append_upload(repo, id, first, request_body(ex)),
                          Poco::Net::HTTPResponse::HTTP_ACCEPTED);
    }
    // PUT: the end of the upload.
    std::string digest_text = query_param(ex.query, "digest");
    if (digest_text.empty()) throw RegistryError(ErrorCode::DigestInvalid, "the digest query parameter is required");
    Digest digest = parse_digest(digest_text);
    std::optional<cache::Body> last_chunk;
    if (has_body(ex)) {
      chunk_start(ex);  // validated only: finish_upload appends at the end
      last_chunk.emplace(request_body(ex));
    }
    hosted_.finish_upload(repo, id, last_chunk, digest);
    return send_blob_created(ex, r.name, digest);
  } catch (const RegistryError& e) {
    // A full disk (507) keeps the session and the bytes acknowledged before
    // this chunk: the client may resume from there once space is freed.
    if (e.code() == ErrorCode::UploadRangeInvalid || e.code() == ErrorCode::InsufficientStorage) {
      // Tell the client where the upload stands, so it can resume.
      try {
        auto status = hosted_.upload_status(repo, id);
        ex.response.set("Range", range_of(status.size));
        ex.response.set("Location", upload_location(r.name, id));
      } catch (const RegistryError&) {
      }
    }
    throw;
  }
}

}  // namespace regcache::proxy
