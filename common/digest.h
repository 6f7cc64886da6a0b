#pragma once
// Content digests: "algorithm:encoded" as in the OCI image spec (descriptor.md).
// sha256 and sha512 are recognised and can be computed; any other algorithm is
// rejected at parse time, so a Digest value is always one we can verify.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace regcache {

class Digest {
 public:
  // Returns nullopt unless `text` is "sha256:<64 lowercase hex>" or
  // "sha512:<128 lowercase hex>".
  static std::optional<Digest> parse(std::string_view text);

  const std::string& algorithm() const { return algorithm_; }
  const std::string& hex() const { return hex_; }
  std::string str() const { return algorithm_ + ":" + hex_; }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

 private:
  Digest(std::string algorithm, std::string hex) : algorithm_(std::move(algorithm)), hex_(std::move(hex)) {}
  std::string algorithm_;
  std::string hex_;
};

// True when `text` matches the spec's digest grammar
// (algorithm-component ( [+._-] algorithm-component )* ":" [a-zA-Z0-9=_-]+),
// whether or not we support the algorithm. Used to tell DIGEST_INVALID from UNSUPPORTED.
bool digest_syntax_ok(std::string_view text);

// Incremental hashing for one algorithm. Not copyable; cheap to create.
class DigestHasher {
 public:
  explicit DigestHasher(const std::string& algorithm = "sha256");
  ~DigestHasher();
  DigestHasher(const DigestHasher&) = delete;
  DigestHasher& operator=(const DigestHasher&) = delete;

  void update(const void* data, std::size_t size);
  // Finishes the hash; the hasher must not be used afterwards.
  Digest finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string algorithm_;
};

Digest sha256_of(std::string_view bytes);
Digest digest_of(const std::string& algorithm, std::string_view bytes);

}  // namespace regcache
