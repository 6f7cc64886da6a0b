// The request-head parser and chunked decoder: every framing rule of RFC 9112
// §6.3 the engine relies on to never read one request where a proxy in front
// reads another.
#include <doctest/doctest.h>

#include <string>

#include "proxy/http_parser.h"

using namespace regcache::proxy::http;
using State = HeadParse::State;

namespace {

HeadParse parse(const std::string& bytes, const HeadLimits& limits = {}) { return parse_request_head(bytes, limits); }

// A refused head, and why.
std::string refused(const std::string& bytes) {
  HeadParse p = parse(bytes);
  return p.state == State::Invalid ? std::to_string(p.status) + " " + p.error : "accepted";
}

// Decodes `wire` fed in pieces of `step` bytes; "ERROR: ..." when refused.
std::string dechunk(const std::string& wire, std::size_t step = 1 << 20, std::size_t* left_over = nullptr) {
  ChunkedDecoder d;
  std::string out, pending;
  std::size_t fed = 0;
  char buffer[7];  // small on purpose: output-full stops must resume correctly
  while (!d.done() && !d.failed()) {
    if (pending.empty()) {
      if (fed >= wire.size()) return "INCOMPLETE";
      pending = wire.substr(fed, step);
      fed += pending.size();
    }
    auto s = d.decode(pending, buffer, sizeof buffer);
    out.append(buffer, s.produced);
    pending.erase(0, s.consumed);
  }
  if (left_over) *left_over = pending.size() + (wire.size() - fed);
  return d.failed() ? "ERROR: " + d.error() : out;
}

}  // namespace

TEST_CASE("http parser: a simple GET is complete, with its length, headers and keep-alive") {
  std::string head = "GET /v2/ HTTP/1.1\r\nHost: example\r\nAccept: a\r\nAccept:  b \r\n\r\n";
  HeadParse p = parse(head + "NEXT");
  REQUIRE(p.state == State::Complete);
  CHECK(p.consumed == head.size());
  CHECK(p.head.method == "GET");
  CHECK(p.head.target == "/v2/");
  CHECK(p.head.minor_version == 1);
  CHECK(p.head.keep_alive);
  CHECK(p.head.framing == BodyFraming::None);
  REQUIRE(p.head.headers.size() == 3);
  CHECK(p.head.headers[2].second == "b");  // OWS trimmed
}

TEST_CASE("http parser: every prefix of a valid head is incomplete, never an error") {
  std::string head = "PUT /v2/a/manifests/v1?x=1 HTTP/1.1\r\nHost: h:5000\r\nContent-Length: 12\r\n\r\n";
  for (std::size_t n = 0; n < head.size(); ++n) {
    INFO("prefix " << n);
    CHECK(parse(head.substr(0, n)).state == State::Incomplete);
  }
  HeadParse p = parse(head);
  REQUIRE(p.state == State::Complete);
  CHECK(p.head.framing == BodyFraming::Length);
  CHECK(p.head.content_length == 12);
}

TEST_CASE("http parser: pipelined heads are parsed one after another from the leftover bytes") {
  std::string one = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", two = "HEAD /b HTTP/1.1\r\nHost: h\r\n\r\n",
              three = "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  std::string all = one + two + three;
  std::vector<std::string> targets;
  while (!all.empty()) {
    HeadParse p = parse(all);
    REQUIRE(p.state == State::Complete);
    targets.push_back(p.head.target);
    all.erase(0, p.consumed);
  }
  CHECK(targets == std::vector<std::string>{"/a", "/b", "/c"});
  CHECK_FALSE(parse(three).head.keep_alive);
}

TEST_CASE("http parser: empty lines before a request are skipped, a few at most") {
  HeadParse p = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  REQUIRE(p.state == State::Complete);
  CHECK(p.head.target == "/");
  std::string many_empty;
  for (int i = 0; i < 20; ++i) many_empty += "\r\n";
  CHECK(parse(many_empty + "GET / HTTP/1.1\r\nHost: h\r\n\r\n").state == State::Invalid);
}

