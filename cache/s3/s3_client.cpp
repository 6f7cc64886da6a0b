#include "cache/s3/s3_client.h"

#include <Poco/DOM/AutoPtr.h>
#include <Poco/DOM/DOMParser.h>
#include <Poco/DOM/Document.h>
#include <Poco/DOM/Element.h>
#include <Poco/DOM/Node.h>
#include <Poco/DOM/NodeList.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/SAX/SAXException.h>
#include <Poco/SAX/XMLReader.h>
#include <Poco/URI.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace regcache::s3 {

namespace {

constexpr std::size_t kChunk = 64 * 1024;

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::uint64_t parse_u64(const std::string& s, const std::string& what) {
  if (s.empty() || s.size() > 19 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
    throw S3Error("s3: hostile answer: " + what + " is not a size: '" + s.substr(0, 40) + "'", 0, "");
  return std::stoull(s);
}

struct ContentRange {
  std::uint64_t first = 0, last = 0, total = 0;
};

// "bytes FIRST-LAST/TOTAL", checked for consistency.
ContentRange parse_content_range(const std::string& cr, const std::string& what) {
  const auto dash = cr.find('-'), slash = cr.find('/');
  if (cr.rfind("bytes ", 0) != 0 || dash == std::string::npos || slash == std::string::npos || dash > slash)
    throw S3Error(what + ": hostile answer: Content-Range '" + cr.substr(0, 80) + "'", 0, "");
  ContentRange r;
  r.first = parse_u64(cr.substr(6, dash - 6), "Content-Range first");
  r.last = parse_u64(cr.substr(dash + 1, slash - dash - 1), "Content-Range last");
  r.total = parse_u64(cr.substr(slash + 1), "Content-Range total");
  if (r.first > r.last || r.last >= r.total)
    throw S3Error(what + ": hostile answer: Content-Range '" + cr.substr(0, 80) + "'", 0, "");
  return r;
}

// S3 answers nest a few levels and hold some thousand elements (a listing page of
// 1000 keys); the DOM is freed recursively, so depth must be bounded before parsing.
constexpr std::size_t kMaxXmlDepth = 64;
constexpr std::size_t kMaxXmlElements = 100'000;

// Whether the elements of `text` nest deeper than kMaxXmlDepth or number more than
// kMaxXmlElements. Comments, CDATA and processing instructions are skipped (they
// may hold '<'); a start tag's '>' is looked for outside quotes. Only called on
// UTF-8 without a DTD, where every other '<' starts a tag; an unclosed or odd tag
// counts as a start tag, so the count errs towards refusing.
bool xml_too_big(const std::string& text) {
  std::size_t depth = 0, elements = 0;
  const auto after = [&](std::size_t from, std::string_view end) {
    const auto p = text.find(end, from);
    return p == std::string::npos ? text.size() : p + end.size();
  };
  for (std::size_t i = text.find('<'); i < text.size(); i = text.find('<', i)) {
    if (text.compare(i, 4, "<!--") == 0) {
      i = after(i + 4, "-->");
    } else if (text.compare(i, 9, "<![CDATA[") == 0) {
      i = after(i + 9, "]]>");
    } else if (text.compare(i, 2, "<?") == 0) {
      i = after(i + 2, "?>");
    } else if (text.compare(i, 2, "</") == 0) {
      if (depth > 0) --depth;
      i += 2;
    } else {
      char quote = 0;
      std::size_t j = i + 1;
      for (; j < text.size(); ++j) {
        const char c = text[j];
        if (quote) {
          if (c == quote) quote = 0;
        } else if (c == '"' || c == '\'') {
          quote = c;
        } else if (c == '>') {
          break;
        }
      }
      if (++elements > kMaxXmlElements) return true;
      if ((j >= text.size() || text[j - 1] != '/') && ++depth > kMaxXmlDepth) return true;
      i = j;
    }
  }
  return false;
}

// A parsed XML answer. S3 never sends a DTD, so one is refused outright (no entity
// expansion, no external entities); the size was capped while reading. Answers are
// UTF-8: a NUL byte (UTF-16, which expat would read, hiding "<!DOCTYPE" between
// NULs) is refused, as is nesting or an element count no S3 answer has.
class Xml {
 public:
  explicit Xml(const std::string& text) {
    if (text.find('\0') != std::string::npos) throw S3Error("s3: hostile answer: XML not in UTF-8", 0, "");
    if (text.find("<!DOCTYPE") != std::string::npos || text.find("<!ENTITY") != std::string::npos)
      throw S3Error("s3: hostile answer: XML with a DTD", 0, "");
    if (xml_too_big(text))
      throw S3Error("s3: hostile answer: XML nested deeper than " + std::to_string(kMaxXmlDepth) + " or over " +
                        std::to_string(kMaxXmlElements) + " elements",
                    0, "");
    Poco::XML::DOMParser parser;
    parser.setFeature(Poco::XML::XMLReader::FEATURE_EXTERNAL_GENERAL_ENTITIES, false);
    parser.setFeature(Poco::XML::XMLReader::FEATURE_EXTERNAL_PARAMETER_ENTITIES, false);
    parser.setFeature(Poco::XML::DOMParser::FEATURE_FILTER_WHITESPACE, true);
    try {
      doc_ = parser.parseString(text);
    } catch (const Poco::Exception& e) {
      throw S3Error("s3: hostile answer: bad XML: " + e.displayText(), 0, "");
    }
    if (!doc_ || !doc_->documentElement()) throw S3Error("s3: hostile answer: empty XML", 0, "");
  }
  Poco::XML::Element* root() const { return doc_->documentElement(); }

  static std::vector<Poco::XML::Element*> children(Poco::XML::Element* parent, const std::string& name) {
    std::vector<Poco::XML::Element*> out;
    for (auto* n = parent->firstChild(); n; n = n->nextSibling())
      if (n->nodeType() == Poco::XML::Node::ELEMENT_NODE && n->localName() == name)
        out.push_back(static_cast<Poco::XML::Element*>(n));
    return out;
  }
  static std::optional<std::string> text(Poco::XML::Element* parent, const std::string& name) {
    for (auto* e : children(parent, name)) return e->innerText();
    return std::nullopt;
  }

 private:
  Poco::AutoPtr<Poco::XML::Document> doc_;
};

}  // namespace

std::string read_secret_key_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read secret key file " + path.string());
  std::string line;
  std::getline(in, line);
  line = trim(line);
  if (line.empty()) throw std::runtime_error("secret key file " + path.string() + " is empty");
  return line;
}

