"""Building blocks shared by every app's admin (no models are registered here).

The admin is the task force's back office. Three rules hold across its ModelAdmins:

- Facts are viewed, not edited: submitted invoices, the tax authority's registry and consumers'
  identity are read-only (`ReadOnlyAdminMixin`); the change view is a detail view.
- Personal data is shown masked. Plaintext never reaches a form, a list or a search
  (`PersonalDataAdminMixin` excludes the encrypted fields from every form and a system check
  refuses an admin that names them anywhere); revealing a full value will be a separate,
  permissioned and audited feature behind `can_reveal()`.
- Status changes are admin actions that call a service, one object at a time
  (`run_service_action`), declared with `permissions=["change"]` so view-only staff never
  see them.

And lists stay fast on ten-million-row tables (`LargeTableAdminMixin`): no full count, an
estimated count when nothing is filtered, a date hierarchy drawn from MIN and MAX instead of a
DISTINCT scan; filters whose choices would need a DISTINCT over the whole table are cached
(`CachedDistinctValuesFilter`); search terms are normalised before exact, indexed lookups.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from functools import cache as cache_function

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core import checks
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Max, Min
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .crypto import DecryptionError
from .exceptions import DomainError
from .normalize import to_halfwidth

#: Shown instead of a personal-data value whose ciphertext cannot be opened (wrong key, moved
#: row): the page still renders and nobody sees ciphertext.
UNREADABLE = _("(cannot decrypt)")

#: At most this many per-object error messages after an action; the rest are counted.
MAX_ACTION_ERRORS = 10


# --- Read-only detail views ------------------------------------------------------------------


class ReadOnlyAdminMixin:
    """View, never add, change or delete: for facts that only services and feeds write.

    With no change permission Django renders the change view as a detail view (every field
    read-only, a "Close" button) and refuses POSTs to it. The `delete_selected` action disappears
    with the delete permission. Works for ModelAdmins and inlines alike.

    An action that changes such a record through a service cannot use `permissions=["change"]`
    (always refused here): give it a custom permission, e.g. `permissions=["review"]` with a
    `has_review_permission(request)` that checks the user's real model permission.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A read-only table of related rows (e.g. an invoice's status history)."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False


# --- Personal data --------------------------------------------------------------------------


def masked_display(
    model, field_name: str, mask: Callable[[str | None], str], *, name: str | None = None
):
    """An admin display method showing `field_name` masked, under the field's own label.

    Use it as a class attribute of a ModelAdmin and name the attribute in `list_display` or
    `readonly_fields`::

        masked_real_name = masked_display(Consumer, "real_name", mask_name)

    The label is the model field's `verbose_name`, so it is translated like the model.
    """
    field = model._meta.get_field(field_name)

    def display(model_admin, obj):
        try:
            value = getattr(obj, field.attname)
        except DecryptionError:
            return UNREADABLE
        # An empty string, not None: a detail view would print None as "None".
        return mask(value) or model_admin.get_empty_value_display()

    display.__name__ = name or f"masked_{field_name}"
    display.__qualname__ = display.__name__
    return admin.display(description=field.verbose_name)(display)


def _declared_names(model_admin) -> set[str]:
    """Every field name an admin declares anywhere it could show or query a value."""
    names: set[str] = set()

    def add(items: Iterable) -> None:
        for item in items or ():
            if isinstance(item, (list, tuple)):
                add(item)
            elif isinstance(item, str):
                names.add(item.lstrip("^=@-").split("__")[0])

    add(model_admin.list_display)
    add(model_admin.list_display_links or ())
    add(f for f in model_admin.list_filter if isinstance(f, str))
    add(f[0] for f in model_admin.list_filter if isinstance(f, (list, tuple)))
    add(model_admin.search_fields)
    add(model_admin.readonly_fields)
    add(model_admin.fields or ())
    add(model_admin.sortable_by or ())
    add(model_admin.ordering or ())
    for _name, options in model_admin.fieldsets or ():
        add(options.get("fields", ()))
    return names


