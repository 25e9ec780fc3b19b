"""The staff case desk: the pages complaint handlers work in all day, in the admin's look.

Mounted under the admin's path (`<ADMIN_URL>casework/`) and wrapped in `admin_site.admin_view`,
so the admin's sign-in, the staff second factor and the session limits apply as on every admin
page. Every page checks who may see what through `selectors`, every button is a POST form that
calls one service, and lists are paginated with a constant number of queries.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from apps.audit.models import AuditCategory
from apps.audit.services import audit_record
from apps.common.crypto import DecryptionError
from apps.common.exceptions import DomainError
from apps.common.masking import mask_account, mask_name, mask_phone

from . import forms as desk_forms
from . import selectors, services
from .calendar import load_calendar
from .choices import OPEN_STATUSES, CaseStatus
from .exceptions import CaseError
from .hotline import hotline_import
from .models import CaseAttachment, CaseQueueMembership, CaseSettings

PAGE_SIZE = 50


def _require_desk(request) -> None:
    if not selectors.may_use_desk(request.user):
        raise PermissionDenied


def _site_context(request) -> dict:
    """The admin's page context without its app list: the desk is a focused work page (no
    sidebar), and building the app list checks every model's permissions on each render."""
    site = admin.site
    script_name = request.META.get("SCRIPT_NAME", "")
    return {
        "site_title": site.site_title,
        "site_header": site.site_header,
        "site_url": script_name if site.site_url == "/" and script_name else site.site_url,
        "has_permission": site.has_permission(request),
        "available_apps": [],
        "is_popup": False,
        "is_nav_sidebar_enabled": False,
    }


def _context(request, title: str, **extra) -> dict:
    return {
        **_site_context(request),
        "title": title,
        "desk_nav": _nav(request),
        **extra,
    }


def _nav(request) -> list[dict]:
    user = request.user
    items = [
        ("mine", _("My cases"), "m"),
        ("queue", _("Team queue"), "q"),
        ("at_risk", _("Overdue and at risk"), "o"),
    ]
    if user.is_superuser or user.has_perm("complaints.add_case"):
        items += [("case_new", _("New case"), "c"), ("hotline_import", _("Import hotline"), "")]
    current = request.resolver_match.url_name if request.resolver_match else ""
    return [
        {"url": reverse(f"complaints:{name}"), "label": label, "key": key, "on": name == current}
        for name, label, key in items
    ]


