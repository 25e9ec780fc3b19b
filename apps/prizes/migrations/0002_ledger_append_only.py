"""The prize-fund ledger is append-only: entries are never updated or deleted (corrections are
compensating entries), on PostgreSQL and on the embedded SQLite default alike. Payouts, awards
and batches are never deleted either (money history)."""

from django.db import migrations

GUARDED = ("prizes_ledgerentry", "prizes_payout", "prizes_award", "prizes_payoutbatch")

PG_SQL = """
CREATE OR REPLACE FUNCTION prizes_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledgerentry_no_update BEFORE UPDATE ON prizes_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION prizes_refuse_change();
CREATE TRIGGER ledgerentry_no_delete BEFORE DELETE ON prizes_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION prizes_refuse_change();
CREATE TRIGGER payout_no_delete BEFORE DELETE ON prizes_payout
    FOR EACH ROW EXECUTE FUNCTION prizes_refuse_change();
CREATE TRIGGER award_no_delete BEFORE DELETE ON prizes_award
    FOR EACH ROW EXECUTE FUNCTION prizes_refuse_change();
CREATE TRIGGER payoutbatch_no_delete BEFORE DELETE ON prizes_payoutbatch
    FOR EACH ROW EXECUTE FUNCTION prizes_refuse_change();
"""

PG_DROP = """
DROP TRIGGER IF EXISTS ledgerentry_no_update ON prizes_ledgerentry;
DROP TRIGGER IF EXISTS ledgerentry_no_delete ON prizes_ledgerentry;
DROP TRIGGER IF EXISTS payout_no_delete ON prizes_payout;
DROP TRIGGER IF EXISTS award_no_delete ON prizes_award;
DROP TRIGGER IF EXISTS payoutbatch_no_delete ON prizes_payoutbatch;
DROP FUNCTION IF EXISTS prizes_refuse_change();
"""

SQLITE = [
    "CREATE TRIGGER ledgerentry_no_update BEFORE UPDATE ON prizes_ledgerentry BEGIN "
    "SELECT RAISE(ABORT, 'prizes_ledgerentry is append-only'); END",
    "CREATE TRIGGER ledgerentry_no_delete BEFORE DELETE ON prizes_ledgerentry BEGIN "
    "SELECT RAISE(ABORT, 'prizes_ledgerentry is append-only'); END",
    "CREATE TRIGGER payout_no_delete BEFORE DELETE ON prizes_payout BEGIN "
    "SELECT RAISE(ABORT, 'payouts are never deleted'); END",
    "CREATE TRIGGER award_no_delete BEFORE DELETE ON prizes_award BEGIN "
    "SELECT RAISE(ABORT, 'awards are never deleted'); END",
    "CREATE TRIGGER payoutbatch_no_delete BEFORE DELETE ON prizes_payoutbatch BEGIN "
    "SELECT RAISE(ABORT, 'payout batches are never deleted'); END",
]
SQLITE_NAMES = [
    "ledgerentry_no_update",
    "ledgerentry_no_delete",
    "payout_no_delete",
    "award_no_delete",
    "payoutbatch_no_delete",
]


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_SQL, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement, params=None)


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DROP, params=None)
    elif vendor == "sqlite":
        for name in SQLITE_NAMES:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


class Migration(migrations.Migration):
    dependencies = [("prizes", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