struct Client::Target {
  std::string host_header;  // what is signed and sent as Host
  std::string connect_host;
  std::string path;         // decoded
};

struct Client::Body {
  std::istream* in = nullptr;
  std::uint64_t size = 0;
  std::string payload_sha256;
  std::streampos start{-1};
};

// Idle keep-alive sessions, all to the same host and port (one bucket per client).
struct Client::Pool {
  std::mutex mutex;
  std::vector<std::unique_ptr<Poco::Net::HTTPClientSession>> idle;  // guarded by mutex

  std::unique_ptr<Poco::Net::HTTPClientSession> take() {
    std::lock_guard lock(mutex);
    if (idle.empty()) return nullptr;
    auto s = std::move(idle.back());
    idle.pop_back();
    return s;
  }
  void give_back(std::unique_ptr<Poco::Net::HTTPClientSession> s, std::size_t max_idle) {
    std::lock_guard lock(mutex);
    if (idle.size() < max_idle) idle.push_back(std::move(s));
  }
  // After a pooled connection turned out closed: the others idled as long, drop them too.
  void clear() {
    std::vector<std::unique_ptr<Poco::Net::HTTPClientSession>> gone;
    std::lock_guard lock(mutex);
    gone.swap(idle);
  }
};

struct Client::Answer {
  int status = 0;
  Poco::Net::NameValueCollection headers;
  std::string text;  // small answers (XML, errors), capped
};

