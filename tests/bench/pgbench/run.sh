#!/usr/bin/env bash
# The database's own ceiling for bookings: pgbench running the booking's write statement alone
# (booking.sql) on a fresh, migrated database with the demo's directory, for comparison with the
# `bench` figures of the same session.
#
#   tests/bench/pgbench/run.sh [seconds] [clients]      # default 20 s, 8 clients
#
# Needs a built `telehealth` ($SERVER_BIN, else target/release, else target/debug) and
# TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/../../.."
SECONDS_TO_RUN="${1:-20}"
CLIENTS="${2:-8}"
ADMIN="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BIN="${SERVER_BIN:-target/release/telehealth}"
[ -x "$BIN" ] || BIN=target/debug/telehealth
PGBENCH="$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -1)"
[ -x "$PGBENCH" ] || { echo "pgbench not found (Debian package postgresql-contrib or postgresql)" >&2; exit 1; }
NAME="th_bench_pgbench_$$"
URL="${ADMIN%/*}/$NAME"
psql "$ADMIN" -qc "CREATE DATABASE $NAME"
trap 'psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
DATA="$(mktemp -d)"
RUST_LOG=warn "$BIN" --data-dir "$DATA" --database-url "$URL" demo --care-centres 2 --patients-per-centre 1 --seed-only >/dev/null
rm -rf "$DATA"
psql "$URL" -qc "CREATE SEQUENCE pgbench_booking"
"$PGBENCH" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_TO_RUN" -f tests/bench/pgbench/booking.sql "$URL" | grep -E "^(tps|latency average|number of (transactions|failed))"
