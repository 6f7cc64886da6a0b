#!/usr/bin/env bash
# dockerd through regcache as its `registry-mirrors` entry (issue 5):
#   `docker pull busybox` and `docker pull library/multi:1.0` (an index) — Docker
#   Hub-style names, which dockerd sends to the mirror as /v2/library/<name>/… —
#   come from a local docker-registry standing in for Docker Hub, via regcache,
#   with the upstream's digests; `docker run --rm --network none` runs them; a
#   second pull after `docker rmi` costs the upstream no blob request.
# dockerd falls back to registry-1.docker.io when the mirror fails: in this
# sandbox that cannot leave the machine, and a pull can only succeed via regcache.
# Usage: docker.sh PATH/TO/regcache
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
engines_init "$@"
command -v dockerd >/dev/null || { not_ok "dockerd installed (run .ci/install-engines)"; finish; }
# Debian's client matches its daemon (another docker CLI may come first in PATH).
DOCKER_CLI=/usr/bin/docker
[ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker)

start_upstream hub
busybox_digest=$(push_image hub library/busybox latest "docker busybox") || { not_ok "push library/busybox"; finish; }
multi_digest=$(push_image hub library/multi 1.0 "docker multi" --multi) || { not_ok "push library/multi"; finish; }

start_hub_mirror

# dockerd without systemd, everything under $T; vfs storage (no overlay mounts).
echo "{\"registry-mirrors\": [\"http://127.0.0.1:$REGCACHE_PORT\"]}" >"$T/daemon.json"
spawn dockerd dockerd --config-file "$T/daemon.json" --data-root "$T/docker-root" --exec-root "$T/docker-exec" \
  --pidfile "$T/docker.pid" -H "unix://$T/docker.sock" --iptables=false --ip6tables=false --bridge=none \
  --storage-driver=vfs
docker_() { DOCKER_CONFIG=$T/docker-cli "$DOCKER_CLI" -H "unix://$T/docker.sock" "$@"; }
if ! wait_until 60 docker_ version; then
  not_ok "dockerd starts"
  show_log dockerd 40
  finish
fi
ok "dockerd starts ($(docker_ version --format '{{.Server.Version}}'))"

# pull WHAT REF — docker pull, as one check.
pull() {
  if docker_ pull -q "$2" >"$T/pull.log" 2>&1; then
    ok "$1"
  else
    not_ok "$1"
    tail -15 "$T/pull.log" | diag
    show_log regcache 15
    grep -iE 'level=(error|warn).*(mirror|registry|pull)' "$T/dockerd.log" | tail -5 | diag
    return 1
  fi
}
repo_digest() { docker_ image inspect --format '{{index .RepoDigests 0}}' "$1" 2>&1; }
run() { docker_ run --rm --network none "$1" 2>&1; }

blobs_before=$(upstream_blob_requests hub)
lines_before=$(regcache_lines)
if pull "docker pull busybox through the registry mirror" busybox; then
  check_eq "busybox's RepoDigest is the upstream's manifest digest" "busybox@$busybox_digest" "$(repo_digest busybox)"
  check_eq "docker run --rm --network none busybox runs the pulled image" "docker busybox" "$(run busybox)"
  first_blobs=$(($(upstream_blob_requests hub) - blobs_before))
  check "the first pull fetched the blobs from the upstream (upstream blob requests: $first_blobs)" \
    test "$first_blobs" -ge 3
  check "dockerd asked the mirror for /v2/library/busybox/… (HEAD for the tag)" \
    logged_since "$lines_before" 'HEAD /v2/library/busybox/manifests/latest 200 '
fi
if pull "docker pull library/multi:1.0 (an index) through the registry mirror" library/multi:1.0; then
  check_eq "multi's RepoDigest is the upstream's index digest" "multi@$multi_digest" "$(repo_digest multi:1.0)"
  check_eq "docker run --rm --network none multi:1.0 runs the amd64 image" "docker multi" "$(run multi:1.0)"
fi

docker_ rmi busybox multi:1.0 >/dev/null 2>&1
check_eq "docker rmi removed both images" "" "$(docker_ images -q)"
blobs_before=$(upstream_blob_requests hub)
lines_before=$(regcache_lines)
if pull "second docker pull busybox after rmi" busybox &&
  pull "second docker pull library/multi:1.0 after rmi" library/multi:1.0; then
  check_eq "second pulls: same digests" "busybox@$busybox_digest multi@$multi_digest" \
    "$(repo_digest busybox) $(repo_digest multi:1.0)"
  check_eq "second pulls: zero upstream blob requests" 0 $(($(upstream_blob_requests hub) - blobs_before))
  hits=$(blob_hits_since "$lines_before")
  # busybox: config + 2 layers; multi: config + id layer (the busybox layer is shared).
  check "second pulls: regcache served the blobs from its cache ($hits blob hits)" test "$hits" -ge 5
  check_eq "docker run after the second pull" "docker busybox" "$(run busybox)"
fi

check "dockerd is still running" alive dockerd
check_regcache_stops
finish
