#!/usr/bin/env bash
# `make test`: the whole suite on SQLite, then the database-facing suites on PostgreSQL and
# MariaDB. Starts every service the tests need that is not running yet.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

bash scripts/services/databases.sh
for svc in scripts/services/*.sh; do
  [ "$(basename "$svc")" = databases.sh ] || bash "$svc" || echo "test: $svc could not start its service (tests that need it say so)"
done

run() {  # label, env, pytest args...
  local label=$1 db=$2; shift 2
  echo "=== tests on $label ==="
  STRATO_TEST_DB=$db $PY -m pytest "$@"
  local rc=$?
  [ $rc -eq 5 ] && { echo "test: no tests collected on $label" >&2; return 1; }
  return $rc
}

status=0
run SQLite sqlite -q "$@" || status=1

# The PostgreSQL and MariaDB reruns share nothing (each test has a database of its own on its
# own server, Redis queues are per test), so they run side by side; each one's output is
# printed whole when it ends.
logs=$(mktemp -d)
run PostgreSQL postgresql -q tests/core tests/api -m "not slow" "$@" > "$logs/postgresql" 2>&1 & pg=$!
run MariaDB mariadb -q tests/core tests/api -m "not slow" "$@" > "$logs/mariadb" 2>&1 & maria=$!
wait $pg || status=1
cat "$logs/postgresql"
wait $maria || status=1
cat "$logs/mariadb"
rm -rf "$logs"
exit $status
