#include "proxy/http_parser.h"

#include <algorithm>
#include <cstring>

namespace regcache::proxy::http {
namespace {

// RFC 9110 §5.6.2 token characters.
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

// Field-value bytes (§5.5): visible ASCII, obs-text, SP and HTAB.
bool is_value_byte(unsigned char c) { return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f); }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

HeadParse invalid(std::string why, int status = 400) {
  HeadParse p;
  p.state = HeadParse::State::Invalid;
  p.status = status;
  p.error = std::move(why);
  return p;
}

// request-line = method SP request-target SP HTTP-version (§3)
bool parse_request_line(std::string_view line, const HeadLimits& limits, RequestHead& head, HeadParse& error) {
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) {
    error = invalid("malformed request line");
    return false;
  }
  std::string_view method = line.substr(0, sp1);
  if (method.size() > limits.max_method || !std::all_of(method.begin(), method.end(), [](char c) {
        return is_tchar(static_cast<unsigned char>(c));
      })) {
    error = invalid("invalid method");
    return false;
  }
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) {
    error = invalid("malformed request line");
    return false;
  }
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target.size() > limits.max_target) {
    error = invalid("request target longer than " + std::to_string(limits.max_target) + " bytes");
    return false;
  }
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e) {
      error = invalid("control or non-ASCII byte in the request target");
      return false;
    }
  }
  std::string_view version = line.substr(sp2 + 1);
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || !std::isdigit(static_cast<unsigned char>(version[5])) ||
      !std::isdigit(static_cast<unsigned char>(version[7]))) {
    error = invalid("invalid HTTP version");
    return false;
  }
  if (version[5] != '1') {
    error = invalid("HTTP version " + std::string(version.substr(5)) + " is not supported", 505);
    return false;
  }
  head.method.assign(method);
  head.target.assign(target);
  // HTTP/1.2 and later minors are served as HTTP/1.1 (§2.5).
  head.minor_version = version[7] == '0' ? 0 : 1;
  return true;
}

// Decides framing and connection handling once every header is in (§6.3).
bool finish_head(RequestHead& head, HeadParse& error) {
  int hosts = 0, lengths = 0, encodings = 0;
  std::string_view length_value, encoding_value;
  bool close = false, keep_alive = false;
  for (const auto& [name, value] : head.headers) {
    if (iequals(name, "Host")) {
      ++hosts;
      if (value.find_first_of(" \t,") != std::string::npos) {
        error = invalid("invalid Host header");
        return false;
      }
    } else if (iequals(name, "Content-Length")) {
      ++lengths;
      length_value = value;
    } else if (iequals(name, "Transfer-Encoding")) {
      ++encodings;
      encoding_value = value;
    } else if (iequals(name, "Connection")) {
      std::string_view rest = value;
      while (!rest.empty()) {
        auto comma = rest.find(',');
        std::string_view token = trim_ows(rest.substr(0, comma));
        if (iequals(token, "close")) close = true;
        if (iequals(token, "keep-alive")) keep_alive = true;
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    } else if (iequals(name, "Expect")) {
      if (iequals(value, "100-continue")) head.expect_continue = true;
    }
  }
  if (hosts > 1) {
    error = invalid("more than one Host header");
    return false;
  }
  if (hosts == 0 && head.minor_version == 1) {
    error = invalid("HTTP/1.1 request without a Host header");
    return false;
  }
  if (lengths > 1) {
    error = invalid("more than one Content-Length header");
    return false;
  }
  if (encodings > 1) {
    error = invalid("more than one Transfer-Encoding header");
    return false;
  }
  if (lengths && encodings) {
    error = invalid("both Content-Length and Transfer-Encoding");
    return false;
  }
  if (encodings) {
    if (head.minor_version == 0) {
      error = invalid("Transfer-Encoding in an HTTP/1.0 request");
      return false;
    }
    if (!iequals(encoding_value, "chunked")) {
      error = invalid("Transfer-Encoding other than chunked");
      return false;
    }
    head.framing = BodyFraming::Chunked;
  } else if (lengths) {
    if (length_value.empty() || length_value.size() > 19 ||
        !std::all_of(length_value.begin(), length_value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      error = invalid("invalid Content-Length");
      return false;
    }
    std::uint64_t n = 0;
    for (char c : length_value) n = n * 10 + static_cast<std::uint64_t>(c - '0');  // 19 digits cannot overflow
    head.content_length = n;
    head.framing = n > 0 ? BodyFraming::Length : BodyFraming::None;
  }
  head.keep_alive = head.minor_version == 1 ? !close : (keep_alive && !close);
  return true;
}

}  // namespace

HeadParse parse_request_head(std::string_view bytes, const HeadLimits& limits) {
  // A client may send an empty line or two before a request (§2.2): the CRLF
  // some send after a POST body.
  std::size_t start = 0;
  while (start < 8 && bytes.size() >= start + 2 && bytes[start] == '\r' && bytes[start + 1] == '\n') start += 2;

  HeadParse result;
  RequestHead& head = result.head;
  std::size_t pos = start;
  bool first_line = true;
  for (;;) {
    std::size_t nl = bytes.find('\n', pos);
    std::string_view line = bytes.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    // Bytes that can never belong to a head fail now, not once the head ends.
    for (std::size_t i = 0; i < line.size(); ++i) {
      auto c = static_cast<unsigned char>(line[i]);
      // A CR is only ever the last byte before LF (or of what arrived so far).
      if (c == '\r' && i + 1 != line.size()) return invalid("bare CR in the request head");
      if (c < 0x20 && c != '\t' && c != '\r') return invalid("control byte in the request head");
      if (c == 0x7f) return invalid("control byte in the request head");
    }
    if (nl == std::string_view::npos) {
      if (bytes.size() - start > limits.max_head)
        return invalid("request head longer than " + std::to_string(limits.max_head) + " bytes");
      if (first_line && line.size() > limits.max_method + limits.max_target + 12)
        return invalid("request line too long");
      return result;  // Incomplete
    }
    if (nl + 1 - start > limits.max_head)
      return invalid("request head longer than " + std::to_string(limits.max_head) + " bytes");
    if (line.empty() || line.back() != '\r') return invalid("bare LF in the request head");
    line.remove_suffix(1);
    pos = nl + 1;

    if (first_line) {
      if (!parse_request_line(line, limits, head, result)) return result;
      first_line = false;
      continue;
    }
    if (line.empty()) {  // the end of the head
      if (!finish_head(head, result)) return result;
      result.state = HeadParse::State::Complete;
      result.consumed = pos;
      return result;
    }
    if (line.front() == ' ' || line.front() == '\t') return invalid("obsolete line folding in a header");
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return invalid("malformed header line");
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); }))
      return invalid("invalid header name");  // whitespace before ':' included (§5.1)
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!std::all_of(value.begin(), value.end(), [](char c) { return is_value_byte(static_cast<unsigned char>(c)); }))
      return invalid("invalid byte in a header value");
    if (head.headers.size() >= limits.max_headers)
      return invalid("more than " + std::to_string(limits.max_headers) + " header fields");
    head.headers.emplace_back(std::string(name), std::string(value));
  }
}

