#!/usr/bin/env bash
# Installs the Debian packages the project runs besides Python, in one apt transaction:
#   chromium (+ fonts-liberation)  the browser tests drive it by path (no `playwright install`)
#   wrk                            bench/serve_load.py's HTTP load generator
#   prometheus                     tests/serving/test_prometheus.py scrapes /metrics with it;
#                                  its promtool unit-tests deploy/prometheus/alerts.yml
#   postgresql                     `make mlflow-server` and its tests run their own cluster
#   podman, runc, mmdebstrap       build and run the serving image without a Docker engine
#                                  (scripts/podman_image.sh, tests/serving/test_container.py)
#   catatonit                      podman's pause process: `podman kube play` needs it
#   nginx                          the load balancer in front of replicas (deploy/nginx/)
# Idempotent and non-interactive: installs only what is missing. Needs root (or sudo) and apt.
# On failure it exits non-zero with one last line naming the packages and the command.
#
#     scripts/install_system_packages.sh
set -euo pipefail

have_pg() { command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; }
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
have_pg || missing+=(postgresql)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
{ command -v catatonit || [ -x /usr/libexec/podman/catatonit ]; } >/dev/null 2>&1 || missing+=(catatonit)
{ command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null 2>&1 || missing+=(nginx)
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages already installed (chromium, wrk, prometheus, postgresql, podman, runc, mmdebstrap, catatonit, nginx)"
    exit 0
fi

fail() {
    echo "install_system_packages.sh: $1; missing: ${missing[*]}; install them with: sudo apt-get install ${missing[*]} (or set MNIST_SKIP_APT=1 to skip this step)" >&2
    exit 1
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and no sudo"
    SUDO="sudo"
fi
command -v apt-get >/dev/null 2>&1 || fail "apt-get not found"
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt (unattended upgrades, a second setup) rather than fail on its lock.
APT=(-o DPkg::Lock::Timeout=300 -qq)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get "${APT[@]}" update && $SUDO apt-get "${APT[@]}" install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    grep -E '^(E|W):' "$log" | head -n 5 >&2 || tail -n 5 "$log" >&2
    fail "apt-get failed"
fi
echo "installed: ${missing[*]}"