class PersonalDataAdminMixin:
    """Keeps the plaintext of encrypted personal-data fields out of the admin.

    `personal_data_fields` lists the model's encrypted fields. They are excluded from every
    form Django builds (so an auto-generated form or detail view cannot show them), and the
    system check below fails if the admin names one anywhere — in a list, a filter, a search,
    an ordering or a fieldset. Show `masked_display(...)` values instead.
    """

    personal_data_fields: tuple[str, ...] = ()

    def can_reveal(self, request) -> bool:
        """Whether this request may see a full personal-data value. Always False for now.

        Hook for the reveal feature: it will need a dedicated permission (never implied by
        `change`), a typed reason, and an audit entry written in the same transaction as the
        disclosure, and will render the value once, outside the cached change view.
        """
        return False

    def get_exclude(self, request, obj=None):
        excluded = list(super().get_exclude(request, obj) or ())
        return [*excluded, *(f for f in self.personal_data_fields if f not in excluded)]

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        exposed = sorted(set(self.personal_data_fields) & _declared_names(self))
        if exposed:
            errors.append(
                checks.Error(
                    f"{type(self).__name__} names personal-data fields {exposed}; "
                    "show them through masked_display() instead.",
                    obj=type(self),
                    id="common.E010",
                )
            )
        return errors


# --- Large tables --------------------------------------------------------------------------


class LargeTablePaginator(Paginator):
    """Paginator that estimates the count of an unfiltered, very large PostgreSQL table.

    `COUNT(*)` over ten million rows takes seconds on every page load; PostgreSQL's planner
    statistics (`pg_class.reltuples`, refreshed by autovacuum) answer at once. The estimate is
    used only when nothing filters the queryset and the table is at least `estimate_above`
    rows; every filtered list, and every other database, gets the exact count.
    """

    estimate_above = 100_000

    @cached_property
    def count(self):
        estimate = self._estimate()
        if estimate is not None and estimate >= self.estimate_above:
            return estimate
        return super().count

    def _estimate(self) -> int | None:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is None or query.where or query.distinct or query.is_sliced:
            return None
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


class RangeCalendarQuerySetMixin:
    """`dates()` / `datetimes()` answered from the field's MIN and MAX instead of a DISTINCT.

    The admin's date hierarchy asks for the distinct months (or days) that hold rows. On ten
    million invoices that DISTINCT reads every row — about 3.5 s per page load in a measurement
    on PostgreSQL 15 — while MIN and MAX are two probes of the field's index. The price: a
    period inside the range that has no rows is still offered (and then lists nothing).
    """

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        if kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, order, tzinfo)
        first, last = self._bounds(field_name)
        if first is None or last is None:
            return []
        if timezone.is_aware(first):
            first, last = timezone.localtime(first, tzinfo), timezone.localtime(last, tzinfo)
        starts = [
            datetime.combine(day, time.min, tzinfo=first.tzinfo)
            for day in _period_starts(first.date(), last.date(), kind)
        ]
        return starts if order == "ASC" else starts[::-1]

    def dates(self, field_name, kind, order="ASC"):
        if kind not in ("year", "month", "day"):
            return super().dates(field_name, kind, order)
        first, last = self._bounds(field_name)
        if first is None or last is None:
            return []
        starts = list(_period_starts(first, last, kind))
        return starts if order == "ASC" else starts[::-1]

    def _bounds(self, field_name):
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        return bounds["first"], bounds["last"]


def _period_starts(first: date, last: date, kind: str):
    """The first day of every year, month or day from `first`'s period to `last`'s."""
    if kind == "year":
        current = date(first.year, 1, 1)
    elif kind == "month":
        current = date(first.year, first.month, 1)
    else:
        current = first
    while current <= last:
        yield current
        if kind == "year":
            current = date(current.year + 1, 1, 1)
        elif kind == "month":
            current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
        else:
            current += timedelta(days=1)


@cache_function
def _range_calendar_class(queryset_class):
    return type(
        f"RangeCalendar{queryset_class.__name__}",
        (RangeCalendarQuerySetMixin, queryset_class),
        {},
    )