TEST_CASE("http parser: Content-Length with Transfer-Encoding is refused") {
  CHECK(refused("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        "400 both Content-Length and Transfer-Encoding");
  CHECK(refused("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n") ==
        "400 both Content-Length and Transfer-Encoding");
}

TEST_CASE("http parser: repeated or invalid Content-Length is refused") {
  auto with_length = [](const std::string& lines) { return refused("POST /x HTTP/1.1\r\nHost: h\r\n" + lines + "\r\n"); };
  CHECK(with_length("Content-Length: 5\r\nContent-Length: 5\r\n") == "400 more than one Content-Length header");
  CHECK(with_length("Content-Length: 5\r\nContent-Length: 6\r\n") == "400 more than one Content-Length header");
  for (const char* bad : {"abc", "1,1", "+5", "-5", "5 5", "0x10", "", "99999999999999999999", "18446744073709551616"}) {
    INFO(bad);
    CHECK(with_length(std::string("Content-Length: ") + bad + "\r\n") == "400 invalid Content-Length");
  }
  HeadParse p = parse("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 9999999999999999999\r\n\r\n");
  REQUIRE(p.state == State::Complete);
  CHECK(p.head.content_length == 9999999999999999999ULL);
  CHECK(parse("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").head.framing == BodyFraming::None);
}

TEST_CASE("http parser: Transfer-Encoding must be exactly chunked, once, and not on HTTP/1.0") {
  auto with_te = [](const std::string& value) {
    return refused("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + value + "\r\n\r\n");
  };
  for (const char* bad : {"gzip, chunked", "chunked, chunked", "identity", "chunked;q=1", "xchunked", "gzip"}) {
    INFO(bad);
    CHECK(with_te(bad) == "400 Transfer-Encoding other than chunked");
  }
  CHECK(with_te("chunked") == "accepted");
  CHECK(with_te("Chunked") == "accepted");
  CHECK(parse("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n").head.framing == BodyFraming::Chunked);
  CHECK(refused("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        "400 more than one Transfer-Encoding header");
  CHECK(refused("POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == "400 Transfer-Encoding in an HTTP/1.0 request");
}

TEST_CASE("http parser: HTTP/1.1 needs exactly one Host, HTTP/1.0 at most one") {
  CHECK(refused("GET / HTTP/1.1\r\n\r\n") == "400 HTTP/1.1 request without a Host header");
  CHECK(refused("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == "400 more than one Host header");
  CHECK(refused("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n") == "400 invalid Host header");
  CHECK(refused("GET / HTTP/1.0\r\n\r\n") == "accepted");
  CHECK(refused("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n") == "400 more than one Host header");
}

TEST_CASE("http parser: obs-fold, whitespace before the colon and bad header bytes are refused") {
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n") == "400 obsolete line folding in a header");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\tfolded\r\n\r\n") == "400 obsolete line folding in a header");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n") == "400 invalid header name");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n") == "400 malformed header line");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n") == "400 malformed header line");
  CHECK(refused(std::string("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 33)) == "400 control byte in the request head");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7f\r\n\r\n") == "400 control byte in the request head");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n") == "accepted");  // obs-text
}

TEST_CASE("http parser: bare CR and bare LF are refused, as soon as they are seen") {
  CHECK(refused("GET / HTTP/1.1\nHost: h\n\n") == "400 bare LF in the request head");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\n\r\n") == "400 bare LF in the request head");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\r\n\n") == "400 bare LF in the request head");
  CHECK(refused("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n") == "400 bare CR in the request head");
  CHECK(refused("GET / HTTP/1.1\r\nX: a\rb") == "400 bare CR in the request head");  // before the head ends
  CHECK(parse("GET / HTTP/1.1\r\nX: a\r").state == State::Incomplete);  // the LF may be next
}

TEST_CASE("http parser: control bytes and spaces in the target, bad methods and versions are refused") {
  CHECK(refused("GET /v2/\x01x HTTP/1.1\r\nHost: h\r\n\r\n") == "400 control byte in the request head");
  CHECK(refused("GET /v2/\x1b[31m HTTP/1.1\r\nHost: h\r\n\r\n") == "400 control byte in the request head");
  CHECK(refused("GET /v2/\xff HTTP/1.1\r\nHost: h\r\n\r\n") == "400 control or non-ASCII byte in the request target");
  CHECK(refused("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n") == "400 invalid HTTP version");
  CHECK(refused("GET  /a HTTP/1.1\r\nHost: h\r\n\r\n") == "400 malformed request line");
  CHECK(refused("G(T /a HTTP/1.1\r\nHost: h\r\n\r\n") == "400 invalid method");
  CHECK(refused(" GET /a HTTP/1.1\r\nHost: h\r\n\r\n") == "400 malformed request line");
  CHECK(refused("GET /a\r\n\r\n") == "400 malformed request line");  // HTTP/0.9
  CHECK(refused("GET /a http/1.1\r\nHost: h\r\n\r\n") == "400 invalid HTTP version");
  CHECK(refused("GET /a HTTP/1.10\r\nHost: h\r\n\r\n") == "400 invalid HTTP version");
  CHECK(refused("GET /a HTTP/1.1 \r\nHost: h\r\n\r\n") == "400 invalid HTTP version");
  CHECK(refused("GET /a HTTP/9.9\r\nHost: h\r\n\r\n") == "505 HTTP version 9.9 is not supported");
  CHECK(refused("GET /a HTTP/2.0\r\nHost: h\r\n\r\n") == "505 HTTP version 2.0 is not supported");
  HeadParse later_minor = parse("GET /a HTTP/1.7\r\nHost: h\r\n\r\n");  // served as HTTP/1.1
  REQUIRE(later_minor.state == State::Complete);
  CHECK(later_minor.head.minor_version == 1);
}

TEST_CASE("http parser: a TLS ClientHello or binary garbage is refused before any line ends") {
  std::string hello = "\x16\x03\x01\x00\xf8\x01\x00\x00\xf4\x03\x03";
  CHECK(parse(hello).state == State::Invalid);
}

TEST_CASE("http parser: HTTP/1.0 keeps the connection only when asked, Connection: close ends 1.1") {
  CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").head.keep_alive);
  CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").head.keep_alive);
  CHECK_FALSE(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n").head.keep_alive);
  CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n").head.keep_alive);
  CHECK(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").head.expect_continue);
}

TEST_CASE("http parser: size limits on the head, the target and the header count") {
  HeadLimits limits;
  limits.max_head = 1024;
  limits.max_target = 100;
  limits.max_headers = 5;
  CHECK(parse("GET /" + std::string(99, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", limits).state == State::Complete);
  CHECK(parse("GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", limits).error ==
        "request target longer than 100 bytes");
  // A long line is refused before it ends.
  CHECK(parse("GET /" + std::string(200, 'a'), limits).state == State::Invalid);
  CHECK(parse("GET / HTTP/1.1\r\nX: " + std::string(2000, 'a'), limits).error == "request head longer than 1024 bytes");
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 5; ++i) many += "X: 1\r\n";
  CHECK(parse(many + "\r\n", limits).error == "more than 5 header fields");
  // Today's refusals with the default limits: 100 KB targets, 100 KB lines, 10 000 headers.
  CHECK(parse("GET /" + std::string(100'000, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n").status == 400);
  CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(100'000, 'a') + "\r\n\r\n").status == 400);
  std::string ten_thousand = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 10'000; ++i) ten_thousand += "X: 1\r\n";
  CHECK(parse(ten_thousand + "\r\n").status == 400);
}

TEST_CASE("chunked decoder: chunks, extensions and trailers decode to the data, in any pieces") {
  std::string wire = "5\r\nhello\r\n6;name=value;x\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
  for (std::size_t step : {1, 2, 3, 7, 1000}) {
    INFO("step " << step);
    std::size_t left = 99;
    CHECK(dechunk(wire + "NEXT", step, &left) == "hello world0123456789");
    CHECK(left == 4);  // the decoder stops exactly at the body's end
  }
  CHECK(dechunk("0\r\n\r\n").empty());
  CHECK(dechunk("00000001\r\nx\r\n0\r\n\r\n") == "x");
  CHECK(dechunk("5\r\nhel") == "INCOMPLETE");
}

TEST_CASE("chunked decoder: malformed sizes, line ends and oversized parts are refused") {
  CHECK(dechunk("x\r\n") == "ERROR: chunk size expected");
  CHECK(dechunk("\r\n") == "ERROR: chunk size expected");
  CHECK(dechunk("-1\r\n") == "ERROR: chunk size expected");
  CHECK(dechunk("5\nhello\r\n0\r\n\r\n") == "ERROR: invalid byte in a chunk size");
  CHECK(dechunk("5\r\rhello") == "ERROR: chunk size line not ended by CRLF");
  CHECK(dechunk("5\r\nhelloX\r\n") == "ERROR: chunk data not followed by CRLF");
  CHECK(dechunk("5\r\nhello\rX") == "ERROR: chunk data not followed by CRLF");
  CHECK(dechunk("5\r\nhello\r\n0\r\n\n") == "ERROR: invalid byte in a chunked trailer");
  CHECK(dechunk("5\r\nhello\r\n0\r\nX: 1\n") == "ERROR: invalid byte in a chunked trailer");
  CHECK(dechunk("1 ;a\x01\r\n") == "ERROR: invalid byte in a chunk extension");
  CHECK(dechunk("1;" + std::string(ChunkedDecoder::kMaxExtension + 1, 'a') + "\r\n") == "ERROR: chunk extension too long");
  CHECK(dechunk("0\r\n" + std::string(ChunkedDecoder::kMaxTrailers + 1, 'a')) == "ERROR: chunked trailers too long");
  CHECK(dechunk("10000000000000000\r\n") == "ERROR: chunk size too large");  // 17 digits
  CHECK(dechunk("FFFFFFFFFFFFFFFF\r\n") == "ERROR: chunk size too large");   // 2^64-1 would overflow sums
}

TEST_CASE("printable: control and non-ASCII bytes are escaped for log lines") {
  CHECK(printable("GET /a\x1b[31m\n\xff") == "GET /a\\x1b[31m\\x0a\\xff");
  CHECK(printable(std::string(300, 'a'), 10) == "aaaaaaaaaa...");
}
