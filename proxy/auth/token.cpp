#include "proxy/auth/token.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace regcache::proxy::auth {

namespace {

constexpr std::size_t kMaxTokenBytes = 16 << 10;  // far above any token we issue
constexpr const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown OpenSSL error";
  char buffer[256];
  ERR_error_string_n(e, buffer, sizeof buffer);
  ERR_clear_error();
  return buffer;
}

std::int64_t seconds_of(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 2 < bytes.size(); i += 3) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (bytes.size() - i == 1) {
    unsigned v = byte(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (bytes.size() - i == 2) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  unsigned v = 0;
  int bits = 0;
  for (char c : text) {
    int d;
    if (c >= 'A' && c <= 'Z') d = c - 'A';
    else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
    else if (c >= '0' && c <= '9') d = c - '0' + 52;
    else if (c == '-') d = 62;
    else if (c == '_') d = 63;
    else return std::nullopt;
    v = (v << 6) | static_cast<unsigned>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((v >> bits) & 0xff);
    }
  }
  return out;
}

Actions TokenGrant::actions_on(std::string_view repository) const {
  Actions a = 0;
  for (const auto& [name, actions] : repositories)
    if (name == repository) a |= actions;
  return a;
}

struct TokenKey::Impl {
  EVP_PKEY* key = nullptr;
  ~Impl() { EVP_PKEY_free(key); }
};

TokenKey::TokenKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TokenKey::~TokenKey() = default;

std::shared_ptr<const TokenKey> TokenKey::generate() {
  auto impl = std::make_unique<Impl>();
  impl->key = EVP_EC_gen("P-256");
  if (!impl->key) throw TokenError("cannot generate a P-256 key: " + openssl_error());
  return std::shared_ptr<const TokenKey>(new TokenKey(std::move(impl)));
}

std::shared_ptr<const TokenKey> TokenKey::load(const std::filesystem::path& pem) {
  std::FILE* f = std::fopen(pem.c_str(), "r");
  if (!f) throw TokenError(pem.string() + ": cannot read");
  auto impl = std::make_unique<Impl>();
  impl->key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!impl->key) throw TokenError(pem.string() + ": not a PEM private key: " + openssl_error());
  char group[64] = {};
  std::size_t length = 0;
  if (!EVP_PKEY_is_a(impl->key, "EC") ||
      !EVP_PKEY_get_utf8_string_param(impl->key, "group", group, sizeof group, &length) ||
      (std::string(group) != "prime256v1" && std::string(group) != "P-256"))
    throw TokenError(pem.string() + ": must be an EC P-256 key (openssl ecparam -name prime256v1 -genkey -noout)");
  return std::shared_ptr<const TokenKey>(new TokenKey(std::move(impl)));
}

std::shared_ptr<const TokenKey> TokenKey::load_or_create(const std::filesystem::path& pem) {
  if (std::filesystem::exists(pem)) return load(pem);
  auto key = generate();
  std::error_code ec;
  if (pem.has_parent_path()) std::filesystem::create_directories(pem.parent_path(), ec);
  std::filesystem::path tmp = pem.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw TokenError(pem.string() + ": cannot create the token signing key");
  std::FILE* f = ::fdopen(fd, "w");
  bool ok = f && PEM_write_PrivateKey(f, key->impl_->key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  ok = f && std::fflush(f) == 0 && ::fsync(fd) == 0 && ok;
  if (f) std::fclose(f);
  else ::close(fd);
  if (!ok || std::rename(tmp.c_str(), pem.c_str()) != 0) {
    std::filesystem::remove(tmp, ec);
    throw TokenError(pem.string() + ": cannot write the token signing key");
  }
  return key;
}

std::string TokenKey::sign(const nlohmann::json& claims) const {
  static const std::string header = base64url_encode(R"({"alg":"ES256","typ":"JWT"})");
  std::string input = header + "." + base64url_encode(claims.dump());

  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t der_length = 0;
  std::vector<unsigned char> der;
  bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, impl_->key) == 1 &&
            EVP_DigestSign(ctx, nullptr, &der_length,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (ok) {
    der.resize(der_length);
    ok = EVP_DigestSign(ctx, der.data(), &der_length, reinterpret_cast<const unsigned char*>(input.data()),
                        input.size()) == 1;
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) throw TokenError("signing failed: " + openssl_error());

  // JWS wants R || S, 32 bytes each, not DER.
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_length));
  if (!sig) throw TokenError("signing failed: " + openssl_error());
  unsigned char raw[64];
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
  ECDSA_SIG_free(sig);
  if (!ok) throw TokenError("signing failed: bad signature size");
  return input + "." + base64url_encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
}

