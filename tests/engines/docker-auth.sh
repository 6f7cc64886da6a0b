#!/usr/bin/env bash
# dockerd logs in to regcache and pushes (issue 16): regcache serves HTTPS with
# a test CA (Docker sends credentials only over TLS; the CA goes in
# /etc/docker/certs.d/HOST:PORT/ca.crt — a tmpfs of this sandbox), with users
# from an `htpasswd -B` file and the token flow.
#   - an anonymous `docker push` is refused (401: Docker asks for a login);
#   - a wrong password fails `docker login`;
#   - bob, who may only pull, logs in and his push is refused (403 DENIED);
#   - alice logs in and pushes local/app:v1; after `docker rmi` she pulls it
#     back with the same digest, and it runs.
# Usage: docker-auth.sh PATH/TO/regcache
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
engines_init "$@"
command -v dockerd >/dev/null || { not_ok "dockerd installed (run .ci/install-engines)"; finish; }
command -v htpasswd >/dev/null || { not_ok "htpasswd installed (apache2-utils)"; finish; }
DOCKER_CLI=/usr/bin/docker
[ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker)

# A test CA and a certificate for 127.0.0.1 signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=regcache-test-ca \
  -keyout "$T/ca.key" -out "$T/ca.crt" >"$T/openssl.log" 2>&1
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$T/server.key" -out "$T/server.csr" \
  >>"$T/openssl.log" 2>&1
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$T/san.ext"
if ! openssl x509 -req -in "$T/server.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial -days 2 \
  -extfile "$T/san.ext" -out "$T/server.crt" >>"$T/openssl.log" 2>&1; then
  not_ok "test certificates"
  diag <"$T/openssl.log"
  finish
fi

htpasswd -Bbc "$T/htpasswd" alice alice-pw >/dev/null 2>&1
htpasswd -Bb "$T/htpasswd" bob bob-pw >/dev/null 2>&1

REGCACHE_PORT=$(free_port)
printf '%s\n' "{\"upstreams\": [], \"tls_cert\": \"$T/server.crt\", \"tls_key\": \"$T/server.key\",
 \"auth\": {\"htpasswd\": \"$T/htpasswd\"},
 \"access\": [
   {\"repositories\": \"local/**\", \"users\": [\"alice\"], \"actions\": [\"pull\", \"push\", \"delete\"]},
   {\"repositories\": \"**\", \"users\": [\"authenticated\"], \"actions\": [\"pull\"]}
 ]}" >"$T/regcache.json"
spawn regcache "$REGCACHE" serve --listen "127.0.0.1:$REGCACHE_PORT" --data-dir "$T/regcache-data" \
  --config "$T/regcache.json"
v2_challenges() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/ca.crt" "https://127.0.0.1:$REGCACHE_PORT/v2/")" = 401 ]
}
if ! wait_until 20 v2_challenges; then
  not_ok "regcache answers https://127.0.0.1:$REGCACHE_PORT/v2/ with 401"
  show_log regcache
  finish
fi
ok "regcache serves HTTPS with client auth on 127.0.0.1:$REGCACHE_PORT"
HOST=127.0.0.1:$REGCACHE_PORT
# /etc/docker is this sandbox's own tmpfs (engines_init): nothing of the host's.
mkdir -p "/etc/docker/certs.d/$HOST"
cp "$T/ca.crt" "/etc/docker/certs.d/$HOST/ca.crt"

echo '{}' >"$T/daemon.json"
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

# The test image, loaded into dockerd straight from its OCI layout.
python3 "$ENGINES_DIR/make-image.py" "$T/image" v1 "docker auth" >/dev/null || { not_ok "make the test image"; finish; }
if ! skopeo copy -q --insecure-policy --dest-daemon-host "unix://$T/docker.sock" "oci:$T/image:v1" \
  "docker-daemon:$HOST/local/app:v1" >"$T/load.log" 2>&1; then
  not_ok "load the test image into dockerd"
  diag <"$T/load.log"
  finish
fi
ok "the test image is loaded into dockerd as $HOST/local/app:v1"

# push — docker push of the image; its output in $T/push.log.
push() { docker_ push "$HOST/local/app:v1" >"$T/push.log" 2>&1; }

if push; then
  not_ok "an anonymous docker push is refused"
else
  ok "an anonymous docker push is refused"
  cp "$T/push.log" "$T/push-anonymous.log"
  check "regcache answered it 401 with the token challenge" grep -qE 'POST /v2/local/app/blobs/uploads/ 401 ' "$T/regcache.log"
fi

if echo wrong | docker_ login -u alice --password-stdin "$HOST" >"$T/login.log" 2>&1; then
  not_ok "docker login with a wrong password fails"
else
  ok "docker login with a wrong password fails"
fi

if echo bob-pw | docker_ login -u bob --password-stdin "$HOST" >"$T/login.log" 2>&1; then
  ok "docker login as bob (pull only)"
  if push; then
    not_ok "bob's docker push is refused"
  else
    ok "bob's docker push is refused"
    check "… as denied" grep -qi 'denied' "$T/push.log"
  fi
else
  not_ok "docker login as bob"
  diag <"$T/login.log"
fi

if echo alice-pw | docker_ login -u alice --password-stdin "$HOST" >"$T/login.log" 2>&1; then
  ok "docker login as alice"
else
  not_ok "docker login as alice"
  diag <"$T/login.log"
  show_log regcache 20
  finish
fi
if push; then
  ok "alice's docker push of local/app:v1 over TLS"
else
  not_ok "alice's docker push of local/app:v1 over TLS"
  tail -15 "$T/push.log" | diag
  show_log regcache 20
fi
check "regcache stored the manifest (PUT … 201)" grep -qE 'PUT /v2/local/app/manifests/v1 201 ' "$T/regcache.log"
check "dockerd used the token endpoint" grep -q 'GET /auth/token?' "$T/regcache.log"
pushed_digest=$(grep -oE 'digest: sha256:[0-9a-f]{64}' "$T/push.log" | head -1 | cut -d' ' -f2)
docker_ rmi "$HOST/local/app:v1" >/dev/null 2>&1
if docker_ pull -q "$HOST/local/app:v1" >"$T/pull.log" 2>&1; then
  ok "alice pulls local/app:v1 back"
  check_eq "… with the pushed digest" "$HOST/local/app@$pushed_digest" \
    "$(docker_ image inspect --format '{{index .RepoDigests 0}}' "$HOST/local/app:v1" 2>&1)"
  check_eq "… and it runs" "docker auth" "$(docker_ run --rm --network none "$HOST/local/app:v1" 2>&1)"
else
  not_ok "alice pulls local/app:v1 back"
  diag <"$T/pull.log"
fi
check "passwords never reach the log" bash -c "! grep -qE 'alice-pw|bob-pw' '$T/regcache.log'"

check "dockerd is still running" alive dockerd
check_regcache_stops
finish
