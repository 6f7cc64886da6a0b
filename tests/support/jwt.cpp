#include "support/jwt.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "support/files.h"

namespace regcache::test {

struct Rs256Signer::Key {
  EVP_PKEY* pkey = nullptr;
};

namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;

BioPtr memory_bio(const std::string& bytes) {
  BioPtr bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())), &BIO_free);
  if (!bio) throw std::runtime_error("BIO_new_mem_buf failed");
  return bio;
}

}  // namespace

std::string base64_std(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64url(std::string_view bytes) {
  std::string s = base64_std(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return s;
}

Rs256Signer::Rs256Signer(const std::filesystem::path& key_pem, const std::filesystem::path& cert_pem)
    : key_(new Key) {
  std::string key_text = read_file(key_pem);
  std::string cert_text = read_file(cert_pem);
  auto key_bio = memory_bio(key_text);
  key_->pkey = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  auto cert_bio = memory_bio(cert_text);
  X509* cert = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
  if (!key_->pkey || !cert) {
    if (cert) X509_free(cert);
    EVP_PKEY_free(key_->pkey);
    delete key_;
    throw std::runtime_error("cannot load " + key_pem.string() + " / " + cert_pem.string());
  }
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert, &der);
  X509_free(cert);
  if (der_len > 0) {
    cert_der_base64_ = base64_std(std::string_view(reinterpret_cast<char*>(der), static_cast<std::size_t>(der_len)));
    OPENSSL_free(der);
  }
}

Rs256Signer::~Rs256Signer() {
  EVP_PKEY_free(key_->pkey);
  delete key_;
}

std::string Rs256Signer::sign(const nlohmann::json& claims) const {
  nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"x5c", nlohmann::json::array({cert_der_base64_})}};
  std::string signing_input = base64url(header.dump()) + "." + base64url(claims.dump());

  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t length = 0;
  const auto* input = reinterpret_cast<const unsigned char*>(signing_input.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_->pkey) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, input, signing_input.size()) != 1)
    throw std::runtime_error("EVP_DigestSign (size) failed");
  std::vector<unsigned char> signature(length);
  if (EVP_DigestSign(ctx.get(), signature.data(), &length, input, signing_input.size()) != 1)
    throw std::runtime_error("EVP_DigestSign failed");
  return signing_input + "." +
         base64url(std::string_view(reinterpret_cast<const char*>(signature.data()), length));
}

}  // namespace regcache::test