nlohmann::json TokenKey::verify_signature(std::string_view token) const {
  if (token.size() > kMaxTokenBytes) throw TokenError("token too large");
  auto dot1 = token.find('.');
  auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    throw TokenError("not a compact JWS");
  auto header = base64url_decode(token.substr(0, dot1));
  auto claims = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header || !claims || !signature) throw TokenError("not base64url");
  nlohmann::json h = nlohmann::json::parse(*header, nullptr, false);
  if (!h.is_object() || !h.contains("alg") || h["alg"] != "ES256") throw TokenError("algorithm must be ES256");
  if (signature->size() != 64) throw TokenError("bad signature");

  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature->data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature->data()) + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    throw TokenError("bad signature");
  }
  unsigned char* der = nullptr;
  int der_length = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (der_length <= 0) throw TokenError("bad signature");

  std::string_view input = token.substr(0, dot2);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, impl_->key) == 1 &&
            EVP_DigestVerify(ctx, der, static_cast<std::size_t>(der_length),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  ERR_clear_error();
  if (!ok) throw TokenError("signature does not verify");

  // Depth-bounded by construction: we signed it, and it is small.
  nlohmann::json c = nlohmann::json::parse(*claims, nullptr, false);
  if (!c.is_object()) throw TokenError("claims are not a JSON object");
  return c;
}

nlohmann::json token_claims(const TokenGrant& grant, const TokenRules& rules, std::chrono::system_clock::time_point now) {
  nlohmann::json access = nlohmann::json::array();
  for (const auto& [name, actions] : grant.repositories) {
    nlohmann::json words = nlohmann::json::array();
    for (Actions bit : {kPull, kPush, kDelete})
      if (actions & bit) words.push_back(actions_string(bit));
    access.push_back({{"type", "repository"}, {"name", name}, {"actions", words}});
  }
  if (grant.catalog) access.push_back({{"type", "registry"}, {"name", "catalog"}, {"actions", {"*"}}});
  unsigned char id[16];
  RAND_bytes(id, sizeof id);
  return {{"iss", rules.issuer},
          {"sub", grant.subject},
          {"aud", rules.audience},
          {"exp", seconds_of(grant.expires)},
          {"nbf", seconds_of(now)},
          {"iat", seconds_of(now)},
          {"jti", base64url_encode(std::string_view(reinterpret_cast<const char*>(id), sizeof id))},
          {"access", access}};
}

TokenGrant check_claims(const nlohmann::json& c, const TokenRules& rules, std::chrono::system_clock::time_point now) {
  auto string_claim = [&](const char* name) -> std::string {
    if (!c.contains(name) || !c[name].is_string()) throw TokenError(std::string("claim '") + name + "' missing");
    return c[name].get<std::string>();
  };
  auto time_claim = [&](const char* name) -> std::int64_t {
    if (!c.contains(name) || !c[name].is_number_integer()) throw TokenError(std::string("claim '") + name + "' missing");
    return c[name].get<std::int64_t>();
  };
  if (string_claim("iss") != rules.issuer) throw TokenError("issued by someone else");
  bool audience_ok = false;
  if (c.contains("aud") && c["aud"].is_string()) audience_ok = c["aud"] == rules.audience;
  if (c.contains("aud") && c["aud"].is_array())
    for (const auto& a : c["aud"]) audience_ok = audience_ok || a == rules.audience;
  if (!audience_ok) throw TokenError("meant for another service");
  std::int64_t t = seconds_of(now), leeway = rules.leeway.count();
  std::int64_t exp = time_claim("exp"), nbf = time_claim("nbf");
  if (t > exp + leeway) throw TokenError("expired");
  if (t + leeway < nbf) throw TokenError("not valid yet");

  TokenGrant grant;
  grant.subject = c.contains("sub") && c["sub"].is_string() ? c["sub"].get<std::string>() : std::string();
  grant.expires = std::chrono::system_clock::time_point(std::chrono::seconds(exp + leeway));
  if (c.contains("access") && c["access"].is_array()) {
    for (const auto& entry : c["access"]) {
      if (!entry.is_object() || !entry.contains("type") || !entry.contains("name") || !entry.contains("actions") ||
          !entry["type"].is_string() || !entry["name"].is_string() || !entry["actions"].is_array())
        continue;
      Actions actions = 0;
      for (const auto& word : entry["actions"])
        if (word.is_string())
          if (auto a = parse_action(word.get<std::string>())) actions |= *a;
      if (entry["type"] == "repository") grant.repositories.emplace_back(entry["name"].get<std::string>(), actions);
      if (entry["type"] == "registry" && entry["name"] == "catalog" && actions) grant.catalog = true;
    }
  }
  return grant;
}

}  // namespace regcache::proxy::auth
