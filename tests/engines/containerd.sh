#!/usr/bin/env bash
# containerd (ctr images pull --hosts-dir) through regcache for two registries
# (issue 5): two local docker-registry upstreams stand in for docker.io and
# ghcr.io and hold the same repository name, org/app:1.0, with different
# content. containerd sends `?ns=docker.io` / `?ns=ghcr.io` to the mirror, and
# each pull must get its own registry's image (digest check); a second pull
# after `ctr images rm --sync` costs neither upstream a blob request; an `ns`
# naming a registry that is not configured is refused with 404 NAME_UNKNOWN and
# nothing is contacted (evil.example.com resolves to a listener on 127.0.0.1:80
# and :443 here, through a private /etc/hosts, so a contact would be seen).
# Usage: containerd.sh PATH/TO/regcache
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
engines_init "$@"
for tool in containerd ctr; do
  command -v $tool >/dev/null || { not_ok "$tool installed (run .ci/install-engines)"; finish; }
done

start_upstream hub
start_upstream ghcr
hub_app=$(push_image hub org/app 1.0 "docker.io org/app") || { not_ok "push docker.io stand-in org/app"; finish; }
ghcr_app=$(push_image ghcr org/app 1.0 "ghcr.io org/app") || { not_ok "push ghcr.io stand-in org/app"; finish; }
hub_busybox=$(push_image hub library/busybox latest "containerd busybox") || { not_ok "push library/busybox"; finish; }
check "the two upstreams hold different images under the same name org/app:1.0" test "$hub_app" != "$ghcr_app"

# evil.example.com -> 127.0.0.1, where a listener records every connection.
printf '127.0.0.1 localhost\n127.0.0.1 evil.example.com\n' >"$T/hosts"
mount --bind "$T/hosts" /etc/hosts
spawn evil python3 -u -c '
import socket, selectors, sys
sel = selectors.DefaultSelector()
for port in (80, 443):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(16); sel.register(s, selectors.EVENT_READ)
print("listening", flush=True)
while True:
    for key, _ in sel.select():
        conn, peer = key.fileobj.accept()
        print("CONNECTION on port %d from %s" % (key.fileobj.getsockname()[1], peer), flush=True)
        conn.close()
'
wait_until 10 grep -q listening "$T/evil.log" || { not_ok "evil.example.com listener started"; show_log evil; finish; }
curl -s -m 5 -o /dev/null http://evil.example.com/
curl -s -m 5 -o /dev/null https://evil.example.com/
check "the evil.example.com trap sees connections (curl to it on :80 and :443 recorded)" \
  wait_until 5 test "$(grep -c CONNECTION "$T/evil.log")" -eq 2
evil_connections() { grep -c CONNECTION "$T/evil.log"; }

start_regcache "$(cat <<EOF
{"upstreams": [{"name": "docker.io", "url": "http://127.0.0.1:${UP_PORT[hub]}",
                "library_prefix": true, "tag_ttl_s": 3600},
               {"name": "ghcr.io", "url": "http://127.0.0.1:${UP_PORT[ghcr]}", "tag_ttl_s": 3600}],
 "default_upstream": "docker.io", "log_level": "info"}
EOF
)"

# containerd with everything under $T and the CRI plugin off.
cat >"$T/containerd.toml" <<EOF
version = 2
root = "$T/containerd-root"
state = "$T/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$T/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/containerd-opt"
EOF
spawn containerd containerd --config "$T/containerd.toml"
ctr_() { ctr --address "$T/containerd.sock" "$@"; }
if ! wait_until 30 ctr_ version; then
  not_ok "containerd starts"
  show_log containerd
  finish
fi

# Every registry's server is a port nothing listens on: only the mirror can serve.
dead_port=$(free_port)
for registry in docker.io ghcr.io evil.example.com; do
  mkdir -p "$T/certs.d/$registry"
  cat >"$T/certs.d/$registry/hosts.toml" <<EOF
server = "http://127.0.0.1:$dead_port"
[host."http://127.0.0.1:$REGCACHE_PORT"]
  capabilities = ["pull", "resolve"]
EOF
done

