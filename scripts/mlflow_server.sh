#!/usr/bin/env bash
# A shared MLflow tracking server: PostgreSQL backend, artifacts served by the server
# (clients upload over HTTP, so they need no access to the artifact folder). Loopback only
# unless MLFLOW_HOST says otherwise; put a TLS/auth proxy in front before opening it up.
#
#     make mlflow-server                          # own PostgreSQL cluster under .mlflow-server/
#     MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:PW@db.internal:5432/mlflow make mlflow-server
#
# Then point the pipeline at it:  export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
#
# Environment (defaults): MLFLOW_SERVER_DIR (.mlflow-server: pgdata/, artifacts/, logs),
# MLFLOW_HOST (127.0.0.1), MLFLOW_PORT (5000), MLFLOW_WORKERS (2), PGPORT (5433, the
# local cluster's port), MLFLOW_BACKEND_STORE_URI (unset: start the local cluster).
set -euo pipefail

dir=$(realpath -m "${MLFLOW_SERVER_DIR:-.mlflow-server}")
host=${MLFLOW_HOST:-127.0.0.1}
port=${MLFLOW_PORT:-5000}
mkdir -p "$dir/artifacts"
uri=${MLFLOW_BACKEND_STORE_URI:-}

if [ -z "$uri" ]; then
    pg_ctl=$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -1 || true)
    [ -x "$pg_ctl" ] || { echo "mlflow_server.sh: PostgreSQL not found; run scripts/install_system_packages.sh" >&2; exit 1; }
    bin=$(dirname "$(readlink -f "$pg_ctl")")
    pgport=${PGPORT:-5433}
    pgdata="$dir/pgdata"
    # PostgreSQL refuses to run as root: as root, run the server as the postgres user.
    as_pg=()
    if [ "$(id -u)" -eq 0 ]; then as_pg=(runuser -u postgres --); fi
    if [ ! -s "$pgdata/PG_VERSION" ]; then
        mkdir -p "$pgdata"
        if [ "$(id -u)" -eq 0 ]; then chown postgres: "$pgdata"; fi
        chmod 700 "$pgdata"
        # trust on a loopback-only, socket-in-pgdata cluster: only this machine can reach it.
        "${as_pg[@]}" "$bin/initdb" -D "$pgdata" -U mlflow --auth=trust -E UTF8 >"$dir/initdb.log"
    fi
    "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdata" -l "$pgdata/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $pgport -k $pgdata" start >/dev/null
    trap '"${as_pg[@]}" "$bin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null' EXIT
    "$bin/psql" -h 127.0.0.1 -p "$pgport" -U mlflow -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | grep -q 1 ||
        "$bin/createdb" -h 127.0.0.1 -p "$pgport" -U mlflow mlflow
    uri="postgresql://mlflow@127.0.0.1:$pgport/mlflow"
fi

echo "mlflow server: backend ${uri%%@*}@..., artifacts $dir/artifacts, http://$host:$port"
# Not exec: the EXIT trap stops the local PostgreSQL when the server ends (Ctrl-C, TERM).
mlflow server --backend-store-uri "$uri" --artifacts-destination "$dir/artifacts" \
    --host "$host" --port "$port" --workers "${MLFLOW_WORKERS:-2}" &
server=$!
trap 'kill -TERM $server 2>/dev/null' INT TERM
wait $server || wait $server
