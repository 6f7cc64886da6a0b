// The S3 client against a scripted fake on 127.0.0.1 (label unit): retries and
// backoff, and the checks on hostile answers, which a real RGW never produces.
#include <doctest/doctest.h>

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "cache/s3/s3_client.h"

using namespace regcache;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace {

// Answers every request with `script(request number from 1, request, body, response)`.
class FakeS3 {
 public:
  using Script = std::function<void(int n, HTTPServerRequest&, const std::string& body, HTTPServerResponse&)>;

  explicit FakeS3(Script script) : script_(std::move(script)) {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    port_ = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    params->setKeepAlive(false);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), socket, params);
    server_->start();
  }
  ~FakeS3() { server_->stopAll(true); }

  int requests() const { return count_.load(); }
  int port() const { return port_; }
  std::vector<std::string> bodies() {
    std::lock_guard lock(mutex_);
    return bodies_;
  }

  s3::Client client(int attempts = 4, std::size_t max_xml_bytes = 64 * 1024) const {
    s3::ClientConfig c;
    c.endpoint = "http://127.0.0.1:" + std::to_string(port_);
    c.bucket = "bucket";
    c.credentials = {"AK", "SK"};
    c.max_attempts = attempts;
    c.backoff_base = std::chrono::milliseconds(1);
    c.backoff_max = std::chrono::milliseconds(5);
    c.timeout = std::chrono::seconds(10);
    c.max_xml_bytes = max_xml_bytes;
    return s3::Client(c);
  }

 private:
  struct Handler : Poco::Net::HTTPRequestHandler {
    explicit Handler(FakeS3& f) : fake(f) {}
    void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
      std::string body;
      Poco::StreamCopier::copyToString(request.stream(), body);
      const int n = ++fake.count_;
      {
        std::lock_guard lock(fake.mutex_);
        fake.bodies_.push_back(body);
      }
      fake.script_(n, request, body, response);
    }
    FakeS3& fake;
  };
  struct Factory : Poco::Net::HTTPRequestHandlerFactory {
    explicit Factory(FakeS3& f) : fake(f) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override { return new Handler(fake); }
    FakeS3& fake;
  };

  Script script_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  int port_ = 0;
  std::atomic<int> count_{0};
  std::mutex mutex_;
  std::vector<std::string> bodies_;
};

void send(HTTPServerResponse& r, int status, const std::string& body, const std::string& type = "application/xml") {
  r.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  r.setContentType(type);
  r.setContentLength(static_cast<std::streamsize>(body.size()));
  r.send() << body;
}

std::string error_xml(const std::string& code) {
  return "<?xml version=\"1.0\"?><Error><Code>" + code + "</Code><Message>m</Message></Error>";
}

template <typename F>
s3::S3Error expect_s3_error(F&& f) {
  try {
    f();
  } catch (const s3::S3Error& e) {
    return e;
  }
  FAIL("no S3Error thrown");
  return s3::S3Error("", -1, "");
}

}  // namespace

TEST_CASE("s3 client: 503 SlowDown is retried with the whole body sent again") {
  FakeS3 fake([](int n, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    if (n <= 2) return send(r, 503, error_xml("SlowDown"));
    r.set("ETag", "\"e1\"");
    send(r, 200, "");
  });
  std::istringstream body("0123456789");
  body.seekg(2);  // the body starts where the stream is, and a retry rewinds to there
  CHECK(fake.client().put_object("k", body, 8) == "e1");
  CHECK(fake.requests() == 3);
  CHECK(fake.bodies() == std::vector<std::string>{"23456789", "23456789", "23456789"});
}

TEST_CASE("s3 client: 5xx on every attempt gives up after max_attempts with the status") {
  FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    send(r, 500, error_xml("InternalError"));
  });
  const auto e = expect_s3_error([&] { (void)fake.client(3).head_object("k"); });
  CHECK(e.status() == 500);
  CHECK(fake.requests() == 3);
}

TEST_CASE("s3 client: 403 is not retried") {
  FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    send(r, 403, error_xml("AccessDenied"));
  });
  const auto e = expect_s3_error([&] { fake.client().put_object("k", "v"); });
  CHECK(e.status() == 403);
  CHECK(e.code() == "AccessDenied");
  CHECK(fake.requests() == 1);
}

TEST_CASE("s3 client: HEAD 404 is an answer (nullopt), other statuses are errors") {
  FakeS3 fake([](int n, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    r.setStatus(n == 1 ? HTTPServerResponse::HTTP_NOT_FOUND : HTTPServerResponse::HTTP_FORBIDDEN);
    r.setContentLength(0);
    r.send();
  });
  auto c = fake.client();
  CHECK_FALSE(c.head_object("k"));
  CHECK(expect_s3_error([&] { (void)c.head_object("k"); }).status() == 403);
}

