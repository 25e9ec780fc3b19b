"""Database triggers that make a draw's frozen facts immutable (TEST_CHECKLIST 31).

- Tickets and tiers of a draw whose status is frozen or later (or cancelled) refuse INSERT,
  UPDATE and DELETE. On PostgreSQL these are statement-level triggers over the transition
  tables, so freezing ten million tickets costs one pass, not ten million trigger calls; they
  lock the draws concerned FOR SHARE, so a write racing with a freeze waits for it and then
  sees the new status.
- A draw's commitment (seed commitment, randomness source, code) never changes after
  commitment; its window, limit, ticket count and digest never change after freezing; its
  public randomness and the people who executed it never change after the draw.
- Winners are never deleted, and a winner's slot, ticket and counter never change (only the
  disqualification columns may be filled in, once).

Services still write winners and the draw's status. TRUNCATE is not covered (it needs table
ownership, which the application's database role should not have).
"""

from django.db import migrations

LOCKED = "('frozen', 'randomness_recorded', 'drawn', 'published', 'finalised', 'cancelled')"
COMMITTED = "('committed', 'frozen', 'randomness_recorded', 'drawn', 'published', 'finalised')"
DRAWN = "('drawn', 'published', 'finalised')"

PG_SQL = f"""
CREATE OR REPLACE FUNCTION draws_check_unlocked(draw_ids bigint[]) RETURNS void AS $$
DECLARE
    locked_code text;
BEGIN
    -- FOR SHARE: wait for a freeze in progress, then judge by the status it committed.
    SELECT code INTO locked_code FROM (
        SELECT d.code, d.status FROM draws_periodicdraw d
        WHERE d.id = ANY(draw_ids) ORDER BY d.id FOR SHARE
    ) AS locked WHERE locked.status IN {LOCKED} LIMIT 1;
    IF locked_code IS NOT NULL THEN
        RAISE EXCEPTION 'draw % is frozen: its tickets and tiers cannot change', locked_code
            USING ERRCODE = 'restrict_violation';
    END IF;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION draws_locked_new_rows() RETURNS trigger AS $$
BEGIN
    PERFORM draws_check_unlocked(ARRAY(SELECT DISTINCT draw_id FROM new_rows));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION draws_locked_old_rows() RETURNS trigger AS $$
BEGIN
    PERFORM draws_check_unlocked(ARRAY(SELECT DISTINCT draw_id FROM old_rows));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION draws_locked_both_rows() RETURNS trigger AS $$
BEGIN
    PERFORM draws_check_unlocked(ARRAY(
        SELECT draw_id FROM old_rows UNION SELECT draw_id FROM new_rows
    ));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER drawticket_locked_insert AFTER INSERT ON draws_drawticket
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_new_rows();
CREATE TRIGGER drawticket_locked_update AFTER UPDATE ON draws_drawticket
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_both_rows();
CREATE TRIGGER drawticket_locked_delete AFTER DELETE ON draws_drawticket
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_old_rows();

CREATE TRIGGER drawtier_locked_insert AFTER INSERT ON draws_drawtier
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_new_rows();
CREATE TRIGGER drawtier_locked_update AFTER UPDATE ON draws_drawtier
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_both_rows();
CREATE TRIGGER drawtier_locked_delete AFTER DELETE ON draws_drawtier
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION draws_locked_old_rows();

CREATE OR REPLACE FUNCTION draws_periodicdraw_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'scheduled' THEN
            RAISE EXCEPTION 'draw % is past scheduling: it cannot be deleted', OLD.code
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status IN {COMMITTED} OR OLD.seed_commitment <> '' THEN
        IF NEW.code IS DISTINCT FROM OLD.code
           OR NEW.seed_commitment IS DISTINCT FROM OLD.seed_commitment
           OR NEW.randomness_source IS DISTINCT FROM OLD.randomness_source
           OR NEW.campaign_id IS DISTINCT FROM OLD.campaign_id THEN
            RAISE EXCEPTION 'draw %: the published commitment cannot change', OLD.code
                USING ERRCODE = 'restrict_violation';
        END IF;
    END IF;
    IF OLD.status IN {LOCKED} AND OLD.ticket_count IS NOT NULL THEN
        IF NEW.ticket_count IS DISTINCT FROM OLD.ticket_count
           OR NEW.tickets_digest IS DISTINCT FROM OLD.tickets_digest
           OR NEW.per_holder_limit IS DISTINCT FROM OLD.per_holder_limit
           OR NEW.window_starts_at IS DISTINCT FROM OLD.window_starts_at
           OR NEW.window_ends_at IS DISTINCT FROM OLD.window_ends_at
           OR NEW.cutoff_at IS DISTINCT FROM OLD.cutoff_at THEN
            RAISE EXCEPTION 'draw % is frozen: its ticket list cannot change', OLD.code
                USING ERRCODE = 'restrict_violation';
        END IF;
    END IF;
    IF OLD.status IN {DRAWN} THEN
        IF NEW.public_randomness IS DISTINCT FROM OLD.public_randomness
           OR NEW.started_by_id IS DISTINCT FROM OLD.started_by_id
           OR NEW.confirmed_by_id IS DISTINCT FROM OLD.confirmed_by_id
           OR NEW.drawn_at IS DISTINCT FROM OLD.drawn_at THEN
            RAISE EXCEPTION 'draw % has been drawn: its execution cannot change', OLD.code
                USING ERRCODE = 'restrict_violation';
        END IF;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER periodicdraw_guard BEFORE UPDATE OR DELETE ON draws_periodicdraw
    FOR EACH ROW EXECUTE FUNCTION draws_periodicdraw_guard();

CREATE OR REPLACE FUNCTION draws_winner_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'draw winners are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.draw_id IS DISTINCT FROM OLD.draw_id
       OR NEW.tier_id IS DISTINCT FROM OLD.tier_id
       OR NEW.rank IS DISTINCT FROM OLD.rank
       OR NEW.slot IS DISTINCT FROM OLD.slot
       OR NEW.ticket_id IS DISTINCT FROM OLD.ticket_id
       OR NEW.ticket_no IS DISTINCT FROM OLD.ticket_no
       OR NEW.counter IS DISTINCT FROM OLD.counter
       OR NEW.substitute_for IS DISTINCT FROM OLD.substitute_for
       OR (OLD.disqualified AND (
            NOT NEW.disqualified
            OR NEW.disqualification_seq IS DISTINCT FROM OLD.disqualification_seq
            OR NEW.disqualification_reason IS DISTINCT FROM OLD.disqualification_reason)) THEN
        RAISE EXCEPTION 'a draw winner''s slot, ticket and disqualification cannot change'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER drawwinner_guard BEFORE UPDATE OR DELETE ON draws_drawwinner
    FOR EACH ROW EXECUTE FUNCTION draws_winner_guard();
"""

