#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "proxy/status_page.h"

using namespace regcache::proxy;

TEST_CASE("status page: upstream URLs lose their userinfo - HTML escapes what it shows") {
  CHECK(url_without_userinfo("https://user:secret@registry.example:5000/x") == "https://registry.example:5000/x");
  CHECK(url_without_userinfo("https://registry.example") == "https://registry.example");
  CHECK(url_without_userinfo("http://h/path@not-userinfo") == "http://h/path@not-userinfo");

  StatusSnapshot s;
  s.version = "1.0";
  s.hits = 3;
  s.misses = 1;
  s.bytes_from_store = 2048;
  s.upstreams.push_back({"<script>", "https://u:pw@example.org"});
  const std::string html = status_html(s);
  CHECK(html.find("<script>") == std::string::npos);
  CHECK(html.find("&lt;script&gt;") != std::string::npos);
  CHECK(html.find("pw@") == std::string::npos);
  CHECK(html.find(R"(id="hit-ratio">75.0%<)") != std::string::npos);
  CHECK(html.find(R"(id="bytes-saved">2.0 KiB<)") != std::string::npos);

  auto j = nlohmann::json::parse(status_json(s));
  CHECK(j["since_start"]["hit_ratio"] == 0.75);
  CHECK(j["upstreams"][0]["url"] == "https://example.org");
  CHECK(status_json(StatusSnapshot{}).find("\"hit_ratio\": null") != std::string::npos);
}
