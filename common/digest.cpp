#include "common/digest.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace regcache {
namespace {

bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_alg_component_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alg_separator(char c) { return c == '+' || c == '.' || c == '_' || c == '-'; }
bool is_encoded_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '=' ||
         c == '_' || c == '-';
}

std::size_t hex_length(std::string_view algorithm) {
  if (algorithm == "sha256") return 64;
  if (algorithm == "sha512") return 128;
  return 0;
}

}  // namespace

bool digest_syntax_ok(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return false;
  std::string_view alg = text.substr(0, colon), enc = text.substr(colon + 1);
  bool need_component = true;
  for (char c : alg) {
    if (is_alg_component_char(c)) {
      need_component = false;
    } else if (is_alg_separator(c) && !need_component) {
      need_component = true;
    } else {
      return false;
    }
  }
  if (need_component) return false;
  for (char c : enc)
    if (!is_encoded_char(c)) return false;
  return true;
}

std::optional<Digest> Digest::parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view alg = text.substr(0, colon), hex = text.substr(colon + 1);
  std::size_t want = hex_length(alg);
  if (want == 0 || hex.size() != want || !is_lower_hex(hex)) return std::nullopt;
  return Digest(std::string(alg), std::string(hex));
}

struct DigestHasher::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

DigestHasher::DigestHasher(const std::string& algorithm) : impl_(std::make_unique<Impl>()), algorithm_(algorithm) {
  const EVP_MD* md = algorithm == "sha256" ? EVP_sha256() : algorithm == "sha512" ? EVP_sha512() : nullptr;
  if (!md) throw std::invalid_argument("unsupported digest algorithm: " + algorithm);
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, md, nullptr) != 1)
    throw std::runtime_error("EVP_DigestInit_ex failed");
}

DigestHasher::~DigestHasher() {
  if (impl_ && impl_->ctx) EVP_MD_CTX_free(impl_->ctx);
}

void DigestHasher::update(const void* data, std::size_t size) {
  if (size) EVP_DigestUpdate(impl_->ctx, data, size);
}

Digest DigestHasher::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, out, &len);
  static const char* hexdig = "0123456789abcdef";
  std::string hex;
  hex.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    hex.push_back(hexdig[out[i] >> 4]);
    hex.push_back(hexdig[out[i] & 15]);
  }
  return *Digest::parse(algorithm_ + ":" + hex);
}

Digest digest_of(const std::string& algorithm, std::string_view bytes) {
  DigestHasher h(algorithm);
  h.update(bytes.data(), bytes.size());
  return h.finish();
}

Digest sha256_of(std::string_view bytes) { return digest_of("sha256", bytes); }

}  // namespace regcache
