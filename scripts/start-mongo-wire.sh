#!/usr/bin/env bash
# Starts a local MongoDB wire-protocol server for the apscheduler-store-mongodb tests:
# SecantusDB (PyPI, pinned), in memory, on 127.0.0.1:27117. Idempotent: creates the
# virtualenv only when missing, starts the server only when the port does not answer,
# then waits until it answers MongoDB's `ping`. Exits non-zero, saying why, otherwise.
#
# Then run the tests with:
#   APS_TEST_MONGODB_URL='mongodb://127.0.0.1:27117/?directConnection=true' \
#       cargo test -p apscheduler-store-mongodb
#
# Settings (environment): APS_MONGO_WIRE_HOST (127.0.0.1), APS_MONGO_WIRE_PORT (27117),
# APS_MONGO_WIRE_VENV ($HOME/.cache/aps-secantus), APS_MONGO_WIRE_TIMEOUT (seconds to
# wait for the server, 30), APS_MONGO_WIRE_TXN_LIFETIME (seconds after which the server
# aborts a transaction left open by a killed client, 5; MongoDB's default is 60),
# APS_MONGO_WIRE_OPLOG_RETENTION (seconds of change history the server keeps, 300; its
# default is 3600: in a server up for an hour, the cluster tests ran slower and failed,
# in a fresh one they passed).
set -euo pipefail

HOST=${APS_MONGO_WIRE_HOST:-127.0.0.1}
PORT=${APS_MONGO_WIRE_PORT:-27117}
VENV=${APS_MONGO_WIRE_VENV:-$HOME/.cache/aps-secantus}
TIMEOUT=${APS_MONGO_WIRE_TIMEOUT:-30}
OPLOG_RETENTION=${APS_MONGO_WIRE_OPLOG_RETENTION:-300}
PACKAGE=SecantusDB
VERSION=0.7.0b3
LOG="$VENV/secantusd-$PORT.log"
PIDFILE="$VENV/secantusd-$PORT.pid"
URL="mongodb://$HOST:$PORT/?directConnection=true"

die() {
    echo "start-mongo-wire: error: $*" >&2
    exit 1
}

say() {
    echo "start-mongo-wire: $*"
}

# 1. The virtualenv with the pinned server (and pymongo, which it depends on).
installed_version() {
    "$VENV/bin/python" - "$PACKAGE" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
print(version(sys.argv[1]))
EOF
}

if [[ ! -x "$VENV/bin/python" ]]; then
    command -v python3 >/dev/null || die "python3 is not installed; it is needed to run $PACKAGE"
    say "creating the virtualenv $VENV"
    python3 -m venv "$VENV" || die "cannot create a virtualenv at $VENV (is python3-venv installed?)"
fi
if [[ "$(installed_version || true)" != "$VERSION" || ! -x "$VENV/bin/secantusd-py" ]]; then
    say "installing $PACKAGE==$VERSION into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE==$VERSION" \
        || die "cannot install $PACKAGE==$VERSION from PyPI into $VENV"
fi

# 2. Does a MongoDB server answer on the port?
answers() {
    "$VENV/bin/python" - "$HOST" "$PORT" <<'EOF' >/dev/null 2>&1
import sys
import pymongo

client = pymongo.MongoClient(
    host=sys.argv[1],
    port=int(sys.argv[2]),
    directConnection=True,
    serverSelectionTimeoutMS=500,
    connectTimeoutMS=500,
)
client.admin.command("ping")
EOF
}

if answers; then
    say "a MongoDB server already answers on $HOST:$PORT"
    say "APS_TEST_MONGODB_URL=$URL"
    exit 0
fi

# 3. Start it, detached from this shell so that it outlives the script (a CI step).
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}
if port_open; then
    die "port $PORT on $HOST is taken by something that does not answer MongoDB's ping; stop it or set APS_MONGO_WIRE_PORT"
fi

say "starting $PACKAGE $VERSION on $HOST:$PORT (in memory; log: $LOG)"
# A neutral working directory: the server reads ./secantusd.toml when there is one.
# scripts/secantusd.py runs it with a 5 s limit on an abandoned transaction (see there).
LAUNCHER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secantusd.py"
cd "$VENV"
nohup setsid "$VENV/bin/python" "$LAUNCHER" \
    --host "$HOST" --port "$PORT" \
    --storage-path :memory: --log-level WARNING \
    --oplog-retention-seconds "$OPLOG_RETENTION" \
    >"$LOG" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$PIDFILE"

# 4. Wait until it answers.
deadline=$((SECONDS + TIMEOUT))
until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 20 "$LOG" >&2 || true
        die "the server exited during start-up (log above, full log: $LOG)"
    fi
    if ((SECONDS >= deadline)); then
        tail -n 20 "$LOG" >&2 || true
        die "the server (pid $pid) did not answer on $HOST:$PORT within ${TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.2
done
say "ready (pid $pid; stop it with: kill $pid)"
say "APS_TEST_MONGODB_URL=$URL"
