// Trust rules for redirect targets and token realms (upstream/trust.h) and the
// resolution of Location headers (upstream/location.h). Pure functions: the
// addresses here are strings only; nothing connects anywhere.
#include <doctest/doctest.h>

#include "upstream/location.h"
#include "upstream/trust.h"

namespace {

using namespace regcache::upstream;

IpAddress ip(const char* text) {
  auto parsed = parse_ip(text);
  REQUIRE_MESSAGE(parsed, text);
  return *parsed;
}

Network net(const char* text) {
  auto parsed = parse_network(text);
  REQUIRE_MESSAGE(parsed, text);
  return *parsed;
}

AddressClass klass(const char* text, const std::vector<Network>& internal = {}) { return classify(ip(text), internal); }

}  // namespace

TEST_CASE("classify: the built-in address classes, IPv4 and IPv6") {
  CHECK(klass("127.0.0.1") == AddressClass::Loopback);
  CHECK(klass("127.255.0.9") == AddressClass::Loopback);
  CHECK(klass("::1") == AddressClass::Loopback);
  CHECK(klass("169.254.169.254") == AddressClass::LinkLocal);
  CHECK(klass("fe80::1") == AddressClass::LinkLocal);
  CHECK(klass("febf::1") == AddressClass::LinkLocal);
  CHECK(klass("10.1.2.3") == AddressClass::Private);
  CHECK(klass("172.16.0.1") == AddressClass::Private);
  CHECK(klass("172.31.255.255") == AddressClass::Private);
  CHECK(klass("172.32.0.1") == AddressClass::Public);
  CHECK(klass("192.168.1.1") == AddressClass::Private);
  CHECK(klass("100.64.0.1") == AddressClass::Private);
  CHECK(klass("fc00::1") == AddressClass::Private);
  CHECK(klass("fd12:3456::1") == AddressClass::Private);
  CHECK(klass("0.0.0.0") == AddressClass::Special);
  CHECK(klass("::") == AddressClass::Special);
  CHECK(klass("224.0.0.1") == AddressClass::Special);
  CHECK(klass("255.255.255.255") == AddressClass::Special);
  CHECK(klass("ff02::1") == AddressClass::Special);
  CHECK(klass("8.8.8.8") == AddressClass::Public);
  CHECK(klass("2a00:1450::1") == AddressClass::Public);
}

TEST_CASE("classify: IPv4-mapped and NAT64 IPv6 addresses count as their IPv4 address") {
  CHECK(klass("::ffff:127.0.0.1") == AddressClass::Loopback);
  CHECK(klass("::ffff:169.254.169.254") == AddressClass::LinkLocal);
  CHECK(klass("64:ff9b::10.0.0.1") == AddressClass::Private);
  CHECK(klass("::ffff:8.8.8.8") == AddressClass::Public);
  CHECK(klass("::ffff:127.0.0.2", {net("127.0.0.2/32")}) == AddressClass::Internal);
}

TEST_CASE("classify: configured internal networks win over the built-in classes") {
  std::vector<Network> internal = {net("127.0.0.2/32"), net("203.0.113.0/24"), net("2001:db8:1::/48")};
  CHECK(klass("127.0.0.2", internal) == AddressClass::Internal);
  CHECK(klass("127.0.0.1", internal) == AddressClass::Loopback);
  CHECK(klass("203.0.113.7", internal) == AddressClass::Internal);
  CHECK(klass("2001:db8:1::5", internal) == AddressClass::Internal);
  CHECK(klass("2001:db8:2::5", internal) == AddressClass::Special);
}

