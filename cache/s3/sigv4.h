#pragma once
// AWS Signature Version 4 for S3, on OpenSSL (HMAC-SHA256, SHA-256).
//
// Why our own signer and not libcurl's CURLOPT_AWS_SIGV4: every HTTP exchange in
// regcache goes through Poco (sessions, timeouts, TLS trust, streaming bodies);
// pulling in libcurl for S3 alone would add a second HTTP stack with its own TLS
// configuration, and curl's signer only signs what curl sends (it cannot produce
// presigned URLs, which the redirect mode of #18 needs). The algorithm is small,
// pure and checked below against AWS's published test vectors.
//
// S3's rules, which differ from the generic SigV4 suite in one place: the path is
// NOT normalised and NOT encoded twice -- the canonical URI is the request path
// with every byte outside the unreserved set (A-Z a-z 0-9 - . _ ~) and '/'
// percent-encoded once, and the same encoded path goes on the wire.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace regcache::s3 {

inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
// SHA-256 of the empty string: the payload hash of GET/HEAD/DELETE.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Credentials {
  std::string access_key;
  std::string secret_key;
};

struct Scope {
  std::string region = "us-east-1";
  std::string service = "s3";
};

using Params = std::vector<std::pair<std::string, std::string>>;   // decoded name, value
using Headers = std::vector<std::pair<std::string, std::string>>;  // name, value as sent

// What is signed: `path` is the decoded path ("/bucket/key with space"); it is encoded
// here once. `query` are decoded pairs (order does not matter). `headers` must include
// host; names in any case. `payload_sha256` is the hex SHA-256 of the body or
// UNSIGNED-PAYLOAD.
struct Request {
  std::string method;
  std::string path;
  Params query;
  Headers headers;
  std::string payload_sha256 = std::string(kEmptyPayloadSha256);
};

// RFC 3986 percent-encoding as SigV4 wants it: unreserved bytes stay, everything else
// becomes %XX (upper-case hex); '/' stays only when `keep_slash`.
std::string uri_encode(std::string_view in, bool keep_slash);

// "20150830T123600Z" for a point in time (UTC).
std::string amz_date(std::chrono::system_clock::time_point at);

std::string sha256_hex(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw bytes
std::string hex(std::string_view bytes);

// The pieces, exposed for tests and for error messages (S3 returns its own
// canonical request when signatures do not match).
std::string canonical_query(const Params& query);
// Lower-cased names, values trimmed with inner runs of spaces folded, sorted; duplicates
// joined with ','. Returns {canonical headers block, signed header list}.
std::pair<std::string, std::string> canonical_headers(const Headers& headers);
std::string canonical_request(const Request& request);
std::string string_to_sign(const std::string& canonical, const std::string& amz_date, const Scope& scope);
std::string signature(const Credentials& credentials, const Scope& scope, const std::string& amz_date,
                      const std::string& string_to_sign);

// Header form: the value of the Authorization header. The request's headers must already
// carry x-amz-date (== amz_date) and, for S3, x-amz-content-sha256.
std::string authorization(const Request& request, const Credentials& credentials, const Scope& scope,
                          const std::string& amz_date);

// Query (presigned) form: the query string (already encoded, sorted) that authorises
// `request` for `expires` seconds (1..604800), signing only the host header and
// UNSIGNED-PAYLOAD unless the request says otherwise. The request's own query
// parameters are included.
std::string presigned_query(const Request& request, const Credentials& credentials, const Scope& scope,
                            const std::string& amz_date, std::chrono::seconds expires);

}  // namespace regcache::s3
