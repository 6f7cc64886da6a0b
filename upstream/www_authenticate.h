#pragma once
// Parsing of `WWW-Authenticate` challenges (RFC 7235 section 4.1) and building
// of token-request URLs (Docker registry token authentication).
//
// Pure functions: no I/O, no logging, no global state.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace regcache::upstream {

struct Challenge {
  std::string scheme;                         // lowercased: "bearer", "basic", ...
  std::map<std::string, std::string> params;  // names lowercased; values unquoted and unescaped
};

// Parses the first challenge of a WWW-Authenticate header value:
//   scheme [ 1*SP param *( "," param ) ], param = token BWS "=" BWS ( token / quoted-string )
// Quoted strings may contain commas and backslash escapes. When a parameter
// name repeats, the first value wins. A following challenge (", Basic ...")
// is ignored. Returns nullopt when the value is not a challenge at all
// (empty, no scheme, unterminated quote, a parameter without a value, ...).
std::optional<Challenge> parse_www_authenticate(std::string_view header);

// Percent-encodes everything except RFC 3986 unreserved characters.
std::string url_encode(std::string_view value);

// Builds the token request URL: realm + "?service=S&scope=A&scope=B&account=U".
// `service` and `account` are omitted when empty; every value is percent-encoded.
// A realm that already has a query gets the parameters appended with '&'.
std::string build_token_url(std::string_view realm, const std::string& service,
                            const std::vector<std::string>& scopes, const std::string& account);

}  // namespace regcache::upstream
