#include "upstream/trust.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

#include "upstream/location.h"

namespace regcache::upstream {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

IpAddress v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  IpAddress ip;
  ip.bytes[0] = a;
  ip.bytes[1] = b;
  ip.bytes[2] = c;
  ip.bytes[3] = d;
  return ip;
}

bool in(const IpAddress& address, const IpAddress& base, unsigned prefix) {
  return Network{base, prefix}.contains(address);
}

IpAddress v6_prefix(std::initializer_list<std::uint8_t> leading) {
  IpAddress ip;
  ip.v6 = true;
  std::copy(leading.begin(), leading.end(), ip.bytes.begin());
  return ip;
}

AddressClass classify_v4(const IpAddress& a) {
  if (in(a, v4(127, 0, 0, 0), 8)) return AddressClass::Loopback;
  if (in(a, v4(169, 254, 0, 0), 16)) return AddressClass::LinkLocal;
  if (in(a, v4(10, 0, 0, 0), 8) || in(a, v4(172, 16, 0, 0), 12) || in(a, v4(192, 168, 0, 0), 16) ||
      in(a, v4(100, 64, 0, 0), 10))
    return AddressClass::Private;
  if (in(a, v4(0, 0, 0, 0), 8) || in(a, v4(224, 0, 0, 0), 4) || in(a, v4(240, 0, 0, 0), 4) ||
      in(a, v4(192, 0, 0, 0), 24) || in(a, v4(192, 0, 2, 0), 24) || in(a, v4(198, 18, 0, 0), 15) ||
      in(a, v4(198, 51, 100, 0), 24) || in(a, v4(203, 0, 113, 0), 24))
    return AddressClass::Special;
  return AddressClass::Public;
}

// The IPv4 address inside an IPv4-mapped or NAT64 IPv6 address.
std::optional<IpAddress> embedded_v4(const IpAddress& a) {
  static const IpAddress mapped = v6_prefix({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff});
  static const IpAddress nat64 = v6_prefix({0, 0x64, 0xff, 0x9b});
  if (!in(a, mapped, 96) && !in(a, nat64, 96)) return std::nullopt;
  return v4(a.bytes[12], a.bytes[13], a.bytes[14], a.bytes[15]);
}

AddressClass classify_v6(const IpAddress& a) {
  IpAddress loopback = v6_prefix({});
  loopback.bytes[15] = 1;
  if (a == loopback) return AddressClass::Loopback;
  if (a == v6_prefix({})) return AddressClass::Special;  // ::
  if (in(a, v6_prefix({0xfe, 0x80}), 10)) return AddressClass::LinkLocal;
  if (in(a, v6_prefix({0xfc}), 7) || in(a, v6_prefix({0xfe, 0xc0}), 10)) return AddressClass::Private;
  if (in(a, v6_prefix({0xff}), 8) || in(a, v6_prefix({0x20, 0x01, 0x0d, 0xb8}), 32) ||
      in(a, v6_prefix({}), 96))  // multicast, documentation, the deprecated IPv4-compatible form
    return AddressClass::Special;
  return AddressClass::Public;
}

}  // namespace

std::string IpAddress::str() const {
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), text, sizeof text);
  return text;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  std::string s(text);
  IpAddress ip;
  if (::inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) return ip;
  ip.v6 = true;
  if (::inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) return ip;
  return std::nullopt;
}

bool Network::contains(const IpAddress& address) const {
  if (address.v6 != base.v6) return false;
  unsigned full = prefix / 8, rest = prefix % 8;
  if (!std::equal(base.bytes.begin(), base.bytes.begin() + full, address.bytes.begin())) return false;
  if (rest == 0) return true;
  auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (base.bytes[full] & mask) == (address.bytes[full] & mask);
}

std::optional<Network> parse_network(std::string_view text) {
  std::size_t slash = text.find('/');
  std::optional<IpAddress> base = parse_ip(text.substr(0, slash));
  if (!base) return std::nullopt;
  unsigned bits = static_cast<unsigned>(base->size() * 8);
  unsigned prefix = bits;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || !std::all_of(digits.begin(), digits.end(), ::isdigit))
      return std::nullopt;
    prefix = static_cast<unsigned>(std::stoul(std::string(digits)));
    if (prefix > bits) return std::nullopt;
  }
  Network network{*base, prefix};
  // Bits beyond the prefix would make "10.1.2.3/8" mean something else than it says.
  IpAddress masked = *base;
  for (unsigned i = 0; i < base->size(); ++i) {
    unsigned keep = prefix > i * 8 ? std::min(8u, prefix - i * 8) : 0;
    masked.bytes[i] &= static_cast<std::uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
  }
  if (!(masked == *base)) return std::nullopt;
  return network;
}

