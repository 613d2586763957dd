#!/usr/bin/env bash
# Start the local PostgreSQL and Redis the tests use, if they are installed and not running.
# Prints what it did; never fails the build when a service is absent (the tests say so themselves).
set -u
if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -h 127.0.0.1 -p 5432 || echo "services: PostgreSQL is not reachable"
else
  echo "services: PostgreSQL is not installed"
fi
if command -v redis-cli >/dev/null 2>&1; then
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    sleep 1
  fi
  redis-cli -h 127.0.0.1 ping || echo "services: Redis is not reachable"
fi