TEST_CASE("parse_network: CIDRs and bare addresses - junk and host bits refused") {
  CHECK(net("10.0.0.0/8").contains(ip("10.9.9.9")));
  CHECK_FALSE(net("10.0.0.0/8").contains(ip("11.0.0.0")));
  CHECK(net("127.0.0.2").contains(ip("127.0.0.2")));
  CHECK_FALSE(net("127.0.0.2").contains(ip("127.0.0.3")));
  CHECK(net("0.0.0.0/0").contains(ip("1.2.3.4")));
  CHECK_FALSE(net("0.0.0.0/0").contains(ip("::1")));
  CHECK(net("fe80::/10").contains(ip("fe80::1")));
  CHECK(net("172.16.0.0/12").contains(ip("172.20.1.1")));
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "10.0.0.1/8", "::/129", "example.com", "10.0.0.0/8x",
                          "10.0.0.0/-1", "1.2.3", "[::1]"})
    CHECK_MESSAGE(!parse_network(bad), bad);
}

TEST_CASE("connect_refusal: redirect targets and realms by class, own class and allow-list") {
  AddressPolicy policy{{net("127.0.0.2/32")}, {}};
  ClassSet on_loopback = class_bit(AddressClass::Loopback);
  ClassSet on_public = class_bit(AddressClass::Public);
  CHECK_FALSE(connect_refusal(ip("8.8.8.8"), on_public, policy));
  CHECK(connect_refusal(ip("127.0.0.1"), on_public, policy));
  CHECK(connect_refusal(ip("169.254.169.254"), on_public, policy));
  CHECK(connect_refusal(ip("10.0.0.1"), on_public, policy));
  CHECK(connect_refusal(ip("::ffff:10.0.0.1"), on_public, policy));
  // An upstream on loopback may send us to loopback, but not to what is configured internal.
  CHECK_FALSE(connect_refusal(ip("127.0.0.1"), on_loopback, policy));
  CHECK_FALSE(connect_refusal(ip("127.0.0.5"), on_loopback, policy));
  auto refused = connect_refusal(ip("127.0.0.2"), on_loopback, policy);
  REQUIRE(refused);
  CHECK(refused->find("127.0.0.2 is internal") != std::string::npos);
  CHECK(connect_refusal(ip("169.254.169.254"), on_loopback, policy));
  // Special addresses are refused even to an upstream on such an address.
  CHECK(connect_refusal(ip("0.0.0.0"), class_bit(AddressClass::Special), policy));
  // The allow-list wins.
  policy.allowed = {net("127.0.0.2/32"), net("10.1.0.0/16")};
  CHECK_FALSE(connect_refusal(ip("127.0.0.2"), on_loopback, policy));
  CHECK_FALSE(connect_refusal(ip("10.1.2.3"), on_public, policy));
  CHECK_FALSE(connect_refusal(ip("::ffff:10.1.2.3"), on_public, policy));
  CHECK(connect_refusal(ip("10.2.0.1"), on_public, policy));
}

TEST_CASE("registrable_domain: last two labels, three under short second-level ones") {
  CHECK(registrable_domain("registry-1.docker.io") == "docker.io");
  CHECK(registrable_domain("auth.docker.io") == "docker.io");
  CHECK(registrable_domain("docker.io") == "docker.io");
  CHECK(registrable_domain("Registry.Example.COM.") == "example.com");
  CHECK(registrable_domain("a.b.example.co.uk") == "example.co.uk");
  CHECK(registrable_domain("registry.example.com.au") == "example.com.au");
  CHECK(registrable_domain("x.example.de") == "example.de");
  CHECK(registrable_domain("localhost") == "localhost");
  CHECK(registrable_domain("127.0.0.1") == "127.0.0.1");
  CHECK(registrable_domain("::1") == "::1");
}