std::string_view to_string(AddressClass c) {
  switch (c) {
    case AddressClass::Public:
      return "public";
    case AddressClass::Loopback:
      return "loopback";
    case AddressClass::LinkLocal:
      return "link-local";
    case AddressClass::Private:
      return "private";
    case AddressClass::Internal:
      return "internal (internal_networks)";
    case AddressClass::Special:
      return "unspecified, multicast or reserved";
  }
  return "?";
}

AddressClass classify(const IpAddress& address, const std::vector<Network>& internal) {
  for (const auto& n : internal)
    if (n.contains(address)) return AddressClass::Internal;
  if (!address.v6) return classify_v4(address);
  if (auto inner = embedded_v4(address)) return classify(*inner, internal);
  return classify_v6(address);
}

std::optional<std::string> connect_refusal(const IpAddress& address, ClassSet own, const AddressPolicy& policy) {
  auto allowed = [&](const IpAddress& a) {
    return std::any_of(policy.allowed.begin(), policy.allowed.end(), [&](const Network& n) { return n.contains(a); });
  };
  if (allowed(address)) return std::nullopt;
  if (auto inner = embedded_v4(address); inner && allowed(*inner)) return std::nullopt;
  AddressClass c = classify(address, policy.internal);
  if (c == AddressClass::Public) return std::nullopt;
  if (c != AddressClass::Special && (own & class_bit(c))) return std::nullopt;
  return address.str() + " is " + std::string(to_string(c)) +
         ", an address class the upstream itself is not on (allowed_networks lists exceptions)";
}

std::string registrable_domain(std::string_view host_text) {
  std::string host = lower(host_text);
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (parse_ip(host)) return host;
  std::vector<std::string_view> labels;
  std::string_view rest = host;
  while (true) {
    std::size_t dot = rest.rfind('.');
    labels.push_back(dot == std::string_view::npos ? rest : rest.substr(dot + 1));
    if (dot == std::string_view::npos) break;
    rest = rest.substr(0, dot);
  }
  // labels: top-level first
  std::size_t keep = 2;
  static const std::vector<std::string_view> short_second = {"co", "com", "net", "org", "gov",
                                                             "edu", "ac",  "or",  "ne",  "go"};
  if (labels.size() >= 3 && labels[0].size() == 2 &&
      std::find(short_second.begin(), short_second.end(), labels[1]) != short_second.end())
    keep = 3;
  if (labels.size() <= keep) return host;
  std::size_t cut = host.size();
  for (std::size_t i = 0; i < keep; ++i) cut -= labels[i].size() + (i == 0 ? 0 : 1);
  return host.substr(cut);
}

std::optional<std::string> realm_credentials_refusal(std::string_view realm_url, std::string_view upstream_url,
                                                     const std::vector<std::string>& extra_hosts) {
  UriReference realm = split_uri_reference(realm_url), own = split_uri_reference(upstream_url);
  std::string realm_scheme = lower(realm.scheme.value_or("")), own_scheme = lower(own.scheme.value_or(""));
  std::string realm_host = authority_host(realm.authority.value_or(""));
  std::string own_host = authority_host(own.authority.value_or(""));
  if (realm_host.empty() || (realm_scheme != "https" && realm_scheme != "http"))
    return "the realm is not an http(s) URL with a host";
  if (realm.authority->find('@') != std::string::npos) return "the realm's URL carries user info";
  if (realm_scheme != "https" && own_scheme != "http")
    return "the realm is plain http and the upstream is https";
  if (realm_host == own_host) return std::nullopt;
  for (const auto& extra : extra_hosts)
    if (lower(extra) == realm_host) return std::nullopt;
  if (!parse_ip(realm_host) && !parse_ip(own_host) && realm_host.find('.') != std::string::npos &&
      registrable_domain(realm_host) == registrable_domain(own_host))
    return std::nullopt;
  return "the realm's host " + realm_host + " is neither the upstream's domain " + registrable_domain(own_host) +
         " nor one of its token_realm_hosts";
}

}  // namespace regcache::upstream
