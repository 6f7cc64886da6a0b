// Unit tests for content digests (common/digest.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "common/digest.h"

using regcache::Digest;
using regcache::DigestHasher;
using regcache::digest_of;
using regcache::digest_syntax_ok;
using regcache::sha256_of;

namespace {

const std::string kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string kAbcSha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kAbcSha512 =
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

}  // namespace

TEST_CASE("digest: parse accepts sha256 with 64 lowercase hex digits") {
  auto d = Digest::parse("sha256:" + kAbcSha256);
  REQUIRE(d.has_value());
  CHECK(d->algorithm() == "sha256");
  CHECK(d->hex() == kAbcSha256);
  CHECK(d->str() == "sha256:" + kAbcSha256);
}

TEST_CASE("digest: parse accepts sha512 with 128 lowercase hex digits") {
  auto d = Digest::parse("sha512:" + kAbcSha512);
  REQUIRE(d.has_value());
  CHECK(d->algorithm() == "sha512");
  CHECK(d->hex() == kAbcSha512);
  CHECK(d->str() == "sha512:" + kAbcSha512);
}

TEST_CASE("digest: parse rejects malformed digests") {
  std::string upper = kAbcSha256;
  upper[0] = 'B';  // "Ba78…"
  CHECK_FALSE(Digest::parse("sha256:" + upper));
  CHECK_FALSE(Digest::parse("SHA256:" + kAbcSha256));
  CHECK_FALSE(Digest::parse("sha256:" + kAbcSha256.substr(1)));  // 63 digits
  CHECK_FALSE(Digest::parse("sha256:" + kAbcSha256 + "0"));       // 65 digits
  CHECK_FALSE(Digest::parse("sha256:" + kAbcSha512));             // sha512 length under sha256
  CHECK_FALSE(Digest::parse("sha512:" + kAbcSha256));             // sha256 length under sha512
  CHECK_FALSE(Digest::parse("sha384:" + kAbcSha256));             // unknown algorithm
  CHECK_FALSE(Digest::parse("md5:" + kAbcSha256.substr(0, 32)));
  CHECK_FALSE(Digest::parse("sha256" + kAbcSha256));  // missing colon
  CHECK_FALSE(Digest::parse(kAbcSha256));
  CHECK_FALSE(Digest::parse(""));
  CHECK_FALSE(Digest::parse("sha256:"));
  CHECK_FALSE(Digest::parse(":" + kAbcSha256));
  std::string not_hex = kAbcSha256;
  not_hex[10] = 'g';
  CHECK_FALSE(Digest::parse("sha256:" + not_hex));
}

TEST_CASE("digest: equality and ordering compare algorithm and hex") {
  auto a = Digest::parse("sha256:" + kAbcSha256);
  auto b = Digest::parse("sha256:" + kAbcSha256);
  auto e = Digest::parse("sha256:" + kEmptySha256);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(e);
  CHECK(*a == *b);
  CHECK_FALSE(*a == *e);
  CHECK(*a < *e);  // "ba78…" < "e3b0…"
}

TEST_CASE("digest: digest_syntax_ok follows the spec grammar") {
  CHECK(digest_syntax_ok("sha384+b64:abc="));
  CHECK(digest_syntax_ok("sha256:" + kAbcSha256));
  CHECK(digest_syntax_ok("sha256:ABCDEF"));  // syntax only: case is the algorithm's business
  CHECK(digest_syntax_ok("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"));
  CHECK(digest_syntax_ok("a.b_c-d:x_y-z="));

  CHECK_FALSE(digest_syntax_ok("sha256:"));
  CHECK_FALSE(digest_syntax_ok(":abc"));
  CHECK_FALSE(digest_syntax_ok("SHA256:ab"));
  CHECK_FALSE(digest_syntax_ok("sha256"));
  CHECK_FALSE(digest_syntax_ok(""));
  CHECK_FALSE(digest_syntax_ok("sha256+:ab"));   // separator must be followed by a component
  CHECK_FALSE(digest_syntax_ok("+sha256:ab"));   // nor lead
  CHECK_FALSE(digest_syntax_ok("sha++256:ab"));  // two separators in a row
  CHECK_FALSE(digest_syntax_ok("sha256:a b"));
  CHECK_FALSE(digest_syntax_ok("sha256:a/b"));
  CHECK_FALSE(digest_syntax_ok("sha256:ab:cd"));  // ':' is not an encoded character
}

TEST_CASE("digest: sha256_of matches known vectors") {
  CHECK(sha256_of("").str() == "sha256:" + kEmptySha256);
  CHECK(sha256_of("abc").str() == "sha256:" + kAbcSha256);
  CHECK(sha256_of("hello world").hex() == "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
}

TEST_CASE("digest: digest_of sha512 matches the known vector") {
  CHECK(digest_of("sha512", "abc").str() == "sha512:" + kAbcSha512);
  CHECK(digest_of("sha256", "abc").str() == "sha256:" + kAbcSha256);
}

TEST_CASE("digest: DigestHasher refuses unknown algorithms") {
  CHECK_THROWS_AS(DigestHasher("md5"), std::invalid_argument);
  CHECK_THROWS_AS(DigestHasher("sha384"), std::invalid_argument);
}

TEST_CASE("digest: incremental hashing equals one-shot hashing") {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>('a' + i % 26));

  for (const std::string alg : {"sha256", "sha512"}) {
    CAPTURE(alg);
    DigestHasher h(alg);
    // Uneven pieces, including empty updates.
    std::size_t pos = 0, step = 1;
    while (pos < data.size()) {
      std::size_t n = std::min(step, data.size() - pos);
      h.update(data.data() + pos, n);
      h.update(data.data() + pos, 0);
      pos += n;
      step = step * 3 + 1;
    }
    CHECK(h.finish() == digest_of(alg, data));
  }

  DigestHasher abc;  // default algorithm is sha256
  abc.update("a", 1);
  abc.update("bc", 2);
  CHECK(abc.finish().str() == "sha256:" + kAbcSha256);

  DigestHasher nothing;
  CHECK(nothing.finish().str() == "sha256:" + kEmptySha256);
}