Client::Client(ClientConfig config) : pool_(std::make_shared<Pool>()), config_(std::move(config)) {
  Poco::URI uri;
  try {
    uri = Poco::URI(config_.endpoint);
  } catch (const Poco::Exception& e) {
    throw std::invalid_argument("s3 endpoint '" + config_.endpoint + "': " + e.displayText());
  }
  scheme_ = uri.getScheme();
  if (scheme_ != "http" && scheme_ != "https")
    throw std::invalid_argument("s3 endpoint '" + config_.endpoint + "': scheme must be http or https");
  if (uri.getHost().empty()) throw std::invalid_argument("s3 endpoint '" + config_.endpoint + "': no host");
  if (!uri.getPath().empty() && uri.getPath() != "/")
    throw std::invalid_argument("s3 endpoint '" + config_.endpoint + "': must not have a path");
  host_ = uri.getHost();
  port_ = uri.getPort();
  default_port_ = (scheme_ == "http" && port_ == 80) || (scheme_ == "https" && port_ == 443);
  // Bucket names: 3-63 of [a-z0-9.-] (S3's rule); they go into paths and host names.
  const auto& b = config_.bucket;
  if (b.size() < 3 || b.size() > 63 ||
      !std::all_of(b.begin(), b.end(), [](unsigned char c) { return std::islower(c) || std::isdigit(c) || c == '-' || c == '.'; }))
    throw std::invalid_argument("s3 bucket '" + b + "': 3-63 characters of a-z 0-9 . -");
  if (config_.max_attempts < 1) config_.max_attempts = 1;
}

Client::Target Client::target(const std::string& key) const {
  const std::string port = default_port_ ? "" : ":" + std::to_string(port_);
  Target t;
  if (config_.addressing == Addressing::virtual_host) {
    t.host_header = config_.bucket + "." + host_ + port;
    t.connect_host = config_.connect_host.empty() ? config_.bucket + "." + host_ : config_.connect_host;
    t.path = "/" + key;
  } else {
    t.host_header = host_ + port;
    t.connect_host = config_.connect_host.empty() ? host_ : config_.connect_host;
    t.path = "/" + config_.bucket + (key.empty() ? "" : "/" + key);
  }
  return t;
}

