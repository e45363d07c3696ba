#!/usr/bin/env bash
# Replicas of the serving image behind nginx on one host, and their rolling update
# (docs/replicas.md). Host networking: replica N listens on 127.0.0.1:PORT_N.
#
#   deploy/nginx/replicas.sh up TAG PORT...   # a replica per port, then replicas.conf lists them
#   deploy/nginx/replicas.sh roll TAG         # replace every replica in replicas.conf with TAG
#
# `roll` replaces one replica at a time and never reloads nginx (a reload closes busy
# kept-alive client connections, so clients would see dropped requests); nginx finds the
# gap passively (nginx.conf), so the others serve and no request is lost
# (tests/deploy/test_rolling_update.py):
#   1. `podman stop --time GRACE` (SIGTERM: the service finishes its requests and flushes
#      its inference log; SIGKILL only past the grace period), remove the container. nginx
#      meets a refused or reset connection, sends that request to another replica and
#      leaves this one out for fail_timeout;
#   2. start TAG on the same port and wait until /readyz answers 200 (the model loaded
#      and checked);
#   3. wait fail_timeout (+1 s): then every nginx worker may use it again, so the next
#      replica is not stopped while nginx still counts this one as failed (with every
#      replica counted failed nginx answers 502). Then the next replica.
# If a new replica never gets ready, roll stops there and exits 1 (nginx keeps trying it
# once per fail_timeout, the others serve): fix the image and roll again, or roll back to
# the old tag. For planned maintenance an operator may instead mark a server `down` in
# replicas.conf and `nginx -s reload` (docs/replicas.md says what that costs clients).
#
# Environment (defaults):
#   MNIST_NGINX_DIR        nginx's prefix: nginx.conf (this folder's, copied) and replicas.conf
#                          (this script writes it); nginx runs as
#                          nginx -p DIR -c DIR/nginx.conf
#   MNIST_NGINX_PID        its master's pid file (MNIST_NGINX_DIR/nginx.pid, as nginx.conf says)
#   MNIST_REPLICA_ENV      a podman --env-file every replica gets: MNIST_FEEDBACK_DB (the
#                          shared PostgreSQL), MNIST_TRUSTED_PROXIES (nginx's address), ...
#   MNIST_REPLICA_LOG_DIR  host folder mounted as each replica's inference log folder
#                          (/app/monitoring/inference); owned by the image's user, uid 10001
#   MNIST_REPLICA_PREFIX   container names: PREFIX-PORT (mnist-replica)
#   MNIST_STOP_GRACE_S     SIGTERM -> SIGKILL grace of podman stop (30)
#   MNIST_READY_TIMEOUT_S  how long a new replica may take to answer /readyz (180)
#   MNIST_RELOAD_TIMEOUT_S how long old nginx workers may take to finish after `up`'s reload (120)
#   MNIST_FAIL_TIMEOUT_S   each server's fail_timeout in replicas.conf, as `up` writes it (3)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

dir=${MNIST_NGINX_DIR:?set MNIST_NGINX_DIR to the folder nginx runs from (docs/replicas.md)}
conf="$dir/replicas.conf"
pidfile=${MNIST_NGINX_PID:-$dir/nginx.pid}
prefix=${MNIST_REPLICA_PREFIX:-mnist-replica}
grace=${MNIST_STOP_GRACE_S:-30}
ready_s=${MNIST_READY_TIMEOUT_S:-180}
reload_s=${MNIST_RELOAD_TIMEOUT_S:-120}
fail_s=${MNIST_FAIL_TIMEOUT_S:-3}
# One server line: one refused or failed connection leaves it out for fail_timeout.
server_line() { echo "server 127.0.0.1:$1 max_fails=1 fail_timeout=${fail_s}s;"; }