# pull WHAT REF — ctr images pull through the mirror, as one check.
pull() {
  if ctr_ images pull --hosts-dir "$T/certs.d" "$2" >"$T/pull.log" 2>&1; then
    ok "$1"
  else
    not_ok "$1"
    tail -15 "$T/pull.log" | diag
    show_log regcache 15
    return 1
  fi
}
image_digest() { ctr_ images ls "name==$1" | awk 'NR == 2 {print $3}'; }

lines_before=$(regcache_lines)
hub_blobs=$(upstream_blob_requests hub)
ghcr_blobs=$(upstream_blob_requests ghcr)
if pull "ctr pull docker.io/org/app:1.0 through regcache (ns=docker.io)" docker.io/org/app:1.0; then
  check_eq "docker.io/org/app:1.0 is the docker.io upstream's image" "$hub_app" "$(image_digest docker.io/org/app:1.0)"
fi
if pull "ctr pull ghcr.io/org/app:1.0 through regcache (ns=ghcr.io)" ghcr.io/org/app:1.0; then
  check_eq "ghcr.io/org/app:1.0 is the ghcr.io upstream's image" "$ghcr_app" "$(image_digest ghcr.io/org/app:1.0)"
fi
check "containerd sent ?ns=docker.io to regcache" logged_since "$lines_before" 'manifests/1.0\?ns=docker.io '
check "containerd sent ?ns=ghcr.io to regcache" logged_since "$lines_before" 'manifests/1.0\?ns=ghcr.io '
# docker.io's org/app: config + 2 layers; ghcr.io's: config + its id layer (the
# busybox layer has the same digest in both, and containerd keeps it from the first).
n=$(($(upstream_blob_requests hub) - hub_blobs))
check "the docker.io upstream was asked for its org/app blobs ($n blob requests)" test "$n" -ge 3
n=$(($(upstream_blob_requests ghcr) - ghcr_blobs))
check "the ghcr.io upstream was asked for its org/app blobs ($n blob requests)" test "$n" -ge 2
if pull "ctr pull docker.io/library/busybox:latest through regcache" docker.io/library/busybox:latest; then
  check_eq "docker.io/library/busybox:latest is the upstream's image" "$hub_busybox" \
    "$(image_digest docker.io/library/busybox:latest)"
fi

