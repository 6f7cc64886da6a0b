#pragma once
// Trust rules for the places an upstream may send us to: redirect targets
// (blob GETs are commonly redirected to a CDN) and token realms. An upstream is
// hostile until checked: it must not be able to aim regcache at an internal
// service (SSRF) or collect the configured credentials.
//
// Pure functions: no I/O, no DNS, no logging. The connecting code resolves a
// host, asks connect_refusal() about each address and connects only to an
// address it was told is fine (so there is no DNS-rebinding gap between the
// check and the connection).
//
// The rules, in one place:
// - Address classes: loopback (127/8, ::1), link-local (169.254/16, fe80::/10),
//   private (10/8, 172.16/12, 192.168/16, 100.64/10 shared, fc00::/7, fec0::/10),
//   special (unspecified, "this network" 0/8, multicast, broadcast, reserved
//   240/4, documentation and benchmarking ranges), public (everything else).
//   IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) IPv6 addresses
//   are classified by their IPv4 address. Networks configured as
//   `internal_networks` are "internal", ahead of every built-in class (so a
//   test can make 127.0.0.2 internal).
// - A redirect target or token realm may be connected to when its address is
//   in the upstream's `allowed_networks`, or public, or of the very class of
//   the upstream's own address (an upstream on loopback may redirect to
//   loopback; one on a private network to that private network). Special
//   addresses are refused unless allowed explicitly.
// - Credentials go to a token realm only over https (or http when the upstream
//   itself is plain http) and only when the realm's host is the upstream's
//   host, shares its registrable domain (see registrable_domain()), or is one
//   of the upstream's `token_realm_hosts`. A realm outside that rule is asked
//   for an anonymous token.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace regcache::upstream {

struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4
  std::size_t size() const { return v6 ? 16 : 4; }
  std::string str() const;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// A dotted IPv4 or an IPv6 literal (no brackets, no zone); nullopt otherwise.
std::optional<IpAddress> parse_ip(std::string_view text);

struct Network {
  IpAddress base;
  unsigned prefix = 0;  // bits
  bool contains(const IpAddress& address) const;
};

// "a.b.c.d/n", "x::y/n" or a bare address (a /32 or /128). nullopt for
// anything else, a prefix out of range or bits set beyond the prefix.
std::optional<Network> parse_network(std::string_view text);

enum class AddressClass { Public, Loopback, LinkLocal, Private, Internal, Special };
std::string_view to_string(AddressClass c);

// The class of `address`; `internal` (configured) wins over the built-ins.
AddressClass classify(const IpAddress& address, const std::vector<Network>& internal);

// A set of AddressClass values.
using ClassSet = unsigned;
constexpr ClassSet class_bit(AddressClass c) { return 1u << static_cast<unsigned>(c); }

struct AddressPolicy {
  std::vector<Network> internal;  // counted as "internal" besides the built-ins
  std::vector<Network> allowed;   // may always be connected to
};

// Why regcache must not connect to `address` for a redirect or a token realm
// of an upstream whose own address classes are `own`; nullopt when it may.
std::optional<std::string> connect_refusal(const IpAddress& address, ClassSet own, const AddressPolicy& policy);

// The registrable domain of a host name, without a public-suffix list: the
// last two labels, or the last three when the top-level label has two
// letters (a country code) and the second-level label is one of the short
// generic ones registries sell under (co, com, net, org, gov, edu, ac, or,
// ne, go; "example.co.uk"). IP literals and single-label names are their own
// domain. Lowercased, a trailing dot dropped.
std::string registrable_domain(std::string_view host);

// Why the configured credentials must not be sent to the token realm
// `realm_url` of the upstream at `upstream_url`; nullopt when they may.
// `extra_hosts` are the upstream's `token_realm_hosts` (exact host names).
std::optional<std::string> realm_credentials_refusal(std::string_view realm_url, std::string_view upstream_url,
                                                     const std::vector<std::string>& extra_hosts);

}  // namespace regcache::upstream