PG_DROP = """
DROP TRIGGER IF EXISTS drawwinner_guard ON draws_drawwinner;
DROP FUNCTION IF EXISTS draws_winner_guard();
DROP TRIGGER IF EXISTS periodicdraw_guard ON draws_periodicdraw;
DROP FUNCTION IF EXISTS draws_periodicdraw_guard();
DROP TRIGGER IF EXISTS drawtier_locked_delete ON draws_drawtier;
DROP TRIGGER IF EXISTS drawtier_locked_update ON draws_drawtier;
DROP TRIGGER IF EXISTS drawtier_locked_insert ON draws_drawtier;
DROP TRIGGER IF EXISTS drawticket_locked_delete ON draws_drawticket;
DROP TRIGGER IF EXISTS drawticket_locked_update ON draws_drawticket;
DROP TRIGGER IF EXISTS drawticket_locked_insert ON draws_drawticket;
DROP FUNCTION IF EXISTS draws_locked_both_rows();
DROP FUNCTION IF EXISTS draws_locked_old_rows();
DROP FUNCTION IF EXISTS draws_locked_new_rows();
DROP FUNCTION IF EXISTS draws_check_unlocked(bigint[]);
"""


def _sqlite_statements() -> list[str]:
    """The same rules as row triggers for the embedded SQLite default."""
    statements = []
    for table, short in (("draws_drawticket", "drawticket"), ("draws_drawtier", "drawtier")):
        for op, rows in (("INSERT", ("NEW",)), ("UPDATE", ("OLD", "NEW")), ("DELETE", ("OLD",))):
            condition = " OR ".join(
                f"(SELECT status FROM draws_periodicdraw WHERE id = {row}.draw_id) IN {LOCKED}"
                for row in rows
            )
            statements.append(
                f"CREATE TRIGGER {short}_locked_{op.lower()} BEFORE {op} ON {table} "
                f"WHEN {condition} BEGIN "
                f"SELECT RAISE(ABORT, 'draw is frozen: its tickets and tiers cannot change'); END"
            )
    statements.append(
        "CREATE TRIGGER periodicdraw_guard_delete BEFORE DELETE ON draws_periodicdraw "
        "WHEN OLD.status <> 'scheduled' BEGIN "
        "SELECT RAISE(ABORT, 'draw is past scheduling: it cannot be deleted'); END"
    )
    statements.append(
        "CREATE TRIGGER periodicdraw_guard_commitment BEFORE UPDATE ON draws_periodicdraw "
        f"WHEN (OLD.status IN {COMMITTED} OR OLD.seed_commitment <> '') AND ("
        "NEW.code IS NOT OLD.code OR NEW.seed_commitment IS NOT OLD.seed_commitment "
        "OR NEW.randomness_source IS NOT OLD.randomness_source "
        "OR NEW.campaign_id IS NOT OLD.campaign_id) BEGIN "
        "SELECT RAISE(ABORT, 'the published commitment cannot change'); END"
    )
    statements.append(
        "CREATE TRIGGER periodicdraw_guard_frozen BEFORE UPDATE ON draws_periodicdraw "
        f"WHEN OLD.status IN {LOCKED} AND OLD.ticket_count IS NOT NULL AND ("
        "NEW.ticket_count IS NOT OLD.ticket_count OR NEW.tickets_digest IS NOT OLD.tickets_digest "
        "OR NEW.per_holder_limit IS NOT OLD.per_holder_limit "
        "OR NEW.window_starts_at IS NOT OLD.window_starts_at "
        "OR NEW.window_ends_at IS NOT OLD.window_ends_at "
        "OR NEW.cutoff_at IS NOT OLD.cutoff_at) BEGIN "
        "SELECT RAISE(ABORT, 'draw is frozen: its ticket list cannot change'); END"
    )
    statements.append(
        "CREATE TRIGGER periodicdraw_guard_drawn BEFORE UPDATE ON draws_periodicdraw "
        f"WHEN OLD.status IN {DRAWN} AND ("
        "NEW.public_randomness IS NOT OLD.public_randomness "
        "OR NEW.started_by_id IS NOT OLD.started_by_id "
        "OR NEW.confirmed_by_id IS NOT OLD.confirmed_by_id "
        "OR NEW.drawn_at IS NOT OLD.drawn_at) BEGIN "
        "SELECT RAISE(ABORT, 'draw has been drawn: its execution cannot change'); END"
    )
    statements.append(
        "CREATE TRIGGER drawwinner_guard_delete BEFORE DELETE ON draws_drawwinner BEGIN "
        "SELECT RAISE(ABORT, 'draw winners are never deleted'); END"
    )
    statements.append(
        "CREATE TRIGGER drawwinner_guard_update BEFORE UPDATE ON draws_drawwinner WHEN "
        "NEW.draw_id IS NOT OLD.draw_id OR NEW.tier_id IS NOT OLD.tier_id "
        "OR NEW.rank IS NOT OLD.rank OR NEW.slot IS NOT OLD.slot "
        "OR NEW.ticket_id IS NOT OLD.ticket_id OR NEW.ticket_no IS NOT OLD.ticket_no "
        "OR NEW.counter IS NOT OLD.counter OR NEW.substitute_for IS NOT OLD.substitute_for "
        "OR (OLD.disqualified AND (NOT NEW.disqualified "
        "OR NEW.disqualification_seq IS NOT OLD.disqualification_seq "
        "OR NEW.disqualification_reason IS NOT OLD.disqualification_reason)) BEGIN "
        "SELECT RAISE(ABORT, 'a draw winner''s slot, ticket and disqualification cannot change'); "
        "END"
    )
    return statements


SQLITE_TRIGGERS = (
    [f"drawticket_locked_{op}" for op in ("insert", "update", "delete")]
    + [f"drawtier_locked_{op}" for op in ("insert", "update", "delete")]
    + [
        "periodicdraw_guard_delete",
        "periodicdraw_guard_commitment",
        "periodicdraw_guard_frozen",
        "periodicdraw_guard_drawn",
        "drawwinner_guard_delete",
        "drawwinner_guard_update",
    ]
)


def install(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_SQL, params=None)
    elif vendor == "sqlite":
        for statement in _sqlite_statements():
            schema_editor.execute(statement, params=None)


def uninstall(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_DROP, params=None)
    elif vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


class Migration(migrations.Migration):
    dependencies = [("draws", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
