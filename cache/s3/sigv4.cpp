#include "cache/s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <stdexcept>

namespace regcache::s3 {

namespace {

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Trim, and fold runs of spaces/tabs inside the value into one space (SigV4 "Trimall").
std::string trimall(std::string_view v) {
  std::string out;
  bool in_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out += ' ';
    in_space = false;
    out += c;
  }
  return out;
}

std::string date_part(const std::string& amz_date) { return amz_date.substr(0, 8); }

std::string credential_scope(const std::string& amz_date, const Scope& scope) {
  return date_part(amz_date) + "/" + scope.region + "/" + scope.service + "/aws4_request";
}

}  // namespace

std::string uri_encode(std::string_view in, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c) || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 0xF];
    }
  }
  return out;
}

std::string amz_date(std::chrono::system_clock::time_point at) {
  const std::time_t t = std::chrono::system_clock::to_time_t(at);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out += digits[c >> 4];
    out += digits[c & 0xF];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sigv4: SHA-256 failed");
  return hex(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len) == nullptr)
    throw std::runtime_error("sigv4: HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string canonical_query(const Params& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [k, v] : query) encoded.emplace_back(uri_encode(k, false), uri_encode(v, false));
  // Sorted by encoded name, then value (get-vanilla-query-order-value).
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

std::pair<std::string, std::string> canonical_headers(const Headers& headers) {
  std::map<std::string, std::string> merged;  // sorted by lower-case name
  for (const auto& [name, value] : headers) {
    auto& slot = merged[lower(trimall(name))];
    if (!slot.empty()) slot += ',';
    slot += trimall(value);
  }
  std::string block, names;
  for (const auto& [name, value] : merged) {
    block += name + ":" + value + "\n";
    if (!names.empty()) names += ';';
    names += name;
  }
  return {block, names};
}

std::string canonical_request(const Request& request) {
  const auto [block, names] = canonical_headers(request.headers);
  return request.method + "\n" + uri_encode(request.path, true) + "\n" + canonical_query(request.query) +
         "\n" + block + "\n" + names + "\n" + request.payload_sha256;
}

std::string string_to_sign(const std::string& canonical, const std::string& amz_date, const Scope& scope) {
  return "AWS4-HMAC-SHA256\n" + amz_date + "\n" + credential_scope(amz_date, scope) + "\n" +
         sha256_hex(canonical);
}

std::string signature(const Credentials& credentials, const Scope& scope, const std::string& amz_date,
                      const std::string& to_sign) {
  const std::string k_date = hmac_sha256("AWS4" + credentials.secret_key, date_part(amz_date));
  const std::string k_region = hmac_sha256(k_date, scope.region);
  const std::string k_service = hmac_sha256(k_region, scope.service);
  const std::string k_signing = hmac_sha256(k_service, "aws4_request");
  return hex(hmac_sha256(k_signing, to_sign));
}

std::string authorization(const Request& request, const Credentials& credentials, const Scope& scope,
                          const std::string& amz_date) {
  const std::string canonical = canonical_request(request);
  const auto names = canonical_headers(request.headers).second;
  return "AWS4-HMAC-SHA256 Credential=" + credentials.access_key + "/" + credential_scope(amz_date, scope) +
         ", SignedHeaders=" + names +
         ", Signature=" + signature(credentials, scope, amz_date, string_to_sign(canonical, amz_date, scope));
}

std::string presigned_query(const Request& request, const Credentials& credentials, const Scope& scope,
                            const std::string& amz_date, std::chrono::seconds expires) {
  if (expires.count() < 1 || expires.count() > 604800)
    throw std::invalid_argument("sigv4: presigned URL expiry must be 1..604800 s");
  Request with_auth = request;
  const auto names = canonical_headers(request.headers).second;
  with_auth.query.emplace_back("X-Amz-Algorithm", "AWS4-HMAC-SHA256");
  with_auth.query.emplace_back("X-Amz-Credential",
                               credentials.access_key + "/" + credential_scope(amz_date, scope));
  with_auth.query.emplace_back("X-Amz-Date", amz_date);
  with_auth.query.emplace_back("X-Amz-Expires", std::to_string(expires.count()));
  with_auth.query.emplace_back("X-Amz-SignedHeaders", names);
  const std::string canonical = canonical_request(with_auth);
  const std::string sig = signature(credentials, scope, amz_date, string_to_sign(canonical, amz_date, scope));
  return canonical_query(with_auth.query) + "&X-Amz-Signature=" + sig;
}

}  // namespace regcache::s3
