// Digests, repository names and tags (common/digest.h, common/names.h): what
// the handlers validate straight from the request path (parse_digest and
// parse_reference in proxy/registry_api are thin wrappers over these).
#include "common/digest.h"
#include "common/names.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = as_text(data, size);
  bool syntax_ok = regcache::digest_syntax_ok(text);
  if (auto d = regcache::Digest::parse(text)) {
    FUZZ_CHECK(d->str() == text);  // only canonical digests parse
    FUZZ_CHECK(syntax_ok);
    FUZZ_CHECK(regcache::Digest::parse(d->str()) == d);
  }
  if (auto name = regcache::RepoName::parse(text)) {
    FUZZ_CHECK(name->str() == text);
    FUZZ_CHECK(name->str().size() <= 255);
    FUZZ_CHECK(name->str().find("..") == std::string::npos);
    FUZZ_CHECK(name->str().find("//") == std::string::npos);
  }
  if (regcache::valid_tag(text)) {
    FUZZ_CHECK(!text.empty() && text.size() <= 128);
    FUZZ_CHECK(text.find('/') == std::string_view::npos && text.find(':') == std::string_view::npos);
  }
  return 0;
}
