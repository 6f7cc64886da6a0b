#!/usr/bin/env bash
# podman pull through regcache as a registries.conf mirror (issue 5), and podman
# push into a hosted repository and pull back (issue 3):
#   docker.io/library/busybox (short name "busybox") and docker.io/library/multi
#   (an index) come from a local docker-registry standing in for Docker Hub, via
#   regcache, with the upstream's digests; `podman run` runs the pulled image; a
#   second pull after `podman rmi` costs the upstream no blob request; podman's
#   TLS ClientHello to the plain-HTTP port is answered and regcache carries on.
# Usage: podman.sh PATH/TO/regcache
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
engines_init "$@"
command -v podman >/dev/null || { not_ok "podman installed (run .ci/install-engines)"; finish; }

start_upstream hub
busybox_digest=$(push_image hub library/busybox latest "podman busybox") || { not_ok "push library/busybox"; finish; }
multi_digest=$(push_image hub library/multi 1.0 "podman multi" --multi) || { not_ok "push library/multi"; finish; }
multi_amd64_digest=$(curl -fsS "${ACCEPT_ALL[@]}" "http://127.0.0.1:${UP_PORT[hub]}/v2/library/multi/manifests/1.0" |
  python3 -c 'import json,sys; print([m["digest"] for m in json.load(sys.stdin)["manifests"] if m["platform"]["architecture"] == "amd64"][0])')

start_hub_mirror
check_tls_hello

write_mirror_registries_conf "$T/registries.conf"
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
# No systemd here: cgroupfs and file-based events; vfs storage keeps it simple.
podman_() {
  podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}

image_gone() { ! podman_ image exists "$1"; }
# has_digest REF DIGEST — DIGEST is the image's digest or one of its RepoDigests.
has_digest() { podman_ image inspect --format '{{.Digest}} {{.RepoDigests}}' "$1" | grep -F "$2" >/dev/null; }

# pull WHAT NAME — podman pull, as one check; debug output in $T/pull.log.
pull() {
  if podman_ --log-level debug pull -q "$2" >"$T/pull.log" 2>&1; then
    ok "$1"
  else
    not_ok "$1"
    grep -vE 'level=(debug|info)' "$T/pull.log" | tail -15 | diag
    show_log regcache 15
    return 1
  fi
}

blobs_before=$(upstream_blob_requests hub)
lines_before=$(regcache_lines)
if pull "podman pull busybox (short name) through the mirror" busybox; then
  check_eq "the pulled image's digest is the upstream's" "$busybox_digest" \
    "$(podman_ image inspect --format '{{.Digest}}' docker.io/library/busybox:latest)"
  first_blobs=$(($(upstream_blob_requests hub) - blobs_before))
  check "the first pull fetched the blobs from the upstream (upstream blob requests: $first_blobs)" \
    test "$first_blobs" -ge 3
  check_tls_fallback podman "$T/pull.log"
  out=$(podman_ run --rm --runtime runc --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 \
    docker.io/library/busybox:latest 2>&1)
  check_eq "podman run busybox runs the pulled image" "podman busybox" "$out"
fi

podman_ rmi -f docker.io/library/busybox:latest >/dev/null 2>&1
check "podman rmi removed the image" image_gone docker.io/library/busybox:latest
blobs_before=$(upstream_blob_requests hub)
lines_before=$(regcache_lines)
if pull "second podman pull of busybox after rmi" docker.io/library/busybox:latest; then
  check_eq "second pull: same digest" "$busybox_digest" \
    "$(podman_ image inspect --format '{{.Digest}}' docker.io/library/busybox:latest)"
  check_eq "second pull: zero upstream blob requests" 0 $(($(upstream_blob_requests hub) - blobs_before))
  hits=$(blob_hits_since "$lines_before")
  check "second pull: regcache served the blobs from its cache ($hits blob hits)" test "$hits" -ge 3
fi

if pull "podman pull docker.io/library/multi:1.0 (an index) through the mirror" docker.io/library/multi:1.0; then
  # podman records the digest it pulled by: the index's.
  check_eq "the pulled multi image's digest is the upstream index's" "$multi_digest" \
    "$(podman_ image inspect --format '{{.Digest}}' docker.io/library/multi:1.0)"
  check "podman pulled the amd64 image of that index ($multi_amd64_digest)" \
    has_digest docker.io/library/multi:1.0 "$multi_amd64_digest"
fi
podman_ rmi -f docker.io/library/multi:1.0 >/dev/null 2>&1
check "podman rmi removed library/multi" image_gone docker.io/library/multi:1.0
blobs_before=$(upstream_blob_requests hub)
lines_before=$(regcache_lines)
if pull "second podman pull of library/multi after rmi" docker.io/library/multi:1.0; then
  check_eq "second pull of library/multi: zero upstream blob requests" 0 \
    $(($(upstream_blob_requests hub) - blobs_before))
  # The busybox layer is shared with docker.io/library/busybox, still stored
  # locally: podman fetches only the config and the id layer again.
  hits=$(blob_hits_since "$lines_before")
  check "second pull of library/multi: regcache served the blobs from its cache ($hits blob hits)" \
    test "$hits" -ge 2
fi

# podman push into a hosted repository of regcache (local/ by default), then
# pull it back: the digest podman pushed is the digest it pulls (issue 3).
if podman_ push -q --tls-verify=false --digestfile "$T/pushed.digest" docker.io/library/busybox:latest \
    "docker://127.0.0.1:$REGCACHE_PORT/local/busybox:pushed" >"$T/push.log" 2>&1; then
  ok "podman push into the hosted repository local/busybox"
  pushed=$(cat "$T/pushed.digest")
  check_eq "regcache serves the pushed manifest under the digest podman reported" "$pushed" \
    "$(curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://127.0.0.1:$REGCACHE_PORT/v2/local/busybox/manifests/pushed" |
       tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')"
  podman_ rmi -f docker.io/library/busybox:latest >/dev/null 2>&1
  if podman_ pull -q --tls-verify=false "127.0.0.1:$REGCACHE_PORT/local/busybox:pushed" >"$T/pull-pushed.log" 2>&1; then
    ok "podman pull of the pushed image back from regcache"
    check "the pulled image has the pushed digest ($pushed)" has_digest "127.0.0.1:$REGCACHE_PORT/local/busybox:pushed" "$pushed"
  else
    not_ok "podman pull of the pushed image back from regcache"
    tail -15 "$T/pull-pushed.log" | diag
  fi
else
  not_ok "podman push into the hosted repository local/busybox"
  tail -15 "$T/push.log" | diag
  show_log regcache 15
fi

check_regcache_stops
finish