TEST_CASE("realm_credentials_refusal: Docker Hub works, other hosts and downgrades do not") {
  CHECK_FALSE(realm_credentials_refusal("https://auth.docker.io/token", "https://registry-1.docker.io", {}));
  CHECK_FALSE(realm_credentials_refusal("https://ghcr.io/token", "https://ghcr.io", {}));
  CHECK_FALSE(realm_credentials_refusal("https://login.example.co.uk/t", "https://registry.example.co.uk", {}));
  CHECK(realm_credentials_refusal("https://evil.example/token", "https://registry-1.docker.io", {}));
  CHECK(realm_credentials_refusal("https://docker.io.evil.example/t", "https://registry-1.docker.io", {}));
  CHECK(realm_credentials_refusal("https://example.co.uk/t", "https://other.co.uk", {}));
  // https upstream: never a plain http realm, even on the same host.
  CHECK(realm_credentials_refusal("http://auth.docker.io/token", "https://registry-1.docker.io", {}));
  // A plain http upstream may have a plain http realm on its own host (any port).
  CHECK_FALSE(realm_credentials_refusal("http://127.0.0.1:5001/token", "http://127.0.0.1:5000", {}));
  // IP literals: the same address only.
  CHECK(realm_credentials_refusal("http://127.0.0.3:5001/token", "http://127.0.0.1:5000", {}));
  CHECK(realm_credentials_refusal("http://10.0.0.1/token", "http://10.0.0.2", {}));
  // The configured extra hosts.
  CHECK_FALSE(realm_credentials_refusal("http://127.0.0.3:5001/token", "http://127.0.0.1:5000", {"127.0.0.3"}));
  CHECK_FALSE(realm_credentials_refusal("https://Login.Vendor.example/t", "https://registry.example.com",
                                        {"login.vendor.example"}));
  // Not a URL at all, or another scheme.
  CHECK(realm_credentials_refusal("file:///etc/passwd", "https://ghcr.io", {}));
  CHECK(realm_credentials_refusal("/token", "https://ghcr.io", {}));
  // User info: parsers disagree on which '@' ends it, so such a realm never gets credentials.
  CHECK(realm_credentials_refusal("https://user@evil.example@ghcr.io/t", "https://ghcr.io", {}));
  CHECK(realm_credentials_refusal("https://user@ghcr.io/t", "https://ghcr.io", {}));
}

TEST_CASE("resolve_reference: absolute, network-path, absolute-path and relative Locations") {
  const std::string base = "http://127.0.0.1:5000/v2/foo/blobs/sha256:abc";
  CHECK(resolve_reference(base, "https://cdn.example/x?sig=a%2Fb") == "https://cdn.example/x?sig=a%2Fb");
  CHECK(resolve_reference(base, "//127.0.0.1:6000/x") == "http://127.0.0.1:6000/x");
  CHECK(resolve_reference(base, "//cdn.example") == "http://cdn.example");
  CHECK(resolve_reference(base, "/other/path?q=1") == "http://127.0.0.1:5000/other/path?q=1");
  CHECK(resolve_reference(base, "sibling") == "http://127.0.0.1:5000/v2/foo/blobs/sibling");
  CHECK(resolve_reference(base, "../../bar/x") == "http://127.0.0.1:5000/v2/bar/x");
  CHECK(resolve_reference(base, "../../../../../../x") == "http://127.0.0.1:5000/x");
  CHECK(resolve_reference(base, "?q=2") == "http://127.0.0.1:5000/v2/foo/blobs/sha256:abc?q=2");
  CHECK(resolve_reference(base, "/x#frag") == "http://127.0.0.1:5000/x");
  CHECK(resolve_reference("http://h", "x") == "http://h/x");
  CHECK(resolve_reference(base, "file:///etc/passwd") == "file:///etc/passwd");  // refused later: not http(s)
  CHECK_FALSE(resolve_reference(base, "/x y"));
  CHECK_FALSE(resolve_reference(base, "/x\r\nSet-Cookie: a"));
  CHECK_FALSE(resolve_reference("no-scheme/path", "x"));
}

TEST_CASE("remove_dot_segments: RFC 3986 examples") {
  CHECK(remove_dot_segments("/a/b/c/./../../g") == "/a/g");
  CHECK(remove_dot_segments("mid/content=5/../6") == "mid/6");
  CHECK(remove_dot_segments("/..") == "/");
  CHECK(remove_dot_segments("/a/.") == "/a/");
}

TEST_CASE("authority_host: user info, ports and IPv6 brackets") {
  CHECK(authority_host("User@Host.Example:443") == "host.example");
  CHECK(authority_host("[::1]:5000") == "::1");
  CHECK(authority_host("127.0.0.1") == "127.0.0.1");
  CHECK(authority_host("") == "");
}