Client::Answer Client::perform(const std::string& operation, const std::string& method, const std::string& key,
                               const Params& query, const Headers& extra, Body* body, const Sink* sink,
                               std::optional<ByteRange> range) const {
  const Target t = target(key);
  const std::string what = "s3 " + operation + (key.empty() ? "" : " " + key);
  if (body && body->in) body->start = body->in->tellg();
  const bool rewindable = !body || !body->in || body->start != std::streampos(-1);

  thread_local std::mt19937 rng{std::random_device{}()};
  std::string last_error;
  int last_status = 0;
  std::string last_code;
  bool stale_retried = false;  // one free retry per call after a closed pooled connection
  for (int attempt = 1; attempt <= config_.max_attempts; ++attempt) {
    if (attempt > 1) {
      if (!rewindable) break;
      if (body && body->in) {
        body->in->clear();
        body->in->seekg(body->start);
      }
      const auto cap = std::min<long long>(config_.backoff_max.count(),
                                           config_.backoff_base.count() << std::min(attempt - 2, 20));
      std::uniform_int_distribution<long long> jitter(cap / 2, std::max<long long>(cap, 1));
      std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
    }
    std::uint64_t delivered = 0;
    bool reused = false, answered = false;
    std::unique_ptr<Poco::Net::HTTPClientSession> session;
    try {
      if (config_.max_idle_connections > 0) session = pool_->take();
      reused = session != nullptr;
      if (session) {
        // Reused as it is (Poco reconnects by itself after its keep-alive timeout).
      } else if (scheme_ == "https") {
        static const Poco::Net::Context::Ptr tls = new Poco::Net::Context(
            Poco::Net::Context::TLS_CLIENT_USE, "", "", "", Poco::Net::Context::VERIFY_RELAXED, 9, true);
        session = std::make_unique<Poco::Net::HTTPSClientSession>(t.connect_host, static_cast<Poco::UInt16>(port_), tls);
      } else {
        session = std::make_unique<Poco::Net::HTTPClientSession>(t.connect_host, static_cast<Poco::UInt16>(port_));
      }
      session->setTimeout(Poco::Timespan(config_.timeout.count(), 0));
      session->setKeepAlive(config_.max_idle_connections > 0);

      const std::string date = amz_date(std::chrono::system_clock::now());
      Request r;
      r.method = method;
      r.path = t.path;
      r.query = query;
      r.payload_sha256 = body ? body->payload_sha256 : std::string(kEmptyPayloadSha256);
      r.headers = {{"host", t.host_header}, {"x-amz-date", date}, {"x-amz-content-sha256", r.payload_sha256}};
      if (range) {
        r.headers.emplace_back("range", "bytes=" + std::to_string(range->first) + "-" +
                                            (range->last ? std::to_string(*range->last) : ""));
      }
      for (const auto& h : extra) r.headers.push_back(h);
      const std::string cq = canonical_query(r.query);
      const std::string target_uri = uri_encode(r.path, true) + (cq.empty() ? "" : "?" + cq);

      Poco::Net::HTTPRequest request(method, target_uri, Poco::Net::HTTPMessage::HTTP_1_1);
      for (const auto& [name, value] : r.headers)
        if (name != "host") request.set(name, value);
      request.setHost(t.host_header);
      request.set("Authorization", authorization(r, config_.credentials, Scope{config_.region, "s3"}, date));
      if (body) request.setContentLength64(static_cast<Poco::Int64>(body->size));
      else if (method == "PUT" || method == "POST") request.setContentLength(0);

      std::ostream& out = session->sendRequest(request);
      if (body && body->in) {
        std::vector<char> buf(kChunk);
        std::uint64_t left = body->size;
        while (left > 0) {
          const auto n = static_cast<std::streamsize>(std::min<std::uint64_t>(left, buf.size()));
          body->in->read(buf.data(), n);
          if (body->in->gcount() != n) throw std::runtime_error(what + ": request body ended early");
          out.write(buf.data(), n);
          left -= static_cast<std::uint64_t>(n);
        }
      }
      out.flush();
      if (!out) throw Poco::Net::NetException("sending the request body failed");

      Poco::Net::HTTPResponse response;
      std::istream& in = session->receiveResponse(response);
      answered = true;
      // The whole answer was read: the connection may serve the next call.
      auto release = [&] {
        if (config_.max_idle_connections > 0 && response.getKeepAlive() && session->connected())
          pool_->give_back(std::move(session), config_.max_idle_connections);
      };
      Answer a;
      a.status = static_cast<int>(response.getStatus());
      for (const auto& [name, value] : response) a.headers.add(name, value);

      const bool success = a.status >= 200 && a.status < 300;
      if (success && sink && method == "GET") {
        // The body must be exactly Content-Length bytes, and a 206 must be the range asked for.
        if (!response.hasContentLength())
          throw S3Error(what + ": hostile answer: GET without Content-Length", a.status, "");
        const auto length = static_cast<std::uint64_t>(response.getContentLength64());
        // Before any byte reaches the caller: the answer must be the range asked for.
        if (a.status == 206) {
          const auto cr = parse_content_range(response.get("Content-Range", ""), what);
          if (!range || cr.first != range->first || (range->last && cr.last > *range->last) ||
              length != cr.last - cr.first + 1)
            throw S3Error(what + ": hostile answer: Content-Range " + response.get("Content-Range", "") +
                              " / Content-Length " + std::to_string(length) + " do not match the request",
                          a.status, "");
        } else if (range && range->first != 0) {
          throw S3Error(what + ": hostile answer: whole object sent for a range", a.status, "");
        }
        std::vector<char> buf(kChunk);
        std::uint64_t left = length;
        while (left > 0) {
          in.read(buf.data(), static_cast<std::streamsize>(std::min<std::uint64_t>(left, buf.size())));
          const auto got = in.gcount();
          if (got <= 0) break;
          (*sink)(buf.data(), static_cast<std::size_t>(got));
          delivered += static_cast<std::uint64_t>(got);
          left -= static_cast<std::uint64_t>(got);
        }
        if (left != 0)
          throw S3Error(what + ": body cut after " + std::to_string(delivered) + " of " + std::to_string(length) +
                            " bytes", a.status, "");
        release();
        return a;
      }
      // Small answers are read whole but capped.
      std::string text;
      std::vector<char> buf(kChunk);
      while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        text.append(buf.data(), static_cast<std::size_t>(in.gcount()));
        if (text.size() > config_.max_xml_bytes)
          throw S3Error(what + ": hostile answer: body over " + std::to_string(config_.max_xml_bytes) + " bytes",
                        a.status, "");
      }
      a.text = std::move(text);
      release();
      if (success) return a;
      // 404 is an answer for HEAD and GET; the other callers turn it into what it means.
      if (a.status == 404 && (method == "HEAD" || (sink && method == "GET"))) return a;
      // An error: S3's code from the XML body when there is one (HEAD has none).
      last_status = a.status;
      last_code.clear();
      std::string message;
      if (!a.text.empty()) {
        try {
          Xml x(a.text);
          last_code = Xml::text(x.root(), "Code").value_or("");
          message = Xml::text(x.root(), "Message").value_or("");
        } catch (const S3Error&) {
        }
      }
      last_error = what + ": HTTP " + std::to_string(a.status) + (last_code.empty() ? "" : " " + last_code) +
                   (message.empty() ? "" : ": " + message);
      const bool retry = a.status >= 500 || a.status == 429 || last_code == "SlowDown" || last_code == "RequestTimeout";
      if (!retry) throw S3Error(last_error, last_status, last_code);
    } catch (const S3Error& e) {
      if (e.status() != 0 || delivered > 0) throw;
      throw;  // hostile answers are not retried: asking again would likely get the same
    } catch (const Poco::TimeoutException& e) {
      if (delivered > 0) throw S3Error(what + ": connection failed mid-body: " + e.displayText(), 0, "");
      last_error = what + ": " + e.displayText();
      last_status = 0;
      last_code.clear();
    } catch (const Poco::Exception& e) {
      if (delivered > 0) throw S3Error(what + ": connection failed mid-body: " + e.displayText(), 0, "");
      if (reused && !answered && !stale_retried && rewindable) {
        // The server closed the idle connection before this request reached it:
        // not a failure of the service. Again on a fresh connection, now.
        stale_retried = true;
        pool_->clear();
        if (body && body->in) {
          body->in->clear();
          body->in->seekg(body->start);
        }
        --attempt;
        continue;
      }
      last_error = what + ": " + e.displayText();
      last_status = 0;
      last_code.clear();
    }
  }
  throw S3Error(last_error + " (after " + std::to_string(config_.max_attempts) + " attempts)", last_status,
                last_code);
}

