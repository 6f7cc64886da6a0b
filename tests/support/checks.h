#pragma once
// doctest assertions shared by the integration tests.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "support/oci_image.h"
#include "support/skopeo.h"

// Fails the test case with skopeo's command line and stderr when it did not exit 0.
#define REQUIRE_SKOPEO_OK(result_expr)                                                             \
  do {                                                                                             \
    const ::regcache::test::SkopeoResult& skopeo_result_ = (result_expr);                          \
    REQUIRE_MESSAGE(skopeo_result_.exit_code == 0, skopeo_result_.command << "\nexit "             \
                                                   << skopeo_result_.exit_code << "\n"             \
                                                   << skopeo_result_.stderr_text);                 \
  } while (0)

namespace regcache::test {

// CHECKs that the OCI layout `out` (written by skopeo) names image.top under `tag` and
// holds exactly image's manifests and blobs, each with bytes that hash to its digest.
void check_layout_matches(const GeneratedImage& image, const std::filesystem::path& out, const std::string& tag);

}  // namespace regcache::test
