// WWW-Authenticate challenges from upstreams (upstream/www_authenticate.h)
// and the token URL built from what they say.
#include <cctype>

#include "tests/fuzz/fuzz_common.h"
#include "upstream/www_authenticate.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = as_text(data, size);
  auto challenge = regcache::upstream::parse_www_authenticate(text);
  if (challenge) {
    FUZZ_CHECK(!challenge->scheme.empty());
    for (char c : challenge->scheme) FUZZ_CHECK(!std::isupper(static_cast<unsigned char>(c)));
    std::string realm = challenge->params.count("realm") ? challenge->params.at("realm") : "";
    std::string service = challenge->params.count("service") ? challenge->params.at("service") : "";
    std::string scope = challenge->params.count("scope") ? challenge->params.at("scope") : "";
    regcache::upstream::build_token_url(realm, service, {scope}, "user");
  }
  std::string encoded = regcache::upstream::url_encode(text);
  for (char c : encoded)
    FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == '%');
  return 0;
}