TEST_CASE("s3 client: a 206 for another range than asked is refused before any byte reaches the sink") {
  FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    r.set("Content-Range", "bytes 0-4/100");
    send(r, 206, "01234", "application/octet-stream");
  });
  std::size_t delivered = 0;
  const auto e = expect_s3_error([&] {
    (void)fake.client().get_object("k", [&](const char*, std::size_t n) { delivered += n; }, s3::ByteRange{10, 14});
  });
  CHECK(std::string(e.what()).find("Content-Range") != std::string::npos);
  CHECK(delivered == 0);
  CHECK(fake.requests() == 1);
}

TEST_CASE("s3 client: a whole object sent for a range from an offset is refused") {
  FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    send(r, 200, "0123456789", "application/octet-stream");
  });
  std::size_t delivered = 0;
  (void)expect_s3_error([&] {
    (void)fake.client().get_object("k", [&](const char*, std::size_t n) { delivered += n; }, s3::ByteRange{3, 5});
  });
  CHECK(delivered == 0);
}

TEST_CASE("s3 client: a GET body cut short of Content-Length throws, and is not retried after bytes went out") {
  FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    r.setContentLength(100000);
    r.setKeepAlive(false);
    r.send() << std::string(1000, 'x');  // then the connection closes
  });
  std::size_t delivered = 0;
  const auto e = expect_s3_error(
      [&] { (void)fake.client().get_object("k", [&](const char*, std::size_t n) { delivered += n; }); });
  CHECK(delivered == 1000);
  CHECK(std::string(e.what()).find("cut") != std::string::npos);
  CHECK(fake.requests() == 1);
}

TEST_CASE("s3 client: XML with a DTD is refused (no entity expansion)") {
  FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    send(r, 200,
         "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>"
         "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>&b;</Key><Size>1</Size></Contents>"
         "</ListBucketResult>");
  });
  const auto e = expect_s3_error([&] { (void)fake.client().list_objects(""); });
  CHECK(std::string(e.what()).find("DTD") != std::string::npos);
}

// The DTD refusal looked for the bytes "<!DOCTYPE"; expat also reads UTF-16 (BOM or
// declaration), where those bytes are interleaved with NULs and a DTD passed.
TEST_CASE("s3 client: XML with a DTD in UTF-16 is refused too") {
  const std::string doc =
      "<?xml version=\"1.0\" encoding=\"UTF-16\"?><!DOCTYPE x [<!ENTITY a \"p/injected\">]>"
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>&a;</Key><Size>1</Size></Contents>"
      "</ListBucketResult>";
  for (const bool bom : {true, false}) {
    std::string utf16 = bom ? std::string("\xff\xfe") : std::string();
    for (char c : doc) {
      utf16 += c;
      utf16 += '\0';
    }
    FakeS3 fake([&](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) { send(r, 200, utf16); });
    const auto e = expect_s3_error([&] { (void)fake.client().list_objects("p/"); });
    CHECK(std::string(e.what()).find("hostile answer") != std::string::npos);
  }
}

// Expat does not recurse, but the DOM it builds is freed (and its text gathered)
// recursively: a deeply nested answer under the size cap must not exhaust the stack.
TEST_CASE("s3 client: deeply nested XML under the size cap is refused") {
  const std::size_t depth = 1'000'000;
  std::string doc = "<ListBucketResult>";
  for (std::size_t i = 0; i < depth; ++i) doc += "<a>";
  for (std::size_t i = 0; i < depth; ++i) doc += "</a>";
  doc += "</ListBucketResult>";
  FakeS3 fake([&](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) { send(r, 200, doc); });
  const auto e = expect_s3_error([&] { (void)fake.client(1, 8u << 20).list_objects(""); });
  CHECK(std::string(e.what()).find("hostile answer") != std::string::npos);
}

