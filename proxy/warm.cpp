#include "proxy/warm.h"

#include <Poco/Base64Encoder.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/URI.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "cache/oci_layout.h"
#include "cache/policy.h"
#include "common/digest.h"

namespace regcache::proxy {
namespace {

using nlohmann::json;

constexpr const char* kManifestAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
constexpr std::size_t kMaxManifestBytes = 64 << 20;  // the largest max_manifest_bytes a server may have
constexpr std::size_t kMaxTagPages = 1000;
constexpr int kMaxDepth = 4;

class WarmError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "CODE: message" from an OCI error body, or the status alone.
std::string error_text(int status, const std::string& body) {
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array() && !doc["errors"].empty()) {
    const auto& e = doc["errors"][0];
    std::string code = e.value("code", ""), message = e.value("message", "");
    return code + (message.empty() ? "" : ": " + message) + " (HTTP " + std::to_string(status) + ")";
  }
  return "HTTP " + std::to_string(status);
}

std::string url_encode(const std::string& s) {
  std::string out;
  Poco::URI::encode(s, "?#[]@!$&'()*+,;=:/", out);
  return out;
}

}  // namespace

WarmCounts& WarmCounts::operator+=(const WarmCounts& o) {
  objects += o.objects;
  fetched += o.fetched;
  cached += o.cached;
  revalidated += o.revalidated;
  bytes_fetched += o.bytes_fetched;
  bytes_total += o.bytes_total;
  return *this;
}

std::string format_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// One keep-alive connection to the server; reconnects after any failure.
struct Warmer::Http {
  Poco::URI uri;
  std::string authorization;
  std::chrono::seconds timeout;
  std::unique_ptr<Poco::Net::HTTPClientSession> session;
  std::mutex session_mutex;  // guards `session` against cancel() from another thread
  std::atomic<bool> cancelled{false};

  struct Response {
    Poco::Net::HTTPResponse head;
    std::istream* body = nullptr;
  };

  Poco::Net::HTTPClientSession& connect() {
    std::lock_guard lock(session_mutex);
    if (cancelled) throw WarmError("cancelled");
    if (!session) {
      if (uri.getScheme() == "https") {
        // The server's own certificate is verified against the system CAs.
        Poco::Net::Context::Ptr context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", "",
                                                                 Poco::Net::Context::VERIFY_RELAXED, 9, true);
        session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), context);
      } else {
        session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
      }
      session->setKeepAlive(true);
      session->setTimeout(Poco::Timespan(static_cast<long>(timeout.count()), 0));
    }
    return *session;
  }

  void reset() {
    std::lock_guard lock(session_mutex);
    session.reset();
  }

  void cancel() {
    std::lock_guard lock(session_mutex);
    cancelled = true;
    if (session) {
      try {
        session->socket().shutdownReceive();  // the reading thread sees an error and gives up
      } catch (const Poco::Exception&) {
      }
    }
  }

  // Sends a request; the caller reads the body (if any) before the next one.
  Response send(const std::string& method, const std::string& target, const std::string& accept = {}) {
    try {
      auto& s = connect();
      Poco::Net::HTTPRequest request(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
      request.setKeepAlive(true);
      if (!accept.empty()) request.set("Accept", accept);
      if (!authorization.empty()) request.set("Authorization", authorization);
      request.set("User-Agent", "regcache-warm");
      s.sendRequest(request);
      Response r;
      r.body = &s.receiveResponse(r.head);
      return r;
    } catch (const Poco::Exception& e) {
      reset();
      throw WarmError("cannot reach regcache at " + uri.toString() + ": " + e.displayText());
    }
  }

  std::string read_body(Response& r, std::size_t max) {
    std::string out;
    char buf[65536];
    try {
      while (r.body->read(buf, sizeof buf) || r.body->gcount() > 0) {
        out.append(buf, static_cast<std::size_t>(r.body->gcount()));
        if (out.size() > max) {
          reset();
          throw WarmError("response larger than " + std::to_string(max) + " bytes");
        }
      }
    } catch (const Poco::Exception& e) {
      reset();
      throw WarmError("connection to regcache broke: " + e.displayText());
    }
    return out;
  }
};

Warmer::Warmer(WarmOptions options, WarmObserver observer)
    : options_(std::move(options)), observer_(std::move(observer)), http_(std::make_unique<Http>()) {
  http_->uri = Poco::URI(options_.server_url);
  if (http_->uri.getScheme() != "http" && http_->uri.getScheme() != "https")
    throw std::invalid_argument("--server must be an http:// or https:// URL, not '" + options_.server_url + "'");
  http_->timeout = options_.timeout;
  if (!options_.username.empty()) {
    std::ostringstream encoded;
    Poco::Base64Encoder encoder(encoded);
    encoder.rdbuf()->setLineLength(0);
    encoder << options_.username << ":" << options_.password;
    encoder.close();
    http_->authorization = "Basic " + encoded.str();
  }
}