void Client::create_bucket() const {
  try {
    perform("create bucket", "PUT", "", {}, {}, nullptr, nullptr, std::nullopt);
  } catch (const S3Error& e) {
    if (e.code() != "BucketAlreadyOwnedByYou") throw;
  }
}

void Client::delete_bucket() const { perform("delete bucket", "DELETE", "", {}, {}, nullptr, nullptr, std::nullopt); }

std::string Client::put_object(const std::string& key, std::istream& in, std::uint64_t size,
                               const std::string& payload_sha256) const {
  Body body{&in, size, payload_sha256};
  const auto a = perform("put", "PUT", key, {}, {}, &body, nullptr, std::nullopt);
  return unquote(a.headers.get("ETag", ""));
}

std::string Client::put_object(const std::string& key, std::string_view data) const {
  std::istringstream in{std::string(data)};
  return put_object(key, in, data.size(), sha256_hex(data));
}

std::optional<ObjectInfo> Client::get_object(const std::string& key, const Sink& sink,
                                             std::optional<ByteRange> range) const {
  std::uint64_t seen = 0;
  const Sink counting = [&](const char* data, std::size_t n) {
    seen += n;
    sink(data, n);
  };
  // perform() checked Content-Length and Content-Range against the request before the
  // first byte went to the sink.
  const auto a = perform("get", "GET", key, {}, {}, nullptr, &counting, range);
  if (a.status == 404) return std::nullopt;
  ObjectInfo info;
  info.etag = unquote(a.headers.get("ETag", ""));
  info.size = a.status == 206 ? parse_content_range(a.headers.get("Content-Range", ""), "s3 get " + key).total : seen;
  return info;
}

