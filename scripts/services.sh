#!/usr/bin/env bash
# Make sure the services the test suite needs are running: PostgreSQL (with the test role and
# database) and Redis. Starts them when installed and stopped; installs them from Debian's packages
# when missing. Idempotent; safe to run on a machine where they already run.
set -euo pipefail

PG_URL="${SOCFLOW_TEST_POSTGRES_URL:-postgresql+psycopg://socflow:test-only-pw@127.0.0.1:5432/socflow_test}"
REDIS_URL="${SOCFLOW_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"

log() { printf '[services] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq >/dev/null; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# -- PostgreSQL ------------------------------------------------------------------------------------
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing postgresql"
  apt_install postgresql
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$ver" ]; then log "no PostgreSQL cluster found"; exit 1; fi
  log "starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { log "PostgreSQL is not accepting connections"; exit 1; }

# user, password and database from the URL
rest="${PG_URL#*://}"; creds="${rest%%@*}"; db="${rest##*/}"; db="${db%%\?*}"
pg_user="${creds%%:*}"; pg_pass="${creds#*:}"
psql_admin() {
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    su postgres -c "psql -v ON_ERROR_STOP=1 -qAt -d postgres" ; else psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qAt -d postgres; fi
}
echo "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${pg_user}') THEN
    CREATE ROLE \"${pg_user}\" LOGIN CREATEDB PASSWORD '${pg_pass}';
  ELSE
    ALTER ROLE \"${pg_user}\" LOGIN CREATEDB PASSWORD '${pg_pass}';
  END IF;
END \$\$;" | psql_admin
if [ "$(echo "SELECT 1 FROM pg_database WHERE datname = '${db}'" | psql_admin)" != "1" ]; then
  echo "CREATE DATABASE \"${db}\" OWNER \"${pg_user}\"" | psql_admin
fi
log "PostgreSQL ready: role ${pg_user}, database ${db}"

# -- Chromium (browser tests; Debian's package, driven by Playwright with executable_path) --------------
if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium"
  apt_install chromium
fi

# -- Redis -----------------------------------------------------------------------------------------
rhostport="${REDIS_URL#redis://}"; rhostport="${rhostport%%/*}"
rhost="${rhostport%%:*}"; rport="${rhostport##*:}"
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server"
  apt_install redis-server
fi
if [ "$(redis-cli -h "$rhost" -p "$rport" ping 2>/dev/null)" != "PONG" ]; then
  log "starting Redis on $rhost:$rport"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$rport" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 20); do [ "$(redis-cli -h "$rhost" -p "$rport" ping 2>/dev/null)" = "PONG" ] && break; sleep 0.5; done
fi
[ "$(redis-cli -h "$rhost" -p "$rport" ping 2>/dev/null)" = "PONG" ] || { log "Redis did not answer PING"; exit 1; }
log "Redis ready on $rhost:$rport"
