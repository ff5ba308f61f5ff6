#!/usr/bin/env bash
# The whole test suite, from a fresh machine: checks for what the tests need, starts or installs
# it, then runs formatting, lints, unit and integration tests on SQLite and PostgreSQL.
#
#   ./tests/run.sh            # everything
#   TEST_POSTGRES_URL=postgres://user:pw@host:5432/postgres ./tests/run.sh   # another PostgreSQL
#
# It never skips a suite: if PostgreSQL cannot be made reachable, it stops with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo "$@"; else return 1; fi; }

# Debian's apt sometimes fails half-way on these machines; a retry succeeds.
apt_install() {
  for attempt in 1 2 3; do
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; then return 0; fi
    echo "apt-get install failed (attempt $attempt); updating and retrying" >&2
    as_root apt-get update -q || true
    sleep 2
  done
  return 1
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# --- tools the tests call ------------------------------------------------------------------
# Crates with C code need a compiler; the CLI tests stop the server with `kill` (procps); the API
# property test needs Python with venv.
missing=()
# `command -v kill` finds the shell builtin; the tests run the program.
[ -x /bin/kill ] || [ -x /usr/bin/kill ] || missing+=(procps)
have cc || missing+=(gcc)
have python3 || missing+=(python3)
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  have apt-get || { echo "missing ${missing[*]} and no apt-get to install them" >&2; exit 1; }
  as_root apt-get update -q || true
  apt_install "${missing[@]}"
fi

# --- Rust -----------------------------------------------------------------------------------
if ! have cargo; then
  echo "cargo is not installed: install Rust from https://rustup.rs (rustc 1.94 or newer)" >&2
  exit 1
fi

# --- PostgreSQL -----------------------------------------------------------------------------
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_host_port() {
  local rest="${TEST_POSTGRES_URL#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"
  PG_HOST="${rest%%:*}"; PG_PORT="${rest##*:}"; [ "$PG_PORT" = "$rest" ] && PG_PORT=5432
  return 0
}
pg_host_port
start_local_postgres() {
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
  [ -n "$version" ] || return 1
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do port_open "$PG_HOST" "$PG_PORT" && return 0; sleep 1; done
  return 1
}
if ! port_open "$PG_HOST" "$PG_PORT"; then
  if [ "$PG_HOST" != 127.0.0.1 ] && [ "$PG_HOST" != localhost ]; then
    echo "PostgreSQL at $PG_HOST:$PG_PORT is not reachable" >&2; exit 1
  fi
  say "PostgreSQL is not running on $PG_HOST:$PG_PORT: starting it"
  if ! start_local_postgres; then
    say "PostgreSQL is not installed: installing it (Debian package postgresql)"
    have apt-get || { echo "no apt-get: install PostgreSQL 13+ yourself and set TEST_POSTGRES_URL" >&2; exit 1; }
    as_root apt-get update -q || true
    apt_install postgresql
    start_local_postgres || { echo "PostgreSQL was installed but did not start" >&2; exit 1; }
  fi
fi
# A fresh Debian install asks TCP clients for a password: give the postgres role one when the
# default URL cannot log in, and use it.
if have psql && ! psql "$TEST_POSTGRES_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
  if [ "$TEST_POSTGRES_URL" = "postgres://postgres@127.0.0.1:5432/postgres" ] && have su; then
    say "setting a password for the local postgres role so tests can log in over TCP"
    as_root su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null
    export TEST_POSTGRES_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
  fi
  psql "$TEST_POSTGRES_URL" -qAtc 'SELECT 1' >/dev/null || {
    echo "cannot log in to PostgreSQL with $TEST_POSTGRES_URL" >&2; exit 1; }
fi
# Databases left behind by an interrupted earlier run.
if have psql; then
  for db in $(psql "$TEST_POSTGRES_URL" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'th\_test\_%' OR datname LIKE 'th\_bench\_%'"); do
    psql "$TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  done
fi
say "PostgreSQL reachable at $PG_HOST:$PG_PORT"

# Python tools of the suite, in a virtual environment of its own: aiosmtpd, the real SMTP server
# the notification tests send email to (tests/support/smtp_receiver.py), and schemathesis below.
VENV=target/test-venv
if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  say "installing the suite's Python tools (aiosmtpd, schemathesis) into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.32.5" "aiosmtpd==1.4.6"
fi
# Not TELEHEALTH_*: the server reads every such variable as a setting.
export TEST_PYTHON="$PWD/$VENV/bin/python"

# --- the suite ------------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings
say "cargo test (unit and integration tests, SQLite and PostgreSQL)"
cargo test --workspace --all-targets

# --- property test of the whole API ---------------------------------------------------------
# schemathesis generates requests from the OpenAPI document (valid and invalid ones) against a
# real server with a small demo network, and fails on any 5xx: no client input may cause one.
say "schemathesis: generated requests against the OpenAPI document (no 5xx allowed)"
cargo build -q -p telehealth-server
ST_DIR="$(mktemp -d)"
ST_PORT=$(( 20000 + RANDOM % 20000 ))
ST_PASSWORD="schemathesis-$RANDOM-$RANDOM"
target/debug/telehealth --data-dir "$ST_DIR" demo --care-centres 40 --patients-per-centre 2 --seed-only >/dev/null
# A network scheduler and administrator, so generated requests reach the handlers, not the 401.
TELEHEALTH_NEW_PASSWORD="$ST_PASSWORD" target/debug/telehealth --data-dir "$ST_DIR" account create \
  --username fuzz --display-name Fuzz --role scheduler --role administrator >/dev/null
RUST_LOG=warn target/debug/telehealth --data-dir "$ST_DIR" --listen "127.0.0.1:$ST_PORT" serve \
  >"$ST_DIR/server.log" 2>&1 &
ST_PID=$!
trap 'kill $ST_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do port_open 127.0.0.1 "$ST_PORT" && break; sleep 0.5; done
ST_TOKEN="$(python3 -c 'import json,sys,urllib.request
req = urllib.request.Request(sys.argv[1], data=json.dumps({"username": "fuzz", "password": sys.argv[2]}).encode(),
                             headers={"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])' "http://127.0.0.1:$ST_PORT/api/v1/auth/login" "$ST_PASSWORD")"
# Logging out, revoking sessions or changing roles would end the session the run uses.
"$VENV/bin/schemathesis" run "http://127.0.0.1:$ST_PORT/api/v1/openapi.json" \
  --url "http://127.0.0.1:$ST_PORT" --checks not_a_server_error \
  --header "Authorization: Bearer $ST_TOKEN" --exclude-path-regex '^/api/v1/(auth/logout|accounts/\{id\}/(roles|revoke-sessions))$' \
  --max-examples 60 --seed 20261122 --no-color \
  || { echo "--- server log ---" >&2; tail -50 "$ST_DIR/server.log" >&2; exit 1; }
kill $ST_PID 2>/dev/null || true
rm -rf "$ST_DIR"

# --- the web client in a real browser -------------------------------------------------------
# Headless Chromium (Debian's package) driven by playwright-core from npm; screenshots of each
# journey go to target/e2e-artifacts/.
say "browser end-to-end tests (headless Chromium)"
if [ ! -x /usr/lib/chromium/chromium ] && ! have chromium; then
  say "installing Debian chromium"
  have apt-get || { echo "no chromium and no apt-get to install it" >&2; exit 1; }
  as_root apt-get update -q || true
  apt_install chromium
fi
if ! have npm; then
  say "installing Node.js and npm"
  as_root apt-get update -q || true
  apt_install nodejs npm
fi
# playwright-core needs Node.js 20 or newer; Debian 12's own package is 18. Then take Node 20
# from the npm registry (the `node` package) into target/, and put it first on the PATH.
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt 20 ]; then
  if [ ! -x target/node20/node_modules/.bin/node ]; then
    say "Node.js $(node --version 2>/dev/null || echo '(none)') is older than 20: installing node@20 from npm into target/node20"
    npm install --prefix target/node20 --no-audit --no-fund --loglevel=error node@20
  fi
  export PATH="$PWD/target/node20/node_modules/.bin:$PATH"
fi
cargo build -q -p telehealth-server
( cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error && node run.mjs )

say "all tests passed"
