// SigV4 against published vectors. Sources, kept here as test data:
//  * AWS's Signature Version 4 test suite (formerly in the AWS General Reference), as kept
//    by awslabs/aws-c-auth in tests/aws-signing-test-suite/v4/<name>/header-signed-request.txt
//    and query-signed-request.txt: credentials AKIDEXAMPLE /
//    wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20150830T123600Z, us-east-1, service "service".
//    Only the cases whose rules S3 shares are used: S3 does not normalise paths, so the
//    "-unnormalized" variants apply and the "-normalized" ones (dot segments removed,
//    slashes merged) do not.
//  * The S3 API Reference examples ("Signature Calculations for the Authorization Header:
//    Transferring Payload in a Single Chunk" and "Authenticating Requests: Using Query
//    Parameters"): AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,
//    20130524T000000Z, bucket examplebucket.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "cache/s3/sigv4.h"

using namespace regcache::s3;

namespace {

const Credentials kSuite{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};
const Scope kSuiteScope{"us-east-1", "service"};
const std::string kSuiteDate = "20150830T123600Z";

const Credentials kS3Docs{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};
const Scope kS3Scope{"us-east-1", "s3"};
const std::string kS3Date = "20130524T000000Z";

std::string suite_auth(const std::string& method, const std::string& path, Params query, Headers extra = {},
                       std::string payload = std::string(kEmptyPayloadSha256)) {
  Request r{method, path, std::move(query), {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kSuiteDate}},
            std::move(payload)};
  for (auto& h : extra) r.headers.push_back(h);
  return authorization(r, kSuite, kSuiteScope, kSuiteDate);
}

std::string expected(const std::string& signed_headers, const std::string& sig) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=" +
         signed_headers + ", Signature=" + sig;
}

}  // namespace

TEST_CASE("sigv4: suite get-vanilla") {
  CHECK(suite_auth("GET", "/", {}) ==
        expected("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST_CASE("sigv4: suite get-vanilla-query-order-key-case (query sorted before signing)") {
  CHECK(suite_auth("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}) ==
        expected("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

TEST_CASE("sigv4: suite get-vanilla-query-unreserved") {
  const std::string u = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  CHECK(suite_auth("GET", "/", {{u, u}}) ==
        expected("host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"));
}

TEST_CASE("sigv4: suite get-utf8 (path encoded once)") {
  CHECK(uri_encode("/\xE1\x88\xB4", true) == "/%E1%88%B4");
  CHECK(suite_auth("GET", "/\xE1\x88\xB4", {}) ==
        expected("host;x-amz-date", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"));
}

TEST_CASE("sigv4: suite get-vanilla-utf8-query") {
  CHECK(suite_auth("GET", "/", {{"\xE1\x88\xB4", "bar"}}) ==
        expected("host;x-amz-date", "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"));
}

TEST_CASE("sigv4: suite get-slashes-unnormalized and get-space-unnormalized (S3 keeps the path)") {
  CHECK(suite_auth("GET", "//example//", {}) ==
        expected("host;x-amz-date", "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"));
  CHECK(suite_auth("GET", "/example space/", {}) ==
        expected("host;x-amz-date", "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"));
}

TEST_CASE("sigv4: suite post-x-www-form-urlencoded (signed payload hash)") {
  const std::string body = "Param1=value1";
  const std::string payload = sha256_hex(body);
  CHECK(payload == "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  CHECK(suite_auth("POST", "/", {},
                   {{"Content-Type", "application/x-www-form-urlencoded"},
                    {"Content-Length", "13"},
                    {"x-amz-content-sha256", payload}},
                   payload) ==
        expected("content-length;content-type;host;x-amz-content-sha256;x-amz-date",
                 "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"));
}

TEST_CASE("sigv4: suite get-header-key-duplicate and value trimming fold into one canonical header") {
  const auto [block, names] = canonical_headers(
      {{"Host", "example.amazonaws.com"}, {"My-Header1", "  a   b  "}, {"my-header1", "c"}});
  CHECK(block == "host:example.amazonaws.com\nmy-header1:a b,c\n");
  CHECK(names == "host;my-header1");
}

TEST_CASE("sigv4: S3 docs GET object with Range") {
  Request r{"GET", "/test.txt", {},
            {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"},
             {"x-amz-content-sha256", std::string(kEmptyPayloadSha256)}, {"x-amz-date", kS3Date}}};
  CHECK(authorization(r, kS3Docs, kS3Scope, kS3Date) ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("sigv4: S3 docs PUT object ('$' in the key encoded once)") {
  const std::string payload = sha256_hex("Welcome to Amazon S3.");
  Request r{"PUT", "/test$file.text", {},
            {{"Host", "examplebucket.s3.amazonaws.com"}, {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
             {"x-amz-date", kS3Date}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
             {"x-amz-content-sha256", payload}},
            payload};
  CHECK(canonical_request(r).substr(0, 23) == "PUT\n/test%24file.text\n\n");
  CHECK(authorization(r, kS3Docs, kS3Scope, kS3Date) ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST_CASE("sigv4: S3 docs GET bucket lifecycle (parameter without value) and ListObjects") {
  auto sig = [](Params q) {
    Request r{"GET", "/", std::move(q),
              {{"Host", "examplebucket.s3.amazonaws.com"},
               {"x-amz-content-sha256", std::string(kEmptyPayloadSha256)}, {"x-amz-date", kS3Date}}};
    const auto a = authorization(r, kS3Docs, kS3Scope, kS3Date);
    return a.substr(a.find("Signature=") + 10);
  };
  CHECK(sig({{"lifecycle", ""}}) == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  CHECK(sig({{"prefix", "J"}, {"max-keys", "2"}}) ==
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST_CASE("sigv4: S3 docs presigned GET (query form, UNSIGNED-PAYLOAD)") {
  Request r{"GET", "/test.txt", {}, {{"Host", "examplebucket.s3.amazonaws.com"}}, std::string(kUnsignedPayload)};
  CHECK(presigned_query(r, kS3Docs, kS3Scope, kS3Date, std::chrono::seconds(86400)) ==
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%"
        "2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST_CASE("sigv4: suite get-vanilla-query-order-key-case, query-signed form") {
  Request r{"GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, {{"Host", "example.amazonaws.com"}}};
  const auto q = presigned_query(r, kSuite, kSuiteScope, kSuiteDate, std::chrono::seconds(3600));
  CHECK(q.substr(q.find("X-Amz-Signature=") + 16) ==
        "86012e2c9ad4d77369f5d81c11f75158aae4f895a085212cc6d3f923d300bed5");
}

TEST_CASE("sigv4: presigned expiry is bounded to 7 days") {
  Request r{"GET", "/k", {}, {{"Host", "h"}}, std::string(kUnsignedPayload)};
  CHECK_THROWS(presigned_query(r, kS3Docs, kS3Scope, kS3Date, std::chrono::seconds(604801)));
  CHECK_THROWS(presigned_query(r, kS3Docs, kS3Scope, kS3Date, std::chrono::seconds(0)));
}

TEST_CASE("sigv4: amz_date formats UTC") {
  CHECK(amz_date(std::chrono::system_clock::time_point(std::chrono::seconds(1369353600))) == kS3Date);
}
