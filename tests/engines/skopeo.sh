#!/usr/bin/env bash
# skopeo copy through regcache as a registries.conf mirror (issue 5):
#   docker.io/library/busybox and docker.io/library/multi (an index, --all) come
#   from a local docker-registry standing in for Docker Hub, via regcache, with
#   the digests that upstream serves; a second copy costs the upstream no blob
#   request; skopeo's TLS ClientHello to the plain-HTTP port is answered and
#   regcache carries on.
# Usage: skopeo.sh PATH/TO/regcache
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
engines_init "$@"

start_upstream hub
busybox_digest=$(push_image hub library/busybox latest "skopeo busybox") || { not_ok "push library/busybox"; finish; }
multi_digest=$(push_image hub library/multi 1.0 "skopeo multi" --multi) || { not_ok "push library/multi"; finish; }
check_eq "upstream serves library/busybox:latest as pushed" "$busybox_digest" \
  "$(registry_digest "${UP_PORT[hub]}" library/busybox latest)"

start_hub_mirror

write_mirror_registries_conf "$T/registries.conf"

check_tls_hello

# copy IMAGE DEST [--all] — skopeo copy from docker.io via the mirror; digest in DEST.digest.
copy() {
  skopeo --debug --registries-conf "$T/registries.conf" copy -q ${3:+"$3"} --digestfile "$T/$2.digest" \
    "docker://docker.io/$1" "oci:$T/$2:out"
}

blobs_before=$(upstream_blob_requests hub)
lines_before=$(regcache_lines)
if copy library/busybox:latest busybox1 >"$T/copy.log" 2>&1; then
  ok "skopeo copy docker.io/library/busybox:latest through the mirror"
  check_eq "the copied manifest digest is the upstream's" "$busybox_digest" "$(cat "$T/busybox1.digest")"
else
  not_ok "skopeo copy docker.io/library/busybox:latest through the mirror"
  grep -vE 'level=(debug|info)' "$T/copy.log" | tail -15 | diag
  show_log regcache
fi
first_blobs=$(($(upstream_blob_requests hub) - blobs_before))
check "the first copy fetched the blobs from the upstream (upstream blob requests: $first_blobs)" \
  test "$first_blobs" -ge 3
check "regcache logged the requests of that copy" \
  logged_since "$lines_before" 'GET /v2/library/busybox/manifests/latest 200 '

check_tls_fallback skopeo "$T/copy.log"
check "regcache is alive after skopeo's TLS attempts" curl -fsS "http://127.0.0.1:$REGCACHE_PORT/v2/"

blobs_before=$(upstream_blob_requests hub)
lines_before=$(regcache_lines)
if copy library/busybox:latest busybox2 >"$T/copy.log" 2>&1; then
  ok "second skopeo copy of docker.io/library/busybox:latest"
  check_eq "second copy: same digest" "$busybox_digest" "$(cat "$T/busybox2.digest")"
  check_eq "second copy: zero upstream blob requests" 0 $(($(upstream_blob_requests hub) - blobs_before))
  hits=$(blob_hits_since "$lines_before")
  check "second copy: regcache served the blobs from its cache ($hits blob hits)" test "$hits" -ge 3
else
  not_ok "second skopeo copy of docker.io/library/busybox:latest"
  grep -vE 'level=(debug|info)' "$T/copy.log" | tail -15 | diag
fi

blobs_before=$(upstream_blob_requests hub)
if copy library/multi:1.0 multi1 --all >"$T/copy.log" 2>&1; then
  ok "skopeo copy --all docker.io/library/multi:1.0 (an index) through the mirror"
  check_eq "the copied index digest is the upstream's" "$multi_digest" "$(cat "$T/multi1.digest")"
  # Two configs, the two id layers; the busybox layer is in regcache already.
  first_blobs=$(($(upstream_blob_requests hub) - blobs_before))
  check "that copy fetched both platforms' blobs from the upstream (upstream blob requests: $first_blobs)" \
    test "$first_blobs" -ge 4
else
  not_ok "skopeo copy --all docker.io/library/multi:1.0 (an index) through the mirror"
  grep -vE 'level=(debug|info)' "$T/copy.log" | tail -15 | diag
  show_log regcache
fi
blobs_before=$(upstream_blob_requests hub)
lines_before=$(regcache_lines)
if copy library/multi:1.0 multi2 --all >"$T/copy.log" 2>&1; then
  check_eq "second copy of library/multi: same digest" "$multi_digest" "$(cat "$T/multi2.digest")"
  check_eq "second copy of library/multi: zero upstream blob requests" 0 \
    $(($(upstream_blob_requests hub) - blobs_before))
  hits=$(blob_hits_since "$lines_before")
  check "second copy of library/multi: regcache served the blobs from its cache ($hits blob hits)" \
    test "$hits" -ge 5
else
  not_ok "second skopeo copy --all docker.io/library/multi:1.0"
  grep -vE 'level=(debug|info)' "$T/copy.log" | tail -15 | diag
fi

check_regcache_stops
finish
