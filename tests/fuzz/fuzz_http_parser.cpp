// Request heads and chunked bodies from clients (proxy/http_parser.h): the
// framing every request passes before any handler runs.
#include <string>

#include "proxy/http_parser.h"
#include "tests/fuzz/fuzz_common.h"

using namespace regcache::proxy::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = as_text(data, size);
  HeadLimits limits;
  HeadParse head = parse_request_head(text, limits);
  if (head.state == HeadParse::State::Complete) {
    FUZZ_CHECK(head.consumed > 0 && head.consumed <= text.size());
    FUZZ_CHECK(head.head.target.size() <= limits.max_target);
    FUZZ_CHECK(head.head.headers.size() <= limits.max_headers);
    FUZZ_CHECK(head.head.minor_version == 0 || head.head.minor_version == 1);
    // A complete head parses the same from its own bytes: nothing after it
    // (a body, a pipelined request) changed the verdict.
    HeadParse again = parse_request_head(text.substr(0, head.consumed), limits);
    FUZZ_CHECK(again.state == HeadParse::State::Complete && again.consumed == head.consumed);
  } else if (head.state == HeadParse::State::Invalid) {
    FUZZ_CHECK(head.status == 400 || head.status == 505);
    for (char c : head.error) FUZZ_CHECK(c >= 0x20 && c < 0x7f);  // safe to log
  }

  // The same bytes as a chunked body, fed in uneven pieces: never more data
  // than input, never past the end, and the same verdict as in one piece.
  auto decode = [&](std::size_t piece) {
    ChunkedDecoder decoder;
    std::string out;
    char buf[257];
    std::size_t pos = 0;
    while (!decoder.done() && !decoder.failed() && pos < text.size()) {
      std::string_view in = text.substr(pos, std::min(piece, text.size() - pos));
      auto step = decoder.decode(in, buf, sizeof buf);
      FUZZ_CHECK(step.consumed <= in.size() && step.produced <= sizeof buf);
      out.append(buf, step.produced);
      if (step.consumed == 0 && step.produced == 0) break;
      pos += step.consumed;
    }
    FUZZ_CHECK(out.size() <= text.size());
    return std::make_pair(decoder.done() ? 1 : decoder.failed() ? 2 : 0, out);
  };
  auto whole = decode(text.size() + 1);
  auto pieces = decode(7);
  if (whole.first != 0 && pieces.first != 0) FUZZ_CHECK(whole == pieces);
  return 0;
}
