#include "conformance.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/SocketStream.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/URI.h>

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>

#include "support/files.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/upstream_registry.h"

namespace conformance {
namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::string(value) : fallback;
}

// The server under test and its scratch directory; members are destroyed in reverse
// order, so the server stops before its directory goes away.
struct Target {
  std::string name;
  std::unique_ptr<regcache::test::TempDir> dir;
  std::unique_ptr<regcache::test::RegcacheServer> regcache;
  std::unique_ptr<regcache::test::UpstreamRegistry> docker_registry;
  std::string url;
};

std::unique_ptr<Target> start_target() {
  auto t = std::make_unique<Target>();
  t->name = env_or("CONFORMANCE_TARGET", "regcache");
  if (t->name == "regcache") {
    t->dir = std::make_unique<regcache::test::TempDir>("regcache-conformance");
    regcache::test::RegcacheOptions options;
    options.upstream_url = "none";  // every repository hosted
    t->regcache = std::make_unique<regcache::test::RegcacheServer>(t->dir->path(), options);
    t->url = t->regcache->url();
  } else if (t->name == "docker-registry") {
    t->dir = std::make_unique<regcache::test::TempDir>("docker-registry-conformance");
    t->docker_registry = std::make_unique<regcache::test::UpstreamRegistry>(t->dir->path());
    t->url = t->docker_registry->url();
  } else if (t->name == "url") {
    t->url = env_or("CONFORMANCE_URL", "");
    if (t->url.empty()) throw std::runtime_error("CONFORMANCE_TARGET=url needs CONFORMANCE_URL");
    while (!t->url.empty() && t->url.back() == '/') t->url.pop_back();
  } else {
    throw std::runtime_error("unknown CONFORMANCE_TARGET '" + t->name + "' (regcache, docker-registry or url)");
  }
  return t;
}

Target& target() {
  static std::unique_ptr<Target> instance;  // destroyed at exit: the server is stopped
  static std::string failure;               // a target that did not start is not retried
  if (!instance) {
    if (!failure.empty()) throw std::runtime_error(failure);
    try {
      instance = start_target();
    } catch (const std::exception& e) {
      failure = std::string("the registry under test did not start: ") + e.what();
      throw std::runtime_error(failure);
    }
  }
  return *instance;
}