// A DOM node costs some hundred bytes: 8 MiB of empty elements would be ~2 million.
TEST_CASE("s3 client: an XML answer with more elements than any S3 answer is refused") {
  std::string doc = "<ListBucketResult><IsTruncated>false</IsTruncated>";
  for (int i = 0; i < 200'000; ++i) doc += "<a/>";
  doc += "</ListBucketResult>";
  FakeS3 fake([&](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) { send(r, 200, doc); });
  const auto e = expect_s3_error([&] { (void)fake.client(1, 8u << 20).list_objects(""); });
  CHECK(std::string(e.what()).find("hostile answer") != std::string::npos);
}

TEST_CASE("s3 client: the depth count is not fooled by comments, CDATA, attributes or self-closing tags") {
  SUBCASE("an end tag hidden in a comment, CDATA or an attribute does not lower the depth") {
    for (const std::string step : {"<a><!--</a>-->", "<a><![CDATA[</a>]]>", "<a x='/'>", "<a x=\"/>\">"}) {
      std::string doc = "<ListBucketResult>";
      for (int i = 0; i < 1000; ++i) doc += step;
      FakeS3 fake([&](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) { send(r, 200, doc); });
      const auto e = expect_s3_error([&] { (void)fake.client(1).list_objects(""); });
      CHECK(std::string(e.what()).find("nested deeper") != std::string::npos);
    }
  }
  SUBCASE("a real listing page of 1000 keys with self-closing tags and comments parses") {
    std::string doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                      "<!-- a <comment> --><Name>bucket</Name><Prefix/><IsTruncated>false</IsTruncated>";
    for (int i = 0; i < 1000; ++i)
      doc += "<Contents><Key>p/" + std::to_string(i) + "</Key><Size>1</Size><ETag>&quot;e&quot;</ETag>"
             "<Owner><ID>o</ID><DisplayName/></Owner><StorageClass>STANDARD</StorageClass></Contents>";
    doc += "</ListBucketResult>";
    FakeS3 fake([&](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) { send(r, 200, doc); });
    const auto page = fake.client(1, 8u << 20).list_objects("p/", std::nullopt, 1000);
    CHECK(page.objects.size() == 1000);
  }
}

TEST_CASE("s3 client: a redirect from the endpoint is not followed") {
  std::atomic<int> other{0};
  FakeS3 elsewhere([&](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    ++other;
    send(r, 200, "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  });
  const std::string location = "http://127.0.0.1:" + std::to_string(elsewhere.port()) + "/bucket";
  FakeS3 fake([&](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    r.set("Location", location);
    send(r, 307, "");
  });
  const auto e = expect_s3_error([&] { (void)fake.client(1).list_objects(""); });
  CHECK(e.status() == 307);
  CHECK(other.load() == 0);
}

TEST_CASE("s3 client: an XML answer over the cap is refused") {
  FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    send(r, 200, "<ListBucketResult>" + std::string(100 * 1024, ' ') + "</ListBucketResult>");
  });
  const auto e = expect_s3_error([&] { (void)fake.client().list_objects(""); });
  CHECK(std::string(e.what()).find("body over") != std::string::npos);
}

TEST_CASE("s3 client: listings that would loop or overflow the page are refused") {
  SUBCASE("truncated without a continuation token") {
    FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
      send(r, 200, "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
    });
    (void)expect_s3_error([&] { fake.client().for_each_object("", [](const s3::ListedObject&) {}); });
    CHECK(fake.requests() == 1);
  }
  SUBCASE("the same token again") {
    FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
      send(r, 200,
           "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken>"
           "</ListBucketResult>");
    });
    (void)expect_s3_error([&] { fake.client().for_each_object("", [](const s3::ListedObject&) {}); });
    CHECK(fake.requests() == 2);
  }
  SUBCASE("more keys than max-keys, or keys outside the prefix, or a size that is not a number") {
    for (const std::string contents :
         {"<Contents><Key>p/a</Key><Size>1</Size></Contents><Contents><Key>p/b</Key><Size>1</Size></Contents>",
          "<Contents><Key>q/a</Key><Size>1</Size></Contents>", "<Contents><Key>p/a</Key><Size>-1</Size></Contents>"}) {
      FakeS3 fake([&](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
        send(r, 200, "<ListBucketResult><IsTruncated>false</IsTruncated>" + contents + "</ListBucketResult>");
      });
      (void)expect_s3_error([&] { (void)fake.client().list_objects("p/", std::nullopt, 1); });
    }
  }
}