Warmer::~Warmer() = default;

void Warmer::cancel() { http_->cancel(); }

std::string Warmer::path(const ImageRef& ref, const std::string& rest, const std::string& query) const {
  // A named registry goes as containerd's ?ns=, so a registry this server does
  // not mirror is refused by name; otherwise the server's path-prefix routing
  // (an upstream's name as the first component) or its default upstream applies.
  std::string q = query;
  if (!ref.registry.empty()) q += (q.empty() ? "" : "&") + std::string("ns=") + url_encode(ref.registry);
  return "/v2/" + ref.repository + "/" + rest + (q.empty() ? "" : "?" + q);
}

void Warmer::count(WarmResult& result, const std::string& cache_status, std::uint64_t bytes) {
  WarmCounts one;
  one.objects = 1;
  one.bytes_total = bytes;
  if (cache_status == "miss") {
    one.fetched = 1;
    one.bytes_fetched = bytes;
  } else if (cache_status == "revalidated") {
    one.revalidated = 1;
  } else {
    one.cached = 1;  // hit, stale, local (hosted)
  }
  result.counts += one;
  totals_ += one;
  if (observer_.object_done) observer_.object_done(totals_, result.reference);
}

std::vector<std::string> Warmer::list_tags(const ImageRef& ref) {
  std::vector<std::string> tags;
  std::string query = "n=1000";
  for (std::size_t page = 0; page < kMaxTagPages; ++page) {
    auto r = http_->send("GET", path(ref, "tags/list", query));
    std::string body = http_->read_body(r, kMaxManifestBytes);
    if (r.head.getStatus() != 200)
      throw WarmError("tags/list of " + ref.name() + ": " + error_text(r.head.getStatus(), body));
    auto doc = json::parse(body, nullptr, false);
    if (!doc.is_object()) throw WarmError("tags/list of " + ref.name() + " is not JSON");
    if (doc.contains("tags") && doc["tags"].is_array())
      for (const auto& t : doc["tags"])
        if (t.is_string()) tags.push_back(t.get<std::string>());
    std::string next = r.head.has("Link") ? cache::next_page_query(r.head.get("Link")) : "";
    // Our own ns= is added again by path().
    std::string kept;
    for (std::size_t start = 0; start < next.size();) {
      auto amp = next.find('&', start);
      std::string item = next.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
      if (item.rfind("ns=", 0) != 0 && !item.empty()) kept += (kept.empty() ? "" : "&") + item;
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
    if (kept.empty()) return tags;
    query = kept;
  }
  throw WarmError("tags/list of " + ref.name() + " has more than " + std::to_string(kMaxTagPages) + " pages");
}

std::vector<WarmResult> Warmer::warm(const ImageRef& ref) {
  std::vector<WarmResult> results;
  if (!ref.expands()) {
    results.push_back(warm_one(ref, ref.str()));
    if (observer_.reference_done) observer_.reference_done(results.back());
    return results;
  }
  std::vector<std::string> tags;
  try {
    tags = select_tags(list_tags(ref), ref.tag_pattern, options_.newest);
    if (tags.empty()) throw WarmError("no tag of " + ref.name() + " matches '" + ref.tag_pattern + "'");
  } catch (const std::exception& e) {
    WarmResult failed{ref.str(), false, e.what(), {}, {}, {}};
    if (observer_.reference_done) observer_.reference_done(failed);
    results.push_back(failed);
    return results;
  }
  for (const auto& tag : tags) {
    ImageRef one = ref;
    one.tag_pattern.clear();
    one.tag = tag;
    results.push_back(warm_one(one, one.str()));
    if (observer_.reference_done) observer_.reference_done(results.back());
  }
  return results;
}

WarmResult Warmer::warm_one(const ImageRef& ref, const std::string& reference) {
  WarmResult result;
  result.reference = reference;
  try {
    std::optional<std::string> expected;
    if (ref.digest) expected = ref.digest->str();
    warm_manifest(ref, ref.digest ? ref.digest->str() : ref.tag, expected, result, 0, true);
    result.ok = true;
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

void Warmer::warm_manifest(const ImageRef& ref, const std::string& reference,
                           const std::optional<std::string>& expected, WarmResult& result, int depth, bool top) {
  if (depth > kMaxDepth) throw WarmError("manifests nested deeper than " + std::to_string(kMaxDepth));
  auto r = http_->send("GET", path(ref, "manifests/" + reference), kManifestAccept);
  std::string body = http_->read_body(r, kMaxManifestBytes);
  if (r.head.getStatus() != 200)
    throw WarmError("manifest " + ref.name() + (expected ? "@" : ":") + reference + ": " +
                    error_text(r.head.getStatus(), body));
  std::string named = r.head.get("Docker-Content-Digest", "");
  auto digest = Digest::parse(named);
  if (!digest) throw WarmError("manifest " + reference + ": the server sent no valid Docker-Content-Digest");
  if (digest_of(digest->algorithm(), body) != *digest)
    throw WarmError("manifest " + reference + ": bytes do not hash to " + named);
  if (expected && named != *expected) throw WarmError("manifest " + reference + ": server named digest " + named);
  count(result, r.head.get("X-Cache-Status", ""), body.size());
  if (top) result.digest = named;

  cache::ManifestLinks links;
  try {
    links = cache::parse_manifest_links(body);
  } catch (const std::exception& e) {
    throw WarmError("manifest " + named + ": " + e.what());
  }
  if (links.is_index) {
    auto chosen = cache::select_platforms(links.manifests, options_.platforms);
    if (chosen.empty())
      throw WarmError("index " + named + " has no manifest for the platforms asked for");
    for (const auto& child : chosen) {
      if (child.platform) result.platforms.push_back(child.platform->str());
      warm_manifest(ref, child.digest.str(), child.digest.str(), result, depth + 1, false);
    }
  } else {
    for (const auto& blob : links.blobs) warm_blob(ref, blob.digest.str(), blob.size, result);
  }
  if (options_.referrers) warm_referrers(ref, named, result);
}

void Warmer::warm_blob(const ImageRef& ref, const std::string& digest, std::uint64_t size, WarmResult& result) {
  std::string target = path(ref, "blobs/" + digest);
  {
    auto head = http_->send("HEAD", target);
    http_->read_body(head, 0);
    std::string status = head.head.get("X-Cache-Status", "");
    if (head.head.getStatus() == 200 && (status == "hit" || status == "local")) {
      count(result, "hit", size);
      return;
    }
  }
  auto r = http_->send("GET", target);
  if (r.head.getStatus() != 200) {
    std::string body = http_->read_body(r, 1 << 20);
    throw WarmError("blob " + digest + " of " + ref.name() + ": " + error_text(r.head.getStatus(), body));
  }
  auto expected = Digest::parse(digest);
  DigestHasher hasher(expected ? expected->algorithm() : "sha256");
  std::uint64_t got = 0;
  std::vector<char> buf(1 << 20);
  try {
    while (r.body->read(buf.data(), static_cast<std::streamsize>(buf.size())) || r.body->gcount() > 0) {
      auto n = static_cast<std::size_t>(r.body->gcount());
      hasher.update(buf.data(), n);
      got += n;
    }
  } catch (const Poco::Exception& e) {
    http_->reset();
    throw WarmError("blob " + digest + ": transfer broke after " + std::to_string(got) + " bytes: " + e.displayText());
  }
  if (r.body->bad() || (r.head.hasContentLength() && got != static_cast<std::uint64_t>(r.head.getContentLength64()))) {
    http_->reset();
    throw WarmError("blob " + digest + ": transfer broke after " + std::to_string(got) + " bytes");
  }
  Digest actual = hasher.finish();
  if (!expected || actual != *expected) throw WarmError("blob " + digest + ": received bytes hash to " + actual.str());
  if (got != size)
    throw WarmError("blob " + digest + ": " + std::to_string(got) + " bytes, the manifest says " + std::to_string(size));
  // Not a hit at the HEAD: the server fetched it from the upstream for this
  // run (the HEAD's miss started the fill this GET joined, or the GET did).
  count(result, "miss", got);
}

void Warmer::warm_referrers(const ImageRef& ref, const std::string& digest, WarmResult& result) {
  auto r = http_->send("GET", path(ref, "referrers/" + digest));
  std::string body = http_->read_body(r, kMaxManifestBytes);
  if (r.head.getStatus() == 404) return;  // an upstream without the referrers API
  if (r.head.getStatus() != 200)
    throw WarmError("referrers of " + digest + ": " + error_text(r.head.getStatus(), body));
  cache::ManifestLinks links;
  try {
    links = cache::parse_manifest_links(body);
  } catch (const std::exception& e) {
    throw WarmError("referrers of " + digest + ": " + e.what());
  }
  WarmOptions saved = options_;
  options_.referrers = false;  // referrers of referrers are not followed
  try {
    for (const auto& m : links.manifests) warm_manifest(ref, m.digest.str(), m.digest.str(), result, 1, false);
  } catch (...) {
    options_ = saved;
    throw;
  }
  options_ = saved;
}

}  // namespace regcache::proxy