bool uppercase_identifier(const std::string& code) {
  if (code.empty()) return false;
  for (char c : code)
    if (!(std::isupper(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

}  // namespace

const std::string& target_name() {
  static const std::string name = env_or("CONFORMANCE_TARGET", "regcache");
  return name;
}

bool regcache_contract() { return target_name() == "regcache"; }

const std::string& base_url() { return target().url; }

std::string repo(const std::string& slug) {
  return env_or("OCI_NAMESPACE", "conformance/test") + "/" + slug + "-" + random_hex(8);
}

// ---- HTTP -----------------------------------------------------------------------

HttpResponse request(const std::string& method, const std::string& target_url, const HttpHeaders& headers,
                     const std::string& body) {
  const std::string url = target_url.rfind("/", 0) == 0 ? base_url() + target_url : target_url;
  return regcache::test::http_request(method, url, headers, body, std::chrono::seconds(30));
}

HttpResponse request_early_reply(const std::string& method, const std::string& target_url, const HttpHeaders& headers,
                                 const std::string& body) {
  HttpResponse result;
  const Poco::Timespan timeout(30, 0);
  try {
    Poco::URI uri(target_url.rfind("/", 0) == 0 ? base_url() + target_url : target_url);
    Poco::Net::StreamSocket socket;
    socket.connect(Poco::Net::SocketAddress(uri.getHost(), uri.getPort()), timeout);
    socket.setReceiveTimeout(timeout);
    socket.setSendTimeout(timeout);
    std::string head = method + " " + uri.getPathEtc() + " HTTP/1.1\r\nHost: " + uri.getHost() + ":" +
                       std::to_string(uri.getPort()) +
                       "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    for (const auto& [name, value] : headers) head += name + ": " + value + "\r\n";
    const std::string message = head + "\r\n" + body;
    try {
      for (std::size_t sent = 0; sent < message.size();) {
        int n = socket.sendBytes(message.data() + sent,
                                 static_cast<int>(std::min<std::size_t>(message.size() - sent, 65536)));
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
    } catch (const Poco::Exception&) {
      // The server stopped reading (and maybe answered): read what it sent.
    }
    Poco::Net::SocketStream stream(socket);
    stream.exceptions(std::ios::badbit);
    Poco::Net::HTTPResponse response;
    response.read(stream);
    result.status = static_cast<int>(response.getStatus());
    result.reason = response.getReason();
    for (const auto& [name, value] : response) result.headers.emplace(name, value);
    char buffer[4096];
    while (stream.read(buffer, sizeof buffer) || stream.gcount() > 0)
      result.body.append(buffer, static_cast<std::size_t>(stream.gcount()));
    result.complete = true;
  } catch (const Poco::Exception& e) {
    result.error = e.displayText();
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

std::string resolve(const std::string& location) {
  if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) return location;
  if (location.rfind("/", 0) == 0) return base_url() + location;
  Poco::URI uri(base_url() + "/v2/");
  uri.resolve(location);
  return uri.toString();
}

std::string path_of(const std::string& url) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  auto slash = url.find('/', scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

std::string with_query(const std::string& url, const std::string& name, const std::string& value) {
  std::string encoded;
  Poco::URI::encode(value, "?#/:;+@&=", encoded);
  return url + (url.find('?') == std::string::npos ? "?" : "&") + name + "=" + encoded;
}

std::string next_link(const HttpResponse& response, bool& well_formed) {
  well_formed = true;
  if (!response.has_header("Link")) return {};
  const std::string link = response.header("Link");
  auto open = link.find('<');
  auto close = link.find('>', open == std::string::npos ? 0 : open);
  if (open != 0 || close == std::string::npos) {
    well_formed = false;
    return {};
  }
  std::string params = link.substr(close + 1);
  std::string compact;
  for (char c : params)
    if (c != ' ') compact += c;
  if (compact.find(";rel=\"next\"") == std::string::npos && compact.find(";rel=next") == std::string::npos)
    well_formed = false;
  return link.substr(open + 1, close - open - 1);
}

std::string describe(const HttpResponse& response) {
  std::ostringstream out;
  out << response.summary() << "\n";
  for (const auto& [name, value] : response.headers) out << "  " << name << ": " << value << "\n";
  out << response.body.substr(0, 2048);
  if (response.body.size() > 2048) out << "... (" << response.body.size() << " bytes)";
  return out.str();
}

std::string error_problems(const HttpResponse& response, int status, std::initializer_list<const char*> codes,
                           bool json_required) {
  // The codes the spec defines, and the legacy Docker ones it says clients MAY meet.
  static const std::set<std::string> spec_codes = {
      "BLOB_UNKNOWN",          "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
      "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID",    "MANIFEST_UNKNOWN",    "NAME_INVALID",
      "NAME_UNKNOWN",          "SIZE_INVALID",        "UNAUTHORIZED",        "DENIED",
      "UNSUPPORTED",           "TOOMANYREQUESTS",     "TAG_INVALID",         "MANIFEST_UNVERIFIED"};
  std::ostringstream problems;
  if (response.status != status) problems << "expected status " << status << "; ";
  json body = parse(response.body);
  if (body.is_discarded()) {
    if (json_required) problems << "the error body is not JSON; ";
  } else if (!body.is_object() || !body.contains("errors") || !body["errors"].is_array() || body["errors"].empty()) {
    problems << "the error body is not {\"errors\": [...]} with at least one error; ";
  } else {
    for (const auto& e : body["errors"]) {
      if (!e.is_object() || !e.contains("code") || !e["code"].is_string()) {
        problems << "an error without a string code; ";
        continue;
      }
      std::string code = e["code"];
      if (!uppercase_identifier(code)) problems << "code '" << code << "' is not uppercase letters and underscores; ";
      if (!spec_codes.count(code)) problems << "code '" << code << "' is not one the spec defines; ";
      if (e.contains("message") && !e["message"].is_string()) problems << "message is not a string; ";
    }
    const auto& first = body["errors"][0];
    std::string code = first.is_object() && first.contains("code") && first["code"].is_string()
                           ? first["code"].get<std::string>()
                           : std::string();
    bool expected = codes.size() == 0;
    for (const char* c : codes) expected = expected || code == c;
    if (!expected) {
      problems << "code '" << code << "' is not the expected";
      for (const char* c : codes) problems << " " << c;
      problems << "; ";
    }
  }
  std::string text = problems.str();
  return text.empty() ? text : text + "\n" + describe(response);
}

// ---- content --------------------------------------------------------------------

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return out;
}

std::string random_hex(std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string bytes = random_bytes(n);
  std::string out;
  for (char c : bytes) out += digits[static_cast<unsigned char>(c) % 16];
  return out;
}

std::string sha256(const std::string& bytes) { return regcache::test::sha256_digest(bytes); }

json Blob::descriptor() const { return {{"mediaType", media_type}, {"digest", digest}, {"size", bytes.size()}}; }

Blob make_blob(std::size_t size, const std::string& media_type) {
  Blob b{random_bytes(size), {}, media_type};
  b.digest = sha256(b.bytes);
  return b;
}

Blob make_config() {
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"author", random_hex(16)},  // unique content, unique digest
                 {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
  Blob b{config.dump(), {}, kConfigType};
  b.digest = sha256(b.bytes);
  return b;
}

Blob empty_config() { return Blob{"{}", kEmptyDigest, kEmptyType}; }

json Manifest::descriptor() const { return {{"mediaType", media_type}, {"digest", digest}, {"size", bytes.size()}}; }

Manifest make_manifest(const json& document) {
  Manifest m{document.dump(), {}, document.value("mediaType", std::string(kManifestType))};
  m.digest = sha256(m.bytes);
  return m;
}

Manifest image_manifest(const Blob& config, const std::vector<Blob>& layers, const json& extra) {
  json layer_list = json::array();
  for (const auto& l : layers) layer_list.push_back(l.descriptor());
  json document = {
      {"schemaVersion", 2}, {"mediaType", kManifestType}, {"config", config.descriptor()}, {"layers", layer_list}};
  document.update(extra);
  return make_manifest(document);
}

Manifest image_index(const std::vector<Manifest>& manifests, const json& extra) {
  json list = json::array();
  for (const auto& m : manifests) list.push_back(m.descriptor());
  json document = {{"schemaVersion", 2}, {"mediaType", kIndexType}, {"manifests", list}};
  document.update(extra);
  return make_manifest(document);
}

void push_blob(const std::string& repo, const Blob& blob) {
  std::string session = start_upload(repo);
  auto put = request("PUT", with_query(session, "digest", blob.digest), {{"Content-Type", "application/octet-stream"}},
                     blob.bytes);
  REQUIRE_MESSAGE(put.status == 201, "pushing blob " << blob.digest << " to " << repo << ": " << describe(put));
}

HttpResponse put_manifest(const std::string& repo, const std::string& reference, const Manifest& manifest) {
  return request("PUT", "/v2/" + repo + "/manifests/" + reference, {{"Content-Type", manifest.media_type}},
                 manifest.bytes);
}

void push_manifest(const std::string& repo, const std::string& reference, const Manifest& manifest) {
  auto put = put_manifest(repo, reference, manifest);
  REQUIRE_MESSAGE(put.status == 201, "pushing manifest " << manifest.digest << " as " << repo << ":" << reference
                                                         << ": " << describe(put));
}

Image push_image(const std::string& repo, const std::string& tag, const json& extra) {
  Image image{make_config(), make_blob(1024), {}};
  push_blob(repo, image.config);
  push_blob(repo, image.layer);
  image.manifest = image_manifest(image.config, {image.layer}, extra);
  push_manifest(repo, tag, image.manifest);
  return image;
}

HttpResponse get_manifest(const std::string& repo, const std::string& reference, const std::string& method) {
  return request(method, "/v2/" + repo + "/manifests/" + reference, regcache::test::manifest_accept_headers());
}

std::string start_upload(const std::string& repo, HttpResponse* post_response) {
  auto post = request("POST", "/v2/" + repo + "/blobs/uploads/");
  REQUIRE_MESSAGE(post.status == 202, "starting an upload in " << repo << ": " << describe(post));
  REQUIRE_MESSAGE(!post.header("Location").empty(), "no Location: " << describe(post));
  if (post_response) *post_response = post;
  return resolve(post.header("Location"));
}

HttpResponse patch_chunk(const std::string& session_url, const std::string& chunk, std::size_t offset) {
  return request("PATCH", session_url,
                 {{"Content-Type", "application/octet-stream"},
                  {"Content-Range", std::to_string(offset) + "-" + std::to_string(offset + chunk.size() - 1)}},
                 chunk);
}

std::string join(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out + "]";
}

std::string join(const std::set<std::string>& items) {
  return join(std::vector<std::string>(items.begin(), items.end()));
}

json parse(const std::string& body) { return json::parse(body, nullptr, false); }

}  // namespace conformance