// Tokens (markers) that cycle, a b a b ...: each differs from the one before, so
// only remembering every token given out ends the walk. The fake gives up after
// 50 requests so that a client without the check fails instead of hanging.
TEST_CASE("s3 client: listings whose continuation tokens or markers cycle are refused") {
  SUBCASE("objects") {
    FakeS3 fake([](int n, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
      if (n > 50) return send(r, 403, error_xml("AccessDenied"));
      send(r, 200,
           "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>" + std::string(n % 2 ? "a" : "b") +
               "</NextContinuationToken></ListBucketResult>");
    });
    const auto e = expect_s3_error([&] { fake.client(1).for_each_object("", [](const s3::ListedObject&) {}); });
    CHECK(std::string(e.what()).find("hostile answer") != std::string::npos);
    CHECK(fake.requests() == 3);
  }
  SUBCASE("multipart uploads") {
    FakeS3 fake([](int n, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
      if (n > 50) return send(r, 403, error_xml("AccessDenied"));
      const std::string m = n % 2 ? "a" : "b";
      send(r, 200,
           "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated><NextKeyMarker>" + m +
               "</NextKeyMarker><NextUploadIdMarker>" + m + "</NextUploadIdMarker><Upload><Key>" + m +
               "</Key><UploadId>u</UploadId></Upload></ListMultipartUploadsResult>");
    });
    const auto e = expect_s3_error([&] { (void)fake.client(1).list_multipart_uploads(""); });
    CHECK(std::string(e.what()).find("hostile answer") != std::string::npos);
    CHECK(fake.requests() == 3);
  }
}

TEST_CASE("s3 client: CompleteMultipartUpload answering 200 with an <Error> is an error") {
  FakeS3 fake([](int, HTTPServerRequest&, const std::string&, HTTPServerResponse& r) {
    send(r, 200, error_xml("InvalidPart"));
  });
  const auto e = expect_s3_error([&] { (void)fake.client().complete_multipart_upload("k", "id", {{1, "e"}}); });
  CHECK(e.code() == "InvalidPart");
}