std::optional<ObjectInfo> Client::head_object(const std::string& key) const {
  const auto a = perform("head", "HEAD", key, {}, {}, nullptr, nullptr, std::nullopt);
  if (a.status == 404) return std::nullopt;
  ObjectInfo info;
  info.size = parse_u64(a.headers.get("Content-Length", ""), "Content-Length");
  info.etag = unquote(a.headers.get("ETag", ""));
  info.last_modified = a.headers.get("Last-Modified", "");
  return info;
}

void Client::delete_object(const std::string& key) const {
  try {
    perform("delete", "DELETE", key, {}, {}, nullptr, nullptr, std::nullopt);
  } catch (const S3Error& e) {
    if (e.status() != 404) throw;
  }
}

ListPage Client::list_objects(const std::string& prefix, const std::optional<std::string>& continuation,
                              int max_keys) const {
  max_keys = std::clamp(max_keys, 1, 1000);
  Params q{{"list-type", "2"}, {"max-keys", std::to_string(max_keys)}, {"prefix", prefix}};
  if (continuation) q.emplace_back("continuation-token", *continuation);
  const auto a = perform("list", "GET", "", q, {}, nullptr, nullptr, std::nullopt);
  Xml x(a.text);
  if (x.root()->localName() != "ListBucketResult")
    throw S3Error("s3 list: hostile answer: root <" + x.root()->localName() + ">", a.status, "");
  ListPage page;
  for (auto* c : Xml::children(x.root(), "Contents")) {
    ListedObject o;
    o.key = Xml::text(c, "Key").value_or("");
    o.size = parse_u64(Xml::text(c, "Size").value_or(""), "Size");
    o.etag = unquote(Xml::text(c, "ETag").value_or(""));
    if (o.key.empty() || o.key.rfind(prefix, 0) != 0)
      throw S3Error("s3 list: hostile answer: key '" + o.key.substr(0, 80) + "' outside prefix", a.status, "");
    page.objects.push_back(std::move(o));
  }
  if (page.objects.size() > static_cast<std::size_t>(max_keys))
    throw S3Error("s3 list: hostile answer: more keys than asked for", a.status, "");
  if (Xml::text(x.root(), "IsTruncated").value_or("false") == "true") {
    auto token = Xml::text(x.root(), "NextContinuationToken");
    if (!token || token->empty() || (continuation && *token == *continuation))
      throw S3Error("s3 list: hostile answer: truncated without a new continuation token", a.status, "");
    page.next_token = std::move(token);
  }
  return page;
}

void Client::for_each_object(const std::string& prefix, const std::function<void(const ListedObject&)>& fn) const {
  // A token seen before would start the same pages again, forever (list_objects
  // only compares with the token it was given).
  std::set<std::string> seen;
  std::optional<std::string> token;
  do {
    auto page = list_objects(prefix, token);
    for (const auto& o : page.objects) fn(o);
    token = std::move(page.next_token);
    if (token && !seen.insert(*token).second)
      throw S3Error("s3 list: hostile answer: continuation token '" + token->substr(0, 80) + "' came back", 0, "");
  } while (token);
}

std::string Client::create_multipart_upload(const std::string& key) const {
  const auto a = perform("create multipart upload", "POST", key, {{"uploads", ""}}, {}, nullptr, nullptr, std::nullopt);
  Xml x(a.text);
  auto id = Xml::text(x.root(), "UploadId");
  if (!id || id->empty() || id->size() > 1024)
    throw S3Error("s3 create multipart upload " + key + ": hostile answer: no UploadId", a.status, "");
  return *id;
}

