#!/usr/bin/env bash
# Throwaway services for the test suite. Sourced by scripts/test.sh (and usable by hand:
#   source scripts/services.sh && start_test_services && ... && stop_test_services).
#
# PostgreSQL: when Debian's binaries exist under /usr/lib/postgresql/*/bin, initdb a cluster in a
# temp dir, start it on a free 127.0.0.1 port (unix socket inside the temp dir) and export
#   WARD_TEST_PG_URL   postgresql+psycopg://ward@127.0.0.1:PORT/ward_test
#   WARD_TEST_PG_CTL   path to pg_ctl           (the outage tests stop and restart the server)
#   WARD_TEST_PG_DATA  the cluster's data dir
#   WARD_TEST_PG_RUNAS user to run pg_ctl as ("postgres" when we are root, empty otherwise)
# With CI=true and no PostgreSQL installed this fails loudly; locally the postgres-marked tests
# then fail with a clear message unless WARD_TEST_ALLOW_NO_PG=1.

_ward_pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

_ward_as_pg() {  # run a command as the cluster owner
  if [ -n "${WARD_TEST_PG_RUNAS:-}" ]; then runuser -u "$WARD_TEST_PG_RUNAS" -- "$@"; else "$@"; fi
}

_ward_free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

start_test_services() {
  local bin
  if ! bin=$(_ward_pg_bin); then
    if [ "${CI:-}" = "true" ]; then
      echo "services.sh: PostgreSQL binaries not found under /usr/lib/postgresql/*/bin (CI=true): install postgresql" >&2
      return 1
    fi
    echo "services.sh: PostgreSQL not installed; postgres-marked tests will fail (set WARD_TEST_ALLOW_NO_PG=1 to skip them)" >&2
    return 0
  fi
  local tmp port
  tmp=$(mktemp -d /tmp/ward-pg.XXXXXX)
  port=$(_ward_free_port)
  export WARD_TEST_PG_RUNAS=""
  if [ "$(id -u)" = "0" ]; then
    export WARD_TEST_PG_RUNAS=postgres
    chown postgres "$tmp"
  fi
  export WARD_TEST_PG_TMP="$tmp"
  export WARD_TEST_PG_DATA="$tmp/data"
  export WARD_TEST_PG_CTL="$bin/pg_ctl"
  _ward_as_pg "$bin/initdb" -D "$WARD_TEST_PG_DATA" -U ward --auth=trust -E UTF8 --no-locale >"$tmp/initdb.log" 2>&1 || {
    echo "services.sh: initdb failed:" >&2; cat "$tmp/initdb.log" >&2; return 1; }
  # Options live in the config so a plain `pg_ctl start -D DATA` (outage tests) restarts it as-is.
  _ward_as_pg sh -c "cat >> '$WARD_TEST_PG_DATA/postgresql.conf'" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$tmp'
fsync = on
timezone = 'UTC'
max_connections = 50
EOF
  _ward_as_pg "$bin/pg_ctl" -D "$WARD_TEST_PG_DATA" -l "$tmp/server.log" -w -t 30 start >/dev/null || {
    echo "services.sh: pg_ctl start failed:" >&2; cat "$tmp/server.log" >&2; return 1; }
  _ward_as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U ward ward_test || return 1
  export WARD_TEST_PG_URL="postgresql+psycopg://ward@127.0.0.1:$port/ward_test"
  echo "services.sh: PostgreSQL $(basename "$(dirname "$bin")") at $WARD_TEST_PG_URL" >&2
}

stop_test_services() {
  if [ -n "${WARD_TEST_PG_DATA:-}" ] && [ -d "${WARD_TEST_PG_DATA}" ]; then
    _ward_as_pg "$WARD_TEST_PG_CTL" -D "$WARD_TEST_PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "${WARD_TEST_PG_TMP:-}" ] && [ -d "${WARD_TEST_PG_TMP}" ]; then
    rm -rf "$WARD_TEST_PG_TMP"
  fi
  unset WARD_TEST_PG_URL WARD_TEST_PG_DATA WARD_TEST_PG_CTL WARD_TEST_PG_TMP
}