TEST_CASE("s3 client: the request is signed and addressed path-style by default") {
  std::string target, auth, host, sha;
  FakeS3 fake([&](int, HTTPServerRequest& q, const std::string&, HTTPServerResponse& r) {
    target = q.getURI();
    auth = q.get("Authorization", "");
    host = q.getHost();
    sha = q.get("x-amz-content-sha256", "");
    send(r, 200, "");
  });
  fake.client().put_object("dir/a b", "x");
  CHECK(target == "/bucket/dir/a%20b");
  CHECK(auth.rfind("AWS4-HMAC-SHA256 Credential=AK/", 0) == 0);
  CHECK(auth.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date") != std::string::npos);
  CHECK(host.rfind("127.0.0.1:", 0) == 0);
  CHECK(sha == s3::sha256_hex("x"));
}

TEST_CASE("s3 client: nothing listening is retried, then an error with status 0") {
  int port = 0;
  {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    port = socket.address().port();
  }
  s3::ClientConfig c;
  c.endpoint = "http://127.0.0.1:" + std::to_string(port);
  c.bucket = "bucket";
  c.max_attempts = 2;
  c.backoff_base = std::chrono::milliseconds(1);
  const auto e = expect_s3_error([&] { (void)s3::Client(c).head_object("k"); });
  CHECK(e.status() == 0);
  CHECK(std::string(e.what()).find("after 2 attempts") != std::string::npos);
}

TEST_CASE("s3 client: configuration is checked") {
  s3::ClientConfig c;
  c.bucket = "bucket";
  c.endpoint = "ftp://127.0.0.1";
  CHECK_THROWS_AS(s3::Client{c}, std::invalid_argument);
  c.endpoint = "http://127.0.0.1:9000/prefix";
  CHECK_THROWS_AS(s3::Client{c}, std::invalid_argument);
  c.endpoint = "http://127.0.0.1:9000";
  c.bucket = "Bad_Bucket";
  CHECK_THROWS_AS(s3::Client{c}, std::invalid_argument);
}

TEST_CASE("s3 client: the secret key comes from the first line of a file, trimmed - empty or missing is an error") {
  const auto dir = std::filesystem::temp_directory_path() / ("regcache-s3-secret-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "ok") << "  s3cr3t/with+chars \nsecond line\n";
    std::ofstream(dir / "empty") << "\n";
  }
  CHECK(s3::read_secret_key_file(dir / "ok") == "s3cr3t/with+chars");
  CHECK_THROWS_WITH(s3::read_secret_key_file(dir / "empty"), doctest::Contains("is empty"));
  CHECK_THROWS_WITH(s3::read_secret_key_file(dir / "missing"), doctest::Contains("missing"));
  std::filesystem::remove_all(dir);
}

namespace {

// A raw HTTP/1.1 server on 127.0.0.1 that keeps connections open (keep-alive) and
// counts the connections it accepted. Every request is answered 200 with an ETag and
// "ok" as body (none for HEAD). With `close_after_each`, it closes each connection
// right after its first answer without saying so (no "Connection: close"), like a
// server whose idle timeout is shorter than the client's.
class KeepAliveS3 {
 public:
  explicit KeepAliveS3(bool close_after_each = false)
      : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)), close_after_each_(close_after_each) {
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~KeepAliveS3() {
    stop_ = true;
    // Wakes accept() (loopback only).
    try {
      Poco::Net::StreamSocket wake(Poco::Net::SocketAddress("127.0.0.1", port()));
    } catch (const Poco::Exception&) {
    }
    acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      for (auto& s : open_) try {
          s.shutdown();
        } catch (const Poco::Exception&) {  // closed already
        }
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }
  int port() const { return socket_.address().port(); }
  int accepted() const { return accepted_.load(); }
  int requests() const { return requests_.load(); }
  s3::Client client(int attempts) const {
    s3::ClientConfig c;
    c.endpoint = "http://127.0.0.1:" + std::to_string(port());
    c.bucket = "bucket";
    c.credentials = {"AK", "SK"};
    c.max_attempts = attempts;
    c.backoff_base = std::chrono::milliseconds(1);
    c.backoff_max = std::chrono::milliseconds(5);
    c.timeout = std::chrono::seconds(10);
    return s3::Client(c);
  }

 private:
  void accept_loop() {
    while (!stop_) {
      Poco::Net::StreamSocket s;
      try {
        s = socket_.acceptConnection();
      } catch (const Poco::Exception&) {
        continue;
      }
      if (stop_) break;
      ++accepted_;
      std::lock_guard lock(mutex_);
      open_.push_back(s);
      threads_.emplace_back([this, s]() mutable { serve(s); });
    }
  }
  void serve(Poco::Net::StreamSocket s) {
    std::string in;
    char buf[4096];
    try {
      for (;;) {
        std::size_t end;
        while ((end = in.find("\r\n\r\n")) == std::string::npos) {
          const int n = s.receiveBytes(buf, sizeof buf);
          if (n <= 0) return;
          in.append(buf, static_cast<std::size_t>(n));
        }
        std::string head = in.substr(0, end);
        in.erase(0, end + 4);
        std::size_t length = 0;
        {
          std::string lower = head;
          for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          if (auto at = lower.find("content-length:"); at != std::string::npos)
            length = std::stoul(lower.substr(at + 15));
        }
        while (in.size() < length) {
          const int n = s.receiveBytes(buf, sizeof buf);
          if (n <= 0) return;
          in.append(buf, static_cast<std::size_t>(n));
        }
        in.erase(0, length);
        ++requests_;
        const bool head_request = head.rfind("HEAD ", 0) == 0;
        const std::string answer = std::string("HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: 2\r\n\r\n") +
                                   (head_request ? "" : "ok");
        s.sendBytes(answer.data(), static_cast<int>(answer.size()));
        if (close_after_each_) {
          s.close();
          return;
        }
      }
    } catch (const Poco::Exception&) {
    }
  }

  Poco::Net::ServerSocket socket_;
  bool close_after_each_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
  std::mutex mutex_;
  std::vector<Poco::Net::StreamSocket> open_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace

TEST_CASE("s3 client: keep-alive connections are reused across calls") {
  KeepAliveS3 fake;
  auto client = fake.client(1);
  for (int i = 0; i < 10; ++i) {
    CHECK(client.put_object("k" + std::to_string(i), "abc") == "e1");
    CHECK(client.head_object("k" + std::to_string(i)).has_value());
  }
  CHECK(fake.requests() == 20);
  CHECK(fake.accepted() == 1);
  // Copies of a client share its pool.
  auto copy = client;
  CHECK(copy.head_object("k0").has_value());
  CHECK(fake.accepted() == 1);
}

TEST_CASE("s3 client: concurrent calls each use their own connection, at most one per caller") {
  KeepAliveS3 fake;
  auto client = fake.client(1);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i)
        try {
          if (client.put_object("t" + std::to_string(t), "abc") == "e1") ++ok;
        } catch (const std::exception&) {
        }
    });
  for (auto& t : threads) t.join();
  CHECK(ok == 40);
  CHECK(fake.requests() == 40);
  CHECK(fake.accepted() >= 1);
  CHECK(fake.accepted() <= 4);
}

TEST_CASE("s3 client: a pooled connection the server closed is retried on a fresh one, not as a failed attempt") {
  KeepAliveS3 fake(/*close_after_each=*/true);
  auto client = fake.client(1);  // no retries: only the stale-connection retry can save a call
  std::istringstream body("0123456789");
  CHECK(client.put_object("k", body, 10) == "e1");
  for (int i = 0; i < 5; ++i) {
    std::istringstream again("0123456789");
    CHECK(client.put_object("k", again, 10) == "e1");
    CHECK(client.head_object("k").has_value());
  }
  CHECK(fake.requests() == 11);
  CHECK(fake.accepted() == 11);
}