std::string Client::upload_part(const std::string& key, const std::string& upload_id, int part_number,
                                std::istream& in, std::uint64_t size, const std::string& payload_sha256) const {
  if (part_number < 1 || part_number > 10000) throw std::invalid_argument("s3 part number must be 1..10000");
  Body body{&in, size, payload_sha256};
  const auto a = perform("upload part " + std::to_string(part_number), "PUT", key,
                         {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}}, {}, &body, nullptr,
                         std::nullopt);
  const auto etag = unquote(a.headers.get("ETag", ""));
  if (etag.empty()) throw S3Error("s3 upload part " + key + ": hostile answer: no ETag", a.status, "");
  return etag;
}

std::string Client::complete_multipart_upload(const std::string& key, const std::string& upload_id,
                                              const std::vector<CompletedPart>& parts) const {
  std::string xml = "<CompleteMultipartUpload>";
  for (const auto& p : parts)
    xml += "<Part><PartNumber>" + std::to_string(p.number) + "</PartNumber><ETag>\"" + xml_escape(p.etag) +
           "\"</ETag></Part>";
  xml += "</CompleteMultipartUpload>";
  std::istringstream in(xml);
  Body body{&in, xml.size(), sha256_hex(xml)};
  const auto a = perform("complete multipart upload", "POST", key, {{"uploadId", upload_id}},
                         {{"content-type", "application/xml"}}, &body, nullptr, std::nullopt);
  // S3 may answer 200 and still fail: the error is then in the body.
  Xml x(a.text);
  if (x.root()->localName() == "Error") {
    const auto code = Xml::text(x.root(), "Code").value_or("");
    throw S3Error("s3 complete multipart upload " + key + ": " + code, a.status, code);
  }
  return unquote(Xml::text(x.root(), "ETag").value_or(""));  // RGW leaves it empty
}

void Client::abort_multipart_upload(const std::string& key, const std::string& upload_id) const {
  try {
    perform("abort multipart upload", "DELETE", key, {{"uploadId", upload_id}}, {}, nullptr, nullptr, std::nullopt);
  } catch (const S3Error& e) {
    if (e.status() != 404) throw;
  }
}

std::vector<IncompleteUpload> Client::list_multipart_uploads(const std::string& prefix) const {
  std::vector<IncompleteUpload> out;
  std::optional<std::pair<std::string, std::string>> marker;
  std::set<std::pair<std::string, std::string>> seen;  // markers given out: one seen again would loop
  for (;;) {
    Params q{{"uploads", ""}, {"prefix", prefix}, {"max-uploads", "1000"}};
    if (marker) {
      q.emplace_back("key-marker", marker->first);
      q.emplace_back("upload-id-marker", marker->second);
    }
    const auto a = perform("list multipart uploads", "GET", "", q, {}, nullptr, nullptr, std::nullopt);
    Xml x(a.text);
    const auto uploads = Xml::children(x.root(), "Upload");
    if (uploads.size() > 1000) throw S3Error("s3 list multipart uploads: hostile answer: too many", a.status, "");
    for (auto* u : uploads)
      out.push_back({Xml::text(u, "Key").value_or(""), Xml::text(u, "UploadId").value_or(""),
                     Xml::text(u, "Initiated").value_or("")});
    if (Xml::text(x.root(), "IsTruncated").value_or("false") != "true") break;
    std::pair<std::string, std::string> next{Xml::text(x.root(), "NextKeyMarker").value_or(""),
                                             Xml::text(x.root(), "NextUploadIdMarker").value_or("")};
    if (next.first.empty() || !seen.insert(next).second)
      throw S3Error("s3 list multipart uploads: hostile answer: truncated without a new marker", a.status, "");
    marker = std::move(next);
  }
  return out;
}

std::string Client::presigned_get_url(const std::string& key, std::chrono::seconds expires) const {
  const Target t = target(key);
  Request r{"GET", t.path, {}, {{"host", t.host_header}}, std::string(kUnsignedPayload)};
  const auto q = presigned_query(r, config_.credentials, Scope{config_.region, "s3"},
                                 amz_date(std::chrono::system_clock::now()), expires);
  return scheme_ + "://" + t.host_header + uri_encode(t.path, true) + "?" + q;
}

}  // namespace regcache::s3
