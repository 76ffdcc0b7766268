#!/usr/bin/env bash
# Makes sure PostgreSQL, MariaDB and Redis answer on 127.0.0.1, starting any that is down
# (the commands are the ones this kind of machine uses; none needs systemd).
set -uo pipefail

wait_for() {  # name, command
  for _ in $(seq 1 60); do eval "$2" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "services: $1 did not come up" >&2; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  wait_for PostgreSQL "pg_isready -h 127.0.0.1 -p 5432"
fi
if ! mariadb-admin -h 127.0.0.1 -u root status >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  wait_for MariaDB "mariadb-admin -h 127.0.0.1 -u root status"
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  wait_for Redis "redis-cli -h 127.0.0.1 ping"
fi
exit 0
