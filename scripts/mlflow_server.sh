#!/usr/bin/env bash
# A shared MLflow tracking server: PostgreSQL backend, artifacts served by the server
# (clients upload over HTTP, so they need no access to the artifact folder). Loopback only
# unless MLFLOW_HOST says otherwise; put a TLS proxy in front before opening it up.
#
#     make mlflow-server                          # own PostgreSQL cluster under .mlflow-server/
#     MLFLOW_BACKEND_STORE_URI=postgresql://mlflow:PW@db.internal:5432/mlflow make mlflow-server
#     MLFLOW_AUTH=1 MLFLOW_AUTH_ADMIN_PASSWORD=... make mlflow-server    # MLflow's basic auth
#
# With MLFLOW_AUTH=1 every request must name a user (MLflow's basic-auth app): any user may
# read, only users granted more may write, so who may move the champion is a grant
# (python -m pipeline.registry users; docs/registry.md). Its files, in MLFLOW_SERVER_DIR/auth
# (mode 700): basic_auth.ini (no password in it), basic_auth.db (users, grants) and
# flask_secret_key (made once unless MLFLOW_FLASK_SERVER_SECRET_KEY is set). The first start
# creates the admin, MLFLOW_AUTH_ADMIN_USERNAME (admin), with MLFLOW_AUTH_ADMIN_PASSWORD
# (12 characters or more), which MLflow reads from the environment, never from a file.
#
# Then point the pipeline at it:  export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
#
# Environment (defaults): MLFLOW_SERVER_DIR (.mlflow-server: pgdata/, artifacts/, logs),
# MLFLOW_HOST (127.0.0.1), MLFLOW_PORT (5000), MLFLOW_WORKERS (2), PGPORT (5433, the
# local cluster's port), MLFLOW_BACKEND_STORE_URI (unset: start the local cluster),
# MLFLOW_AUTH (unset: no authentication).
set -euo pipefail

dir=$(realpath -m "${MLFLOW_SERVER_DIR:-.mlflow-server}")
host=${MLFLOW_HOST:-127.0.0.1}
port=${MLFLOW_PORT:-5000}
mkdir -p "$dir/artifacts"
auth=()
if [ -n "${MLFLOW_AUTH:-}" ]; then
    if [ ! -s "$dir/auth/basic_auth.db" ] && [ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]; then
        echo "mlflow_server.sh: MLFLOW_AUTH=1 needs MLFLOW_AUTH_ADMIN_PASSWORD (12 characters or more) to create the admin on the first start" >&2
        exit 1
    fi
    mkdir -p "$dir/auth" && chmod 700 "$dir/auth"
    # Made here, so that MLflow's sqlite file (users, password hashes) is the owner's alone.
    [ -e "$dir/auth/basic_auth.db" ] || (umask 077 && : >"$dir/auth/basic_auth.db")
    # default_permission READ: services and people read everything; only a user granted
    # EDIT or MANAGE on a resource writes it (and whoever creates one manages it).
    (umask 077 && printf '%s\n' "[mlflow]" "default_permission = READ" \
        "database_uri = sqlite:///$dir/auth/basic_auth.db" \
        "admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}" \
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth" \
        >"$dir/auth/basic_auth.ini")
    if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then
        # Every worker must sign the UI's forms with one key, and a restart keep it.
        [ -s "$dir/auth/flask_secret_key" ] || (umask 077 &&
            python -c 'import secrets; print(secrets.token_hex(32))' >"$dir/auth/flask_secret_key")
        MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$dir/auth/flask_secret_key")
        export MLFLOW_FLASK_SERVER_SECRET_KEY
    fi
    export MLFLOW_AUTH_CONFIG_PATH="$dir/auth/basic_auth.ini"
    auth=(--app-name basic-auth)
fi
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

# The backend's password (a team database's URI) is never printed.
shown=$(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$uri")
echo "mlflow server: backend $shown, artifacts $dir/artifacts, http://$host:$port${auth[0]:+ (basic auth)}"
# Not exec: the EXIT trap stops the local PostgreSQL when the server ends (Ctrl-C, TERM).
mlflow server --backend-store-uri "$uri" --artifacts-destination "$dir/artifacts" \
    --host "$host" --port "$port" --workers "${MLFLOW_WORKERS:-2}" "${auth[@]}" &
server=$!
trap 'kill -TERM $server 2>/dev/null' INT TERM
wait $server || wait $server