void ChunkedDecoder::fail(std::string why) {
  state_ = State::Failed;
  error_ = std::move(why);
}

ChunkedDecoder::Step ChunkedDecoder::decode(std::string_view in, char* out, std::size_t out_size) {
  Step step;
  std::size_t i = 0;
  while (i < in.size() && state_ != State::Done && state_ != State::Failed) {
    char c = in[i];
    switch (state_) {
      case State::Size: {
        int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (v >= 0) {
          if (++digits_ > 16 || remaining_ >= (std::uint64_t{1} << 58)) {
            fail("chunk size too large");
            break;
          }
          remaining_ = remaining_ * 16 + static_cast<std::uint64_t>(v);
          ++i;
        } else if (digits_ == 0) {
          fail("chunk size expected");
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::Extension;
          extension_bytes_ = 0;
          ++i;
        } else if (c == '\r') {
          state_ = State::SizeLf;
          ++i;
        } else {
          fail("invalid byte in a chunk size");
        }
        break;
      }
      case State::Extension:
        if (c == '\r') {
          state_ = State::SizeLf;
        } else if (c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
          fail("invalid byte in a chunk extension");
          break;
        } else if (++extension_bytes_ > kMaxExtension) {
          fail("chunk extension too long");
          break;
        }
        ++i;
        break;
      case State::SizeLf:
        if (c != '\n') {
          fail("chunk size line not ended by CRLF");
          break;
        }
        ++i;
        digits_ = 0;
        state_ = remaining_ == 0 ? State::TrailerStart : State::Data;
        break;
      case State::Data: {
        if (step.produced == out_size) {
          step.consumed = i;
          return step;
        }
        std::size_t n = std::min<std::uint64_t>({remaining_, in.size() - i, out_size - step.produced});
        std::memcpy(out + step.produced, in.data() + i, n);
        step.produced += n;
        i += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::DataCr;
        break;
      }
      case State::DataCr:
        if (c != '\r') {
          fail("chunk data not followed by CRLF");
          break;
        }
        ++i;
        state_ = State::DataLf;
        break;
      case State::DataLf:
        if (c != '\n') {
          fail("chunk data not followed by CRLF");
          break;
        }
        ++i;
        state_ = State::Size;
        break;
      case State::TrailerStart:  // at the start of a trailer line, or of the final CRLF
        if (c == '\r') {
          state_ = State::FinalLf;
          ++i;
          break;
        }
        state_ = State::Trailer;
        [[fallthrough]];
      case State::Trailer:
        if (++trailer_bytes_ > kMaxTrailers) {
          fail("chunked trailers too long");
          break;
        }
        if (c == '\r') {
          state_ = State::TrailerLf;
        } else if (c == '\n' || (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
          fail("invalid byte in a chunked trailer");
          break;
        }
        ++i;
        break;
      case State::TrailerLf:
        if (c != '\n') {
          fail("trailer line not ended by CRLF");
          break;
        }
        ++i;
        state_ = State::TrailerStart;
        break;
      case State::FinalLf:
        if (c != '\n') {
          fail("chunked body not ended by CRLF");
          break;
        }
        ++i;
        state_ = State::Done;
        break;
      case State::Done:
      case State::Failed:
        break;
    }
  }
  step.consumed = i;
  return step;
}

std::string printable(std::string_view bytes, std::size_t max) {
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (std::size_t i = 0; i < bytes.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (bytes.size() > max) out += "...";
  return out;
}

}  // namespace regcache::proxy::http