# Each image runs (containerd's runc) and shows whose content it has.
for ref in docker.io/org/app:1.0 ghcr.io/org/app:1.0; do
  name=run-${ref%%/*}
  if out=$(ctr_ run --rm "$ref" "${name//./-}" 2>&1); then
    check_eq "ctr run $ref prints its own registry's content" "${ref%%/*} org/app" "$out"
  else
    not_ok "ctr run $ref"
    printf '%s\n' "$out" | tail -5 | diag
  fi
done

# Second pulls: remove the images and let containerd's GC drop their content.
ctr_ images rm --sync docker.io/org/app:1.0 ghcr.io/org/app:1.0 docker.io/library/busybox:latest >/dev/null 2>&1
check_eq "ctr images rm --sync left no content behind" "" "$(ctr_ content ls -q)"
lines_before=$(regcache_lines)
hub_blobs=$(upstream_blob_requests hub)
ghcr_blobs=$(upstream_blob_requests ghcr)
if pull "second ctr pull docker.io/org/app:1.0" docker.io/org/app:1.0 &&
  pull "second ctr pull ghcr.io/org/app:1.0" ghcr.io/org/app:1.0 &&
  pull "second ctr pull docker.io/library/busybox:latest" docker.io/library/busybox:latest; then
  check_eq "second pulls: same digests" "$hub_app $ghcr_app $hub_busybox" \
    "$(image_digest docker.io/org/app:1.0) $(image_digest ghcr.io/org/app:1.0) $(image_digest docker.io/library/busybox:latest)"
  check_eq "second pulls: zero blob requests to the docker.io upstream" 0 $(($(upstream_blob_requests hub) - hub_blobs))
  check_eq "second pulls: zero blob requests to the ghcr.io upstream" 0 $(($(upstream_blob_requests ghcr) - ghcr_blobs))
  hits=$(blob_hits_since "$lines_before")
  # org/app twice (config + 2 layers each), busybox: config + its id layer (the
  # busybox layer is the one org/app has, fetched once).
  check "second pulls: regcache served the blobs from its cache ($hits blob hits)" test "$hits" -ge 7
fi

# Routing by path prefix, for clients that cannot send ns.
check_eq "GET /v2/ghcr.io/org/app/manifests/1.0 (path prefix) is the ghcr.io upstream's" "$ghcr_app" \
  "$(registry_digest "$REGCACHE_PORT" ghcr.io/org/app 1.0)"
check_eq "GET /v2/docker.io/org/app/manifests/1.0 (path prefix) is the docker.io upstream's" "$hub_app" \
  "$(registry_digest "$REGCACHE_PORT" docker.io/org/app 1.0)"
oci_namespace() { # URL — the OCI-Namespace header of a HEAD
  curl -fsS -I "${ACCEPT_ALL[@]}" "$1" | tr -d '\r' | awk 'tolower($1) == "oci-namespace:" {print $2}'
}
check_eq "?ns=ghcr.io responses carry OCI-Namespace: ghcr.io" ghcr.io \
  "$(oci_namespace "http://127.0.0.1:$REGCACHE_PORT/v2/org/app/manifests/1.0?ns=ghcr.io")"

# An ns naming no configured upstream: refused, nothing contacted.
# A blob regcache holds (the busybox layer): even a cached blob is refused.
hub_layer=$(curl -fsS "${ACCEPT_ALL[@]}" "http://127.0.0.1:${UP_PORT[hub]}/v2/org/app/manifests/1.0" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
hub_all=$(upstream_requests hub)
ghcr_all=$(upstream_requests ghcr)
lines_before=$(regcache_lines)
for path in manifests/1.0 "blobs/$hub_layer"; do
  status=$(curl -sS -o "$T/evil.body" -w '%{http_code}' "${ACCEPT_ALL[@]}" \
    "http://127.0.0.1:$REGCACHE_PORT/v2/org/app/$path?ns=evil.example.com")
  check_eq "GET /v2/org/app/${path%%/*}/…?ns=evil.example.com is 404" 404 "$status"
  check "… with the OCI error NAME_UNKNOWN" python3 -c \
    'import json,sys; e=json.load(open(sys.argv[1]))["errors"]; assert e[0]["code"] == "NAME_UNKNOWN", e' "$T/evil.body"
done
status=$(curl -sS -o /dev/null -I -w '%{http_code}' "${ACCEPT_ALL[@]}" \
  "http://127.0.0.1:$REGCACHE_PORT/v2/org/app/manifests/1.0?ns=evil.example.com")
check_eq "HEAD …/manifests/1.0?ns=evil.example.com is 404" 404 "$status"
if ctr_ images pull --hosts-dir "$T/certs.d" evil.example.com/org/app:1.0 >"$T/pull.log" 2>&1; then
  not_ok "ctr pull evil.example.com/org/app:1.0 fails"
else
  ok "ctr pull evil.example.com/org/app:1.0 fails"
fi
check "regcache answered containerd's ?ns=evil.example.com with 404" \
  logged_since "$lines_before" 'manifests/1.0\?ns=evil.example.com 404 '
check_eq "no request reached the docker.io upstream" "$hub_all" "$(upstream_requests hub)"
check_eq "no request reached the ghcr.io upstream" "$ghcr_all" "$(upstream_requests ghcr)"
check_eq "no connection reached evil.example.com (127.0.0.1:80/443 here)" 2 "$(evil_connections)"

# The path-prefix form naming an unconfigured registry: /v2/evil.example.com/org/app
# is a valid repository name on the default upstream, so it may be forwarded
# there — but never to evil.example.com itself.
status=$(curl -sS -o /dev/null -w '%{http_code}' "${ACCEPT_ALL[@]}" \
  "http://127.0.0.1:$REGCACHE_PORT/v2/evil.example.com/org/app/manifests/1.0")
check_eq "GET /v2/evil.example.com/org/app/manifests/1.0 is 404" 404 "$status"
check_eq "… and no connection reached evil.example.com" 2 "$(evil_connections)"

check_regcache_stops
finish
