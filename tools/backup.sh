#!/usr/bin/env bash
# Back up the lotteryinvoice PostgreSQL database: one pg_dump archive in custom format
# (compressed, restorable table by table with pg_restore), checked and checksummed.
#
#   tools/backup.sh [ARCHIVE]          default: backups/lotteryinvoice-<UTC time>.dump
#
# The database is DATABASE_URL (environment, or the .env file of the checkout). Prefer a
# password in ~/.pgpass or PGPASSWORD to one inside the URL (the URL is visible in `ps`).
# The archive holds personal data in encrypted form only, but also the audit trail and the
# ledger: store it encrypted and off the machine (see docs/runbook.md, "Backups").
# Exit status: 0 and the archive's path on stdout when the archive was written and reads back.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DATABASE_URL:-}" ] && [ -f .env ]; then
  DATABASE_URL="$(sed -n 's/^DATABASE_URL=\([^ #]*\).*/\1/p' .env | tail -1)"
fi
url="${DATABASE_URL:-}"
case "$url" in
  postgres://*|postgresql://*) ;;
  *) echo "backup.sh: DATABASE_URL must be a postgres:// URL (got '${url:+<set>}')" >&2; exit 2 ;;
esac
url="postgresql://${url#*://}"   # libpq spells the scheme postgresql:// (postgres:// works too)

archive="${1:-backups/lotteryinvoice-$(date -u +%Y%m%dT%H%M%SZ).dump}"
umask 077                         # archives and checksums readable by their owner only
mkdir -p "$(dirname "$archive")"
partial="${archive}.partial"
trap 'rm -f "$partial"' EXIT

# --no-owner/--no-privileges: the archive restores under whatever role runs pg_restore.
# pg_dump takes a consistent snapshot; the application may keep running meanwhile.
pg_dump --format=custom --compress=6 --no-owner --no-privileges --file="$partial" "$url"
# A backup that cannot be read back is no backup: list its table of contents.
pg_restore --list "$partial" >/dev/null
mv "$partial" "$archive"
(cd "$(dirname "$archive")" && sha256sum "$(basename "$archive")" > "$(basename "$archive").sha256")
echo "$archive"
