"""`Idempotency-Key` for unsafe API requests: one effect, the same reply, however often sent.

- The first request with a key claims it (a row, unique per user and key) before any work.
- A retry with the same body gets the stored reply (status and JSON) — also for errors.
- A retry while the first is still running gets 409 `idempotency.in_progress`.
- The same key with a different body gets 422 `idempotency.key_reused`.
Keys are kept for `IDEMPOTENCY_KEY_TTL_HOURS` and then purged.

A view whose reply is settled inside its own transaction (the invoice submission) stores it
there with `store_reply_in_transaction`: the reply then commits with the work it describes, in
the same round trip as the transaction's other batched writes, instead of in a transaction of
its own afterwards (and a crash between the two can no longer leave the key "in progress").
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from .exceptions import DomainError
from .models import IdempotencyRecord
from .queries import fetch_one, read_ahead, write_later

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
_local = threading.local()  # the claimed record of the request this thread is answering


class IdempotencyError(DomainError):
    code = "idempotency.error"


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _claim_query(user, key: str, fingerprint: str) -> tuple[IdempotencyRecord, str, list]:
    """The in-progress record and the statement that claims it: one `INSERT … ON CONFLICT DO
    NOTHING RETURNING id` (no savepoint: this runs on every submission), whose row is None if
    (user, key) already has a record."""
    record = IdempotencyRecord(
        user=user,
        key=key,
        fingerprint=fingerprint,
        state=IdempotencyRecord.State.IN_PROGRESS,
        created_at=timezone.now(),
    )
    q = connection.ops.quote_name
    table, key_column = q(IdempotencyRecord._meta.db_table), q("key")
    sql = (
        f"INSERT INTO {table} (user_id, {key_column}, fingerprint, state, created_at) "  # noqa: S608
        f"VALUES (%s, %s, %s, %s, %s) ON CONFLICT (user_id, {key_column}) DO NOTHING "
        "RETURNING id"
    )
    params = [
        user.pk,
        key,
        fingerprint,
        record.state,
        connection.ops.adapt_datetimefield_value(record.created_at),
    ]
    return record, sql, params


def _claimed(record: IdempotencyRecord, row) -> IdempotencyRecord:
    if row is None:
        raise _KeyTaken
    record.pk = row[0]
    record._state.adding = False
    return record


class _KeyTaken(Exception):
    """The key already has a record (an earlier or a concurrent request with it)."""


class _ClaimWithFirstRead:
    """The claim of `idempotent(claim_with_first_read=True)`: queued (`read_ahead`) to travel
    with the view's first `fetch_one` — one round trip fewer — and sent alone before any other
    statement the view makes (an execute wrapper), or at the end if the view made none. Either
    way it is settled before the view's work is used: a taken key raises `_KeyTaken` from the
    statement that carried it."""

    def __init__(self, user, key: str, fingerprint: str):
        self.record, sql, params = _claim_query(user, key, fingerprint)
        self.ahead = read_ahead(sql, params, then=lambda row: _claimed(self.record, row))
        connection.execute_wrappers.append(self)

    def __call__(self, execute, sql, params, many, context):
        if self.ahead.queued:
            self.ahead.row()  # sent alone, before the statement (which may be a write)
        return execute(sql, params, many, context)

    def settle(self) -> IdempotencyRecord:
        self.ahead.row()
        if self.record.pk is None:  # the key was taken, whatever caught the error on the way
            raise _KeyTaken
        return self.record

    def close(self) -> None:
        self.ahead.discard()
        if self in connection.execute_wrappers:
            connection.execute_wrappers.remove(self)


def _reply_update(record: IdempotencyRecord, status: int, data) -> tuple[str, list]:
    """The plain UPDATE that stores a reply (this runs on every submission; `save()` spent
    more time compiling it than the database running it)."""
    record.state = IdempotencyRecord.State.COMPLETED
    record.response_status = status
    record.response_body = json.loads(json.dumps(data, cls=JSONEncoder))
    q = connection.ops.quote_name
    body = IdempotencyRecord._meta.get_field("response_body")
    return (
        f"UPDATE {q(IdempotencyRecord._meta.db_table)} "  # noqa: S608 - names only
        "SET state = %s, response_status = %s, response_body = %s WHERE id = %s",
        [
            record.state,
            record.response_status,
            body.get_db_prep_save(record.response_body, connection),
            record.pk,
        ],
    )


def _complete(record: IdempotencyRecord, response) -> None:
    """Store the reply, now."""
    sql, params = _reply_update(record, response.status_code, response.data)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def store_reply_in_transaction(status: int, data) -> None:
    """Store the reply of the idempotent request this thread is answering inside the
    transaction now open (with its batched writes, `apps.common.queries.batched_writes`).
    Call it with the very `data` object the view then returns with `status`: the decorator
    stores no second copy of that reply. A reply that turns out different (an error raised
    later, so this transaction rolls back) is stored by the decorator as usual. Outside an
    idempotent request or a transaction, nothing happens."""
    record = getattr(_local, "record", None)
    if record is None or record.pk is None or not connection.in_atomic_block:
        return
    write_later(*_reply_update(record, status, data))
    record._stored_reply = (status, data)


def _existing_reply(user, key: str, fingerprint: str) -> Response:
    """The answer to a key that already has a record: its stored reply, 409 while the first
    request runs, 422 for a different body."""
    existing = IdempotencyRecord.objects.get(user=user, key=key)
    if existing.fingerprint != fingerprint:
        raise IdempotencyError(
            "idempotency.key_reused",
            _("This Idempotency-Key was used for a different request."),
            status_code=422,
        ) from None
    if existing.state != IdempotencyRecord.State.COMPLETED:
        raise IdempotencyError(
            "idempotency.in_progress",
            _("The first request with this Idempotency-Key is still running."),
            status_code=409,
        ) from None
    response = Response(existing.response_body, status=existing.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(*, required: bool = True, claim_with_first_read: bool = False):
    """Decorate a DRF view method (POST) so a repeated key replays the first reply.

    `claim_with_first_read`: the key's claim travels with the view's first read through
    `apps.common.queries` (`fetch_one`, `model_row`) instead of in a round trip of its own
    before the view runs (`_ClaimWithFirstRead`). Only for a view that makes that read outside
    any transaction, so that the claim commits on its own, before the view's work, as the
    plain claim does (a concurrent retry sees it and gets 409): the invoice submission."""

    def decorator(view_method):
        @functools.wraps(view_method)
        def wrapper(self, request, *args, **kwargs):
            key = request.headers.get("Idempotency-Key", "").strip()
            if not key:
                if required:
                    raise IdempotencyError(
                        "idempotency.key_required",
                        _("Send an Idempotency-Key header with this request."),
                    )
                return view_method(self, request, *args, **kwargs)
            if not KEY_PATTERN.match(key):
                raise IdempotencyError(
                    "idempotency.key_invalid",
                    _("The Idempotency-Key must be 8 to 128 letters, digits or - _ . :"),
                )
            fingerprint = _fingerprint(request)
            claim = None
            try:
                if claim_with_first_read:
                    claim = _ClaimWithFirstRead(request.user, key, fingerprint)
                    record = claim.record
                else:
                    record, sql, params = _claim_query(request.user, key, fingerprint)
                    _claimed(record, fetch_one(sql, params))
                response = _answer(self, request, view_method, record, args, kwargs)
                if claim is not None:
                    claim.settle()  # a view that made no statement: the claim goes now
            except _KeyTaken:
                return _existing_reply(request.user, key, fingerprint)
            finally:
                if claim is not None:
                    claim.close()
            stored = getattr(record, "_stored_reply", None)
            if (
                stored is None
                or stored[0] != response.status_code
                or stored[1] is not response.data
            ):
                _complete(record, response)
            return response

        return wrapper

    return decorator


def _forget(record: IdempotencyRecord) -> None:
    if record.pk is not None:
        record.delete()


def _answer(view, request, view_method, record: IdempotencyRecord, args, kwargs):
    """The view's reply (an error it raises, as DRF answers it), the claimed `record` being
    this thread's for `store_reply_in_transaction`. A server fault drops the record, so the
    client may retry it with the same key."""
    _local.record = record
    try:
        return view_method(view, request, *args, **kwargs)
    except _KeyTaken:
        raise
    except Exception as exc:
        try:
            # DRF answers its own exceptions and raises any other (a server fault) again.
            handled = view.handle_exception(exc)
        except Exception:
            _forget(record)
            raise
        if handled.status_code >= 500:
            _forget(record)
            raise
        return handled
    finally:
        _local.record = None


def purge_expired_idempotency_records() -> int:
    cutoff = timezone.now() - timezone.timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _counts = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
