#!/usr/bin/env bash
# podman logs in to regcache and pushes into local/ (issue 16): users from an
# `htpasswd -B` file, the token flow, plain HTTP on loopback (where passwords
# are allowed without TLS).
#   - an anonymous `podman push` is refused;
#   - `podman login` with a wrong password fails;
#   - bob (pull only) logs in, and his push is refused as denied;
#   - alice logs in and pushes; the pushed digest is served and pulls back.
# Usage: podman-auth.sh PATH/TO/regcache
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
engines_init "$@"
command -v podman >/dev/null || { not_ok "podman installed (run .ci/install-engines)"; finish; }
command -v htpasswd >/dev/null || { not_ok "htpasswd installed (apache2-utils)"; finish; }

htpasswd -Bbc "$T/htpasswd" alice alice-pw >/dev/null 2>&1
htpasswd -Bb "$T/htpasswd" bob bob-pw >/dev/null 2>&1
start_regcache "{\"upstreams\": [], \"auth\": {\"htpasswd\": \"$T/htpasswd\"},
 \"access\": [
   {\"repositories\": \"local/**\", \"users\": [\"alice\"], \"actions\": [\"pull\", \"push\", \"delete\"]},
   {\"repositories\": \"**\", \"users\": [\"anonymous\", \"authenticated\"], \"actions\": [\"pull\"]}
 ]}" 401
HOST=127.0.0.1:$REGCACHE_PORT

podman_() {
  podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}
python3 "$ENGINES_DIR/make-image.py" "$T/image" v1 "podman auth" >/dev/null || { not_ok "make the test image"; finish; }
if ! skopeo copy -q --insecure-policy "oci:$T/image:v1" \
  "containers-storage:[vfs@$T/podman-root+$T/podman-run]localhost/app:v1" >"$T/load.log" 2>&1; then
  not_ok "load the test image into podman's storage"
  diag <"$T/load.log"
  finish
fi
image=localhost/app:v1

# push AUTHFILE — podman push with the credentials in AUTHFILE; output in $T/push.log.
push() {
  podman_ push -q --tls-verify=false --authfile "$1" --digestfile "$T/pushed.digest" "$image" \
    "docker://$HOST/local/app:v1" >"$T/push.log" 2>&1
}
login() { # AUTHFILE USER PASSWORD
  podman_ login --tls-verify=false --authfile "$1" -u "$2" -p "$3" "$HOST" >"$T/login.log" 2>&1
}

echo '{}' >"$T/anonymous.json"
if push "$T/anonymous.json"; then
  not_ok "an anonymous podman push is refused"
else
  ok "an anonymous podman push is refused"
  check "regcache answered it 401" grep -qE 'POST /v2/local/app/blobs/uploads/ 401 ' "$T/regcache.log"
fi

if login "$T/wrong.json" alice wrong; then not_ok "podman login with a wrong password fails"
else ok "podman login with a wrong password fails"; fi

if login "$T/bob.json" bob bob-pw; then
  ok "podman login as bob (pull only)"
  if push "$T/bob.json"; then
    not_ok "bob's podman push is refused"
  else
    ok "bob's podman push is refused"
    check "… as denied" grep -qi 'denied' "$T/push.log"
  fi
else
  not_ok "podman login as bob"
  diag <"$T/login.log"
fi

if login "$T/alice.json" alice alice-pw; then
  ok "podman login as alice"
  if push "$T/alice.json"; then
    ok "alice's podman push into local/app"
    pushed=$(cat "$T/pushed.digest")
    check_eq "regcache serves the manifest under the digest podman pushed" "$pushed" \
      "$(curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
          -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
          "http://$HOST/v2/local/app/manifests/v1" | tr -d '\r' |
         awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')"
    podman_ rmi -af >/dev/null 2>&1
    if podman_ pull -q --tls-verify=false --authfile "$T/anonymous.json" "$HOST/local/app:v1" >"$T/pull.log" 2>&1; then
      ok "an anonymous podman pull of the pushed image (anonymous token)"
    else
      not_ok "an anonymous podman pull of the pushed image (anonymous token)"
      tail -15 "$T/pull.log" | diag
    fi
  else
    not_ok "alice's podman push into local/app"
    tail -15 "$T/push.log" | diag
    show_log regcache 15
  fi
else
  not_ok "podman login as alice"
  diag <"$T/login.log"
fi
check "passwords never reach the log" bash -c "! grep -qE 'alice-pw|bob-pw' '$T/regcache.log'"

check_regcache_stops
finish
