#!/usr/bin/env bash
# Restore a tools/backup.sh archive into a NEW, empty database, then verify it.
#
#   tools/restore.sh ARCHIVE TARGET_DATABASE_URL [--verify]
#
# - The target database is created when it does not exist (that needs the CREATEDB right; the
#   application role has none, so create it first as postgres: `createdb --owner=<role> NAME`);
#   an existing one must be empty (no tables): this script never overwrites data. To replace production, restore into a new
#   database, verify, then point DATABASE_URL at it (docs/runbook.md, "Restore").
# - The archive's .sha256 (written by backup.sh) is checked when present.
# - The restore runs in one transaction and stops at the first error.
# - --verify then runs, against the restored database: `manage.py migrate --check` (the code
#   and the schema agree), `manage.py audit_verify` (the audit trail's HMAC chain, with this
#   machine's AUDIT_HMAC_KEY) and the prize ledger's check (apps.prizes.ledger.ledger_verify).
#   Run it with the same environment (keys) as the application. Exit 1 if any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
  echo "usage: tools/restore.sh ARCHIVE TARGET_DATABASE_URL [--verify]" >&2
  exit 2
fi
archive="$1"
target="$2"
verify="${3:-}"
[ -f "$archive" ] || { echo "restore.sh: no such archive: $archive" >&2; exit 2; }
case "$target" in
  postgres://*|postgresql://*) ;;
  *) echo "restore.sh: TARGET_DATABASE_URL must be a postgres:// URL" >&2; exit 2 ;;
esac
target="postgresql://${target#*://}"

if [ -f "${archive}.sha256" ]; then
  (cd "$(dirname "$archive")" && sha256sum --check --quiet "$(basename "$archive").sha256")
fi
pg_restore --list "$archive" >/dev/null

# postgresql://user@host:port/NAME?options → NAME, and the same server's "postgres" database.
base="${target%%\?*}"
query=""
[ "$base" != "$target" ] && query="?${target#*\?}"
dbname="${base##*/}"
maintenance="${base%/*}/postgres${query}"
if ! [[ "$dbname" =~ ^[A-Za-z_][A-Za-z0-9_]{0,62}$ ]]; then
  echo "restore.sh: unusual database name '$dbname' (letters, digits, underscore only)" >&2
  exit 2
fi
exists="$(psql "$maintenance" -tAc "SELECT 1 FROM pg_database WHERE datname = '${dbname}'")"
if [ "$exists" = "1" ]; then
  tables="$(psql "$target" -tAc "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")"
  if [ "$tables" != "0" ]; then
    echo "restore.sh: database $dbname already has $tables tables; restore into a new one" >&2
    exit 3
  fi
elif ! psql "$maintenance" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"${dbname}\""; then
  echo "restore.sh: could not create $dbname; as the postgres superuser run" >&2
  echo "  createdb --owner=<application role> $dbname   and run this again" >&2
  exit 4
fi

pg_restore --no-owner --no-privileges --exit-on-error --single-transaction \
  --dbname="$target" "$archive"
echo "restored $archive into $dbname"

if [ "$verify" = "--verify" ]; then
  PY="${PYTHON:-.venv/bin/python}"
  export DATABASE_URL="$target"
  "$PY" manage.py migrate --check --no-input >/dev/null \
    || { echo "restore.sh: the schema does not match this code's migrations" >&2; exit 1; }
  "$PY" manage.py audit_verify
  "$PY" manage.py shell --no-imports -c '
import sys
from apps.prizes.ledger import ledger_verify
from apps.prizes.models import LedgerEntry
problems = ledger_verify()
for problem in problems:
    print("ledger:", problem, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"ledger OK: {LedgerEntry.objects.count()} entries balance")
'
fi
