#pragma once
// A strict, pure HTTP/1.x request-head parser and chunked-body decoder: bytes
// in, a verdict out, no I/O and no allocation beyond the parsed values, so it
// can be unit-tested and fuzzed on its own.
//
// Strict means RFC 9112 read as a server that may sit behind any proxy: every
// framing a front-end could read differently from us is refused (§6.3) rather
// than guessed at — Content-Length with Transfer-Encoding, repeated or
// non-numeric Content-Length, a Transfer-Encoding other than exactly
// "chunked", obs-fold, bare CR or LF, control bytes, missing or repeated Host
// on HTTP/1.1. A refused head closes the connection: nothing after it can be
// trusted to start a request.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace regcache::proxy::http {

struct HeadLimits {
  std::size_t max_head = 64 << 10;     // request line + headers + blank line
  std::size_t max_target = 16 << 10;   // the request-target
  std::size_t max_headers = 256;       // header fields
  std::size_t max_method = 32;
};

enum class BodyFraming { None, Length, Chunked };

struct RequestHead {
  std::string method;
  std::string target;
  int minor_version = 1;  // HTTP/1.<minor>: 0 or 1
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order, values trimmed
  BodyFraming framing = BodyFraming::None;
  std::uint64_t content_length = 0;  // when framing == Length
  bool keep_alive = true;            // HTTP/1.1 unless "Connection: close"; 1.0 only with "keep-alive"
  bool expect_continue = false;      // "Expect: 100-continue"
};

struct HeadParse {
  enum class State { Incomplete, Complete, Invalid };
  State state = State::Incomplete;
  std::size_t consumed = 0;  // Complete: bytes of the head, blank line included (leading CRLFs too)
  RequestHead head;          // Complete
  int status = 0;            // Invalid: 400 or 505
  std::string error;         // Invalid: why, printable ASCII only (safe to log)
};

// Parses the request head at the start of `bytes` (a connection's buffered
// input). Incomplete: more bytes are needed and none seen so far is wrong.
// Invalid as soon as the bytes can no longer become a valid head (so a client
// that sends garbage or too much is refused without waiting for the rest).
HeadParse parse_request_head(std::string_view bytes, const HeadLimits& limits = {});

// Decodes a chunked body (RFC 9112 §7.1) incrementally. Chunk sizes are at
// most 16 hex digits and below 2^62; extensions are skipped but bounded;
// trailers are read and dropped, bounded. Line ends must be CRLF.
class ChunkedDecoder {
 public:
  static constexpr std::size_t kMaxExtension = 4096;  // bytes of extensions per chunk line
  static constexpr std::size_t kMaxTrailers = 16384;  // bytes of trailer section

  struct Step {
    std::size_t consumed = 0;  // bytes of `in` used
    std::size_t produced = 0;  // data bytes written to `out`
  };
  // Consumes framing and data from `in`, writing at most `out_size` data bytes
  // to `out`. Stops early at the end of the body, on an error, or when `out`
  // is full. Callers loop while !done() && !failed().
  Step decode(std::string_view in, char* out, std::size_t out_size);

  bool done() const { return state_ == State::Done; }
  bool failed() const { return state_ == State::Failed; }
  const std::string& error() const { return error_; }

 private:
  enum class State { Size, Extension, SizeLf, Data, DataCr, DataLf, TrailerStart, Trailer, TrailerLf, FinalLf, Done, Failed };
  void fail(std::string why);

  State state_ = State::Size;
  std::uint64_t remaining_ = 0;  // of the current chunk
  int digits_ = 0;
  std::size_t extension_bytes_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::string error_;
};

// Printable form of untrusted bytes for a log line: control and non-ASCII
// bytes become \xNN, the whole is cut at `max` bytes.
std::string printable(std::string_view bytes, std::size_t max = 200);

}  // namespace regcache::proxy::http