class LargeTableChangeList(ChangeList):
    """A changelist whose queryset draws the date hierarchy from MIN and MAX."""

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        queryset.__class__ = _range_calendar_class(type(queryset))
        return queryset


class LargeTableAdminMixin:
    """Changelist settings for tables of millions of rows: no second (unfiltered) count, an
    estimated count when nothing is filtered, and a date hierarchy without a DISTINCT scan."""

    show_full_result_count = False
    paginator = LargeTablePaginator

    def get_changelist(self, request, **kwargs):
        return LargeTableChangeList


class CachedDistinctValuesFilter(admin.SimpleListFilter):
    """A list filter offering the distinct non-empty values of `field_name`, cached.

    Django's default for a plain CharField (`AllValuesFieldListFilter`) runs a DISTINCT over
    the whole table on every page load; on an unindexed column of a ten-million-row table that
    is a full scan. Here the values are fetched at most once per `cache_seconds` (a new value
    shows up in the sidebar with that delay; filtering by it works at once through the URL).
    Subclasses set `title`, `parameter_name` and `field_name`.
    """

    field_name: str = ""
    cache_seconds = 600
    max_values = 200

    @classmethod
    def cache_key(cls, model) -> str:
        return f"admin:distinct:{model._meta.label_lower}:{cls.field_name}"

    def lookups(self, request, model_admin):
        model = model_admin.model
        key = self.cache_key(model)
        values = cache.get(key)
        if values is None:
            values = sorted(
                model._default_manager.exclude(**{self.field_name: ""})
                .order_by()
                .values_list(self.field_name, flat=True)
                .distinct()[: self.max_values]
            )
            cache.set(key, values, self.cache_seconds)
        return [(value, value) for value in values]

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(**{self.field_name: value})
        return queryset


# --- Search ---------------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")


def normalize_search_term(term: str) -> str:
    """Full-width ASCII folded to ASCII, all whitespace removed, upper case.

    Officials paste numbers from Chinese documents and input methods (`２６４１…`, spaces
    between digit groups); every exact-lookup search in the admin starts here.
    """
    return _WHITESPACE.sub("", to_halfwidth(term or "")).upper()


def parse_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except (ValueError, AttributeError):
        return None


# --- Actions that call services ----------------------------------------------------------


def run_service_action(
    model_admin: admin.ModelAdmin,
    request,
    queryset,
    call: Callable[[object], object],
    *,
    done_message: Callable[[int], str],
) -> int:
    """Run `call(obj)` — one service call, its own transaction — for each selected object.

    A domain error (such as a transition the table forbids) leaves that object unchanged and is
    reported with the object's name; the others still go through. Returns how many succeeded.
    """
    done = 0
    failed: list[str] = []
    for obj in queryset:
        try:
            call(obj)
        except DomainError as exc:
            failed.append(
                gettext("%(object)s was not changed: %(error)s")
                % {"object": obj, "error": exc.message}
            )
        else:
            done += 1
    for text in failed[:MAX_ACTION_ERRORS]:
        model_admin.message_user(request, text, messages.ERROR)
    if len(failed) > MAX_ACTION_ERRORS:
        more = len(failed) - MAX_ACTION_ERRORS
        model_admin.message_user(
            request,
            ngettext(
                "%(count)d more object was not changed.",
                "%(count)d more objects were not changed.",
                more,
            )
            % {"count": more},
            messages.ERROR,
        )
    if done:
        model_admin.message_user(request, done_message(done), messages.SUCCESS)
    return done


def form_action(model_admin, request, queryset, *, form_class, call, title, done_message):
    """An admin action that asks for input first (`form_class`), then runs
    `call(obj, cleaned_data)` — one service call — for each selected object, errors reported
    per object (`run_service_action`)."""
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            run_service_action(
                model_admin,
                request,
                queryset,
                lambda obj: call(obj, form.cleaned_data),
                done_message=done_message,
            )
            return None
    else:
        form = form_class()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "form": form,
        "queryset": queryset,
        "action": request.POST.get("action"),
    }
    return TemplateResponse(request, "admin/action_form.html", context)