say() { echo "replicas.sh: $*" >&2; }
die() { say "$*"; exit 1; }
pm() { bash "$root/scripts/podman_image.sh" podman "$@"; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

start() {  # start TAG PORT: a replica of TAG on PORT, once it answers /readyz
    local tag=$1 port=$2 name="$prefix-$2" env_args=()
    local logs=${MNIST_REPLICA_LOG_DIR:?set MNIST_REPLICA_LOG_DIR to the shared inference log folder}
    [ -d "$logs" ] || die "$logs is not a folder (the shared inference log)"
    if [ -n "${MNIST_REPLICA_ENV:-}" ]; then env_args=(--env-file "$MNIST_REPLICA_ENV"); fi
    # Loopback only: clients come through nginx (which is what MNIST_TRUSTED_PROXIES trusts).
    BENTOML_PORT=$port bash "$root/scripts/podman_image.sh" run "$tag" -d --name "$name" \
        -e BENTOML_HOST=127.0.0.1 "${env_args[@]}" -v "$logs:/app/monitoring/inference" >/dev/null
    local deadline=$((SECONDS + ready_s))
    until curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"; do
        if [ "$(pm inspect --format '{{.State.Running}}' "$name")" != true ]; then
            pm logs --tail 30 "$name" >&2 || true
            die "$name exited before it was ready"
        fi
        [ $SECONDS -lt $deadline ] || die "$name not ready after $ready_s s"
        sleep 0.5
    done
    say "$name ready ($tag, container $(pm inspect --format '{{.Id}}' "$name" | cut -c1-12))"
}

stop() {  # stop PORT: SIGTERM, the service drains, then the container is removed
    local name="$prefix-$1"
    pm stop --time "$grace" "$name" >/dev/null
    local code
    code=$(pm inspect --format '{{.State.ExitCode}}' "$name")
    [ "$code" = 0 ] || say "$name exited with $code (not a clean drain: see podman logs)"
    pm rm -v "$name" >/dev/null
}

ports() { sed -nE 's/^server 127\.0\.0\.1:([0-9]+) .*/\1/p' "$conf"; }

reload() {  # reload nginx and wait until the workers of the old configuration are gone
    nginx -p "$dir" -c "$dir/nginx.conf" -t -q || die "nginx -t failed: $conf not applied"
    local master old pid deadline=$((SECONDS + reload_s))
    master=$(cat "$pidfile" 2>/dev/null) || die "no $pidfile: is nginx running from $dir?"
    old=$(pgrep -P "$master" || true)
    nginx -p "$dir" -c "$dir/nginx.conf" -s reload
    for pid in $old; do
        # a worker that exited is gone, or a zombie until the master reaps it
        while [[ "$(ps -o stat= -p "$pid" || true)" =~ ^[^Z] ]]; do
            [ $SECONDS -lt $deadline ] || die "nginx worker $pid still busy after $reload_s s"
            sleep 0.1
        done
    done
}

up() {  # up TAG PORT...: start the replicas, list them in replicas.conf, reload a running nginx
    local tag=$1 port
    shift
    [ $# -ge 1 ] || die "up: name at least one port"
    for port in "$@"; do start "$tag" "$port"; done
    {
        echo "# Written by deploy/nginx/replicas.sh up: one line a replica (add \`down\` and reload to take one out)."
        for port in "$@"; do server_line "$port"; done
    } >"$conf"
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then reload; fi
}

roll() {  # roll TAG: every replica in replicas.conf replaced by TAG, one at a time
    local tag=$1 port started wait_s
    local all
    all=$(ports)
    [ "$(wc -w <<<"$all")" -ge 2 ] || die "roll needs two replicas or more: one would leave none serving"
    pm image exists "$tag" || die "no image $tag"
    started=$(now)
    for port in $all; do
        stop "$port"
        say "127.0.0.1:$port stopped ($(since "$started") s)"
        start "$tag" "$port"
        # the conf's fail_timeout, not this run's setting: that is what nginx goes by
        wait_s=$(sed -nE "s/^server 127\.0\.0\.1:$port .*fail_timeout=([0-9]+)s.*/\1/p" "$conf")
        sleep $((${wait_s:-$fail_s} + 1))
        say "127.0.0.1:$port back in nginx ($(since "$started") s)"
    done
    echo "rolled $(wc -w <<<"$all") replicas to $tag in $(since "$started") s"
}

case ${1:-} in
    up) shift; up "$@" ;;
    roll) shift; [ $# -eq 1 ] || die "usage: roll TAG"; roll "$1" ;;
    *) echo "usage: deploy/nginx/replicas.sh up TAG PORT... | roll TAG" >&2; exit 2 ;;
esac
