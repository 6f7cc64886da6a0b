// Unit tests for the Link headers of paged lists (proxy/pagination.h).
#include <doctest/doctest.h>

#include "proxy/pagination.h"

TEST_CASE("pagination: proxied_next_link: the client's path with the upstream's next page, keeping the client's ns") {
  CHECK(regcache::proxy::proxied_next_link("/v2/docker.io/library/alpine/tags/list", "last=3.19&n=2", "n=2") ==
        R"(</v2/docker.io/library/alpine/tags/list?last=3.19&n=2>; rel="next")");
  CHECK(regcache::proxy::proxied_next_link("/v2/library/alpine/tags/list", "last=3.19&n=2", "n=2&ns=docker.io") ==
        R"(</v2/library/alpine/tags/list?last=3.19&n=2&ns=docker.io>; rel="next")");
  // an ns from upstream is not ours to pass on
  CHECK(regcache::proxy::proxied_next_link("/v2/a/tags/list", "ns=elsewhere&last=x&n=1", "ns=ghcr.io") ==
        R"(</v2/a/tags/list?last=x&n=1&ns=ghcr.io>; rel="next")");
  CHECK(regcache::proxy::proxied_next_link("/v2/a/tags/list", "", "ns=ghcr.io").empty());
}