class _KnownCountPaginator(Paginator):
    def __init__(self, *args, count: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.__dict__["count"] = count  # the cached_property, already known


class _CappedPaginator(Paginator):
    """Counts at most `cap` rows (`capped` says so): the overdue list can match most open
    cases on a bad day, and nobody pages through more than a few thousand of them."""

    cap = 5000

    @cached_property
    def count(self):
        counted = self.object_list.order_by().values("pk")[: self.cap + 1].count()
        self.capped = counted > self.cap
        return min(counted, self.cap)


def _page(request, queryset, *, count: int | None = None, capped: bool = False):
    if capped:
        paginator = _CappedPaginator(queryset, PAGE_SIZE)
    elif count is None:
        paginator = Paginator(queryset, PAGE_SIZE)
    else:
        paginator = _KnownCountPaginator(queryset, PAGE_SIZE, count=count)
    return paginator.get_page(request.GET.get("page"))


def _now_and_horizon(request):
    """Now, and the end of the warning period from now in working time (once per request)."""
    cached = getattr(request, "_case_horizon", None)
    if cached is None:
        now = timezone.now()
        config = CaseSettings.load()
        cal = load_calendar(around=now, config=config)
        cached = request._case_horizon = (now, cal.add_hours(now, float(config.warning_hours)))
    return cached


def _list_context(request, page, **extra):
    now, horizon = _now_and_horizon(request)
    query = request.GET.copy()
    query.pop("page", None)
    return {
        "page": page,
        "cases": list(page.object_list),
        "now": now,
        "horizon": horizon,
        "query": query.urlencode(),
        **extra,
    }


def _my_memberships(user):
    return list(
        CaseQueueMembership.objects.filter(user=user)
        .select_related("queue")
        .order_by("queue__name")
    )


# --- Lists -------------------------------------------------------------------------------------


def mine(request):
    _require_desk(request)
    page = _page(request, selectors.case_list_mine(user=request.user))
    return TemplateResponse(
        request,
        "complaints/desk/list.html",
        _context(
            request,
            gettext("My cases"),
            **_list_context(request, page, memberships=_my_memberships(request.user)),
            empty=gettext("No open case is assigned to you."),
        ),
    )


def queue(request):
    _require_desk(request)
    user = request.user
    queues = list(selectors.queue_choices_for(user))
    queue_ids = [q.pk for q in queues]
    members = list(
        CaseQueueMembership.objects.filter(queue_id__in=queue_ids)
        .select_related("user")
        .order_by("user__username")
    )
    form = desk_forms.QueueFilterForm(request.GET or None, queues=queues, members=members)
    filters = selectors.QueueFilter()
    if form.is_valid():
        data = form.cleaned_data
        assignee = data.get("assignee") or ""
        filters = selectors.QueueFilter(
            queue_id=data.get("queue"),
            status=data.get("status") or "",
            kind=data.get("kind") or "",
            unassigned=assignee == "none",
            assignee_id=int(assignee) if assignee.isdigit() else None,
        )
    overview = selectors.queue_overview(queue_ids=queue_ids)
    unfiltered = filters == selectors.QueueFilter()
    page = _page(
        request,
        selectors.case_list_queue(user=user, filters=filters),
        # Unfiltered, the overview has just counted the very same rows.
        count=overview.open if unfiltered else None,
    )
    supervised = (
        queue_ids
        if user.is_superuser
        else [qid for qid in queue_ids if selectors.is_supervisor_of(user, qid)]
    )
    team = selectors.workload(queue_ids=supervised, overview=overview) if supervised else []
    totals = {
        "open": overview.open,
        "unassigned": overview.unassigned,
        "escalated": overview.escalated,
    }
    return TemplateResponse(
        request,
        "complaints/desk/queue.html",
        _context(
            request,
            gettext("Team queue"),
            **_list_context(request, page, form=form, team=team, totals=totals),
            empty=gettext("No open case matches."),
        ),
    )


def at_risk(request):
    _require_desk(request)
    now, horizon = _now_and_horizon(request)
    page = _page(
        request,
        selectors.case_list_at_risk(user=request.user, now=now, horizon=horizon),
        capped=True,
    )
    return TemplateResponse(
        request,
        "complaints/desk/list.html",
        _context(
            request,
            gettext("Overdue and at risk"),
            **_list_context(request, page),
            empty=gettext("No case is overdue or due soon."),
            intro=gettext(
                "Open cases whose first response or resolution is overdue or due within the "
                "warning period (working time)."
            ),
        ),
    )


@require_POST
def availability(request):
    _require_desk(request)
    membership = get_object_or_404(CaseQueueMembership, pk=request.POST.get("membership"))
    try:
        services.membership_set_available(
            membership=membership,
            available=request.POST.get("available") == "1",
            actor=request.user,
        )
    except DomainError as exc:
        messages.error(request, str(exc.message))
    return HttpResponseRedirect(reverse("complaints:mine"))


# --- One case ----------------------------------------------------------------------------------


def _masked(value_getter, mask) -> str:
    try:
        return mask(value_getter()) or "—"
    except DecryptionError:
        return gettext("(cannot decrypt)")


def _admin_link(user, obj) -> str:
    if obj is None:
        return ""
    opts = obj._meta
    if not user.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
        return ""
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except Exception:
        return ""


def _linked_records(user, case) -> list[dict]:
    """What the case is about, with personal data masked."""
    rows = []
    if case.consumer_id:
        consumer = case.consumer
        rows.append(
            {
                "label": _("Consumer"),
                "value": " · ".join(
                    (
                        _masked(lambda: consumer.real_name, mask_name),
                        _masked(lambda: consumer.phone, mask_phone),
                    )
                ),
                "link": _admin_link(user, consumer),
            }
        )
    if case.caller_phone or case.caller_name:
        rows.append(
            {
                "label": _("Caller"),
                "value": " · ".join(
                    (
                        _masked(lambda: case.caller_name, mask_name),
                        _masked(lambda: case.caller_phone, mask_phone),
                    )
                ),
                "link": "",
            }
        )
    if case.invoice_id:
        inv = case.invoice
        rows.append(
            {
                "label": _("Invoice"),
                "value": f"{inv.number} · {inv.seller_name} · {inv.total} · "
                f"{inv.get_status_display()} · " + _masked(lambda: inv.buyer_name, mask_name),
                "link": _admin_link(user, inv),
            }
        )
    if case.award_id:
        award = case.award
        rows.append(
            {
                "label": _("Award"),
                "value": f"{award.name} · {award.amount} · {award.get_status_display()}",
                "link": _admin_link(user, award),
            }
        )
    if case.payout_id:
        payout = case.payout
        rows.append(
            {
                "label": _("Payout"),
                "value": f"{payout.request_no} · {payout.amount} · "
                f"{payout.get_status_display()} · "
                + _masked(lambda: payout.account.account_no, mask_account),
                "link": _admin_link(user, payout),
            }
        )
    if case.merchant_id:
        merchant = case.merchant
        rows.append(
            {
                "label": _("Merchant"),
                "value": f"{merchant.name} · {merchant.uscc} · {merchant.get_status_display()}",
                "link": _admin_link(user, merchant),
            }
        )
    if case.reported_merchant_name:
        rows.append(
            {"label": _("Merchant as reported"), "value": case.reported_merchant_name, "link": ""}
        )
    if case.draw_id:
        draw = case.draw
        rows.append(
            {
                "label": _("Periodic draw"),
                "value": f"{draw.code} · {draw.name} · {draw.get_status_display()}",
                "link": _admin_link(user, draw),
            }
        )
    return rows


def _action_forms(request, case, *, bound=None) -> dict:
    """The forms of the case page; `bound` replaces one of them by its submitted copy."""
    user = request.user
    can_handle = selectors.is_handler_of(user, case)
    can_supervise = selectors.is_supervisor_of(user, case.queue_id)
    forms_ = {}
    if can_handle:
        forms_["reply"] = desk_forms.ReplyForm(
            prefix="reply",
            canned=list(selectors.canned_replies_for(kind=case.kind)),
            articles=selectors.faq_published(),
        )
        forms_["note"] = desk_forms.NoteForm(prefix="note")
        forms_["resolve"] = desk_forms.ResolveForm(prefix="resolve")
        forms_["escalate"] = desk_forms.EscalateForm(prefix="escalate")
        forms_["reopen"] = desk_forms.ReopenForm(prefix="reopen")
        forms_["link"] = desk_forms.LinkForm(prefix="link")
    if can_supervise:
        forms_["reassign"] = desk_forms.ReassignForm(
            prefix="reassign", members=list(selectors.queue_members(queue_id=case.queue_id))
        )
    if bound is not None:
        name, form = bound
        forms_[name] = form
    return {"forms": forms_, "can_handle": can_handle, "can_supervise": can_supervise}


def case_detail(request, reference, *, bound=None, status=200):
    _require_desk(request)
    case = _get_case(request, reference)
    now = timezone.now()
    config = CaseSettings.load()
    context = _context(
        request,
        f"{case.reference} · {case.subject}",
        case=case,
        now=now,
        timeline=selectors.case_timeline(case=case),
        linked=_linked_records(request.user, case),
        reopen_until=services.reopen_deadline(case, config),
        is_open=case.status in OPEN_STATUSES,
        statuses=CaseStatus,
        **_action_forms(request, case, bound=bound),
    )
    return TemplateResponse(request, "complaints/desk/case.html", context, status=status)


def _get_case(request, reference):
    """The case if `request.user` may see it; otherwise 404 (whether it exists is not told)."""
    try:
        return selectors.case_get_visible(user=request.user, reference=reference)
    except CaseError:
        raise Http404 from None


def _form(name, request, case):
    """The submitted form of action `name`, bound to the POST data."""
    if name == "reply":
        return desk_forms.ReplyForm(
            request.POST,
            request.FILES,
            prefix="reply",
            canned=list(selectors.canned_replies_for(kind=case.kind)),
            articles=selectors.faq_published(),
        )
    if name == "reassign":
        return desk_forms.ReassignForm(
            request.POST,
            prefix="reassign",
            members=list(selectors.queue_members(queue_id=case.queue_id)),
        )
    classes = {
        "note": desk_forms.NoteForm,
        "resolve": desk_forms.ResolveForm,
        "escalate": desk_forms.EscalateForm,
        "reopen": desk_forms.ReopenForm,
        "link": desk_forms.LinkForm,
    }
    if name in classes:
        return classes[name](request.POST, request.FILES, prefix=name)
    return None


def _link_targets(data) -> dict:
    from apps.draws.models import PeriodicDraw
    from apps.invoices.models import Invoice
    from apps.merchants.models import Merchant

    links = {}
    if data.get("merchant_uscc"):
        links["merchant"] = Merchant.objects.filter(uscc=data["merchant_uscc"].upper()).first()
        if links["merchant"] is None:
            raise CaseError("case.link_not_found", detail={"field": "merchant_uscc"})
    if data.get("invoice_number"):
        links["invoice"] = (
            Invoice.objects.filter(number=data["invoice_number"]).order_by("-submitted_at").first()
        )
        if links["invoice"] is None:
            raise CaseError("case.link_not_found", detail={"field": "invoice_number"})
    if data.get("draw_code"):
        links["draw"] = PeriodicDraw.objects.filter(code=data["draw_code"]).first()
        if links["draw"] is None:
            raise CaseError("case.link_not_found", detail={"field": "draw_code"})
    return links


DONE_MESSAGES = {
    "take": _("You took the case."),
    "reply": _("Reply sent."),
    "note": _("Note added."),
    "await": _("Waiting for the consumer; the clock is stopped."),
    "resolve": _("Case resolved."),
    "close": _("Case closed."),
    "reopen": _("Case reopened."),
    "reassign": _("Case reassigned."),
    "escalate": _("Case escalated to the supervisors."),
    "link": _("Records linked."),
}


@require_POST
def case_action(request, reference, action):
    """One button of the case page: parse the form, call one service, redirect back."""
    _require_desk(request)
    if action not in DONE_MESSAGES:
        raise PermissionDenied
    case = _get_case(request, reference)
    user = request.user
    form = _form(action, request, case)
    if form is not None and not form.is_valid():
        return case_detail(request, reference, bound=(action, form), status=400)
    data = form.cleaned_data if form is not None else {}
    try:
        if data.get("file"):
            services.attachment_check(data["file"])  # before the message goes out
        if action == "take":
            services.case_take(case=case, actor=user)
        elif action == "reply":
            message = services.case_reply(
                case=case,
                actor=user,
                body=data.get("body", ""),
                article=data.get("article"),
                await_consumer=data.get("await_consumer", False),
            )
            if data.get("file"):
                services.attachment_add(case=case, upload=data["file"], actor=user, message=message)
        elif action == "note":
            message = services.case_note(case=case, actor=user, body=data["body"])
            if data.get("file"):
                services.attachment_add(
                    case=case, upload=data["file"], actor=user, message=message, is_public=False
                )
        elif action == "await":
            services.case_await_consumer(case=case, actor=user)
        elif action == "resolve":
            services.case_resolve(
                case=case, actor=user, outcome=data["outcome"], summary=data.get("summary", "")
            )
        elif action == "close":
            services.case_close(case=case, actor=user)
        elif action == "reopen":
            services.case_reopen(case=case, actor=user, reason=data.get("reason", ""))
        elif action == "reassign":
            assignee = None
            if data.get("assignee"):
                assignee = get_object_or_404(
                    CaseQueueMembership, queue_id=case.queue_id, user_id=data["assignee"]
                ).user
            services.case_assign(
                case=case, actor=user, assignee=assignee, reason=data.get("reason", "")
            )
        elif action == "escalate":
            services.case_escalate(case=case, actor=user, reason=data["reason"])
        elif action == "link":
            services.case_link(case=case, actor=user, **_link_targets(data))
    except DomainError as exc:
        if exc.status_code == 403:
            raise PermissionDenied from exc
        messages.error(request, str(exc.message))
    else:
        messages.success(request, str(DONE_MESSAGES[action]))
    return HttpResponseRedirect(reverse("complaints:case_detail", args=[case.reference]))


def attachment_download(request, uid):
    """Staff download of an attachment: only for who may see the case; audited."""
    _require_desk(request)
    attachment = get_object_or_404(CaseAttachment.objects.select_related("case"), uid=uid)
    _get_case(request, attachment.case.reference)
    audit_record(
        action="case.attachment_downloaded",
        category=AuditCategory.REVEAL,
        target=attachment.case,
        actor=request.user,
        after={"attachment": str(attachment.uid)},
    )
    from .api.views import attachment_response

    return attachment_response(attachment)


# --- Entry and import --------------------------------------------------------------------------


def _require_add(request):
    _require_desk(request)
    if not (request.user.is_superuser or request.user.has_perm("complaints.add_case")):
        raise PermissionDenied


def case_new(request):
    """A case taken on the 12345 hotline or entered by staff."""
    _require_add(request)
    form = desk_forms.CaseEntryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            links = _link_targets(
                {
                    "merchant_uscc": data.get("merchant_uscc"),
                    "invoice_number": data.get("invoice_number"),
                }
            )
            case = services.case_open(
                kind=data["category"].kind,
                category=data["category"],
                channel=data["channel"],
                actor=request.user,
                subject=data["subject"],
                description=data.get("description", ""),
                caller_name=data.get("caller_name", ""),
                caller_phone=data.get("caller_phone", ""),
                hotline_ticket=data.get("hotline_ticket") or None,
                opened_at=data.get("received_at"),
                priority=data.get("priority"),
                reported_merchant_name=data.get("merchant_name", ""),
                **links,
            )
        except DomainError as exc:
            field = exc.detail.get("field") if isinstance(exc.detail, dict) else None
            form.add_error(field if field in form.fields else None, str(exc.message))
        else:
            messages.success(request, gettext("Case %(ref)s opened.") % {"ref": case.reference})
            return HttpResponseRedirect(reverse("complaints:case_detail", args=[case.reference]))
    return TemplateResponse(
        request,
        "complaints/desk/form.html",
        _context(request, gettext("New case"), form=form, submit_label=gettext("Open the case")),
    )


def hotline_import_view(request):
    _require_add(request)
    form = desk_forms.HotlineImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            report = hotline_import(
                data=upload.read(), actor=request.user, file_name=upload.name or ""
            )
        except DomainError as exc:
            form.add_error("file", str(exc.message))
    return TemplateResponse(
        request,
        "complaints/desk/hotline_import.html",
        _context(request, gettext("Import hotline tickets"), form=form, report=report),
    )
