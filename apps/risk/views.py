"""The risk desk: review queue, evidence pages, merchant profile and rule configuration, in the
admin's look.

Mounted under the admin's path (`<ADMIN_URL>riskdesk/`) through `admin.site.admin_view` (the
admin's sign-in with the staff second factor, staff only, no caching, CSRF). Every button is a
POST that calls one service; each page checks its permission.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from apps.common.exceptions import DomainError
from apps.invoices.models import Invoice
from apps.merchants.models import Merchant

from . import selectors, services
from .choices import ListKind, RuleCode, SubjectKind
from .models import RiskAlert, RiskConfigChange
from .rules import RULE_DEFAULTS, current_config

PAGE_SIZE = 50


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=300, min_length=2)


class RuleForm(forms.Form):
    code = forms.ChoiceField(choices=RuleCode.choices)
    enabled = forms.BooleanField(label=_("Enabled"), required=False)
    weight = forms.IntegerField(label=_("Points"), min_value=0, max_value=100000)
    params = forms.JSONField(label=_("Thresholds"), required=False)
    reason = forms.CharField(label=_("Reason"), max_length=300, min_length=2)


class SettingsForm(forms.Form):
    hold_score = forms.IntegerField(label=_("Hold at score"), min_value=1)
    block_score = forms.IntegerField(label=_("Block at score"), min_value=2)
    feature_z = forms.DecimalField(label=_("Feature z counted"), min_value=0, max_digits=5)
    alert_z = forms.DecimalField(label=_("Alert at z"), min_value=0, max_digits=5)
    alert_min_features = forms.IntegerField(label=_("Features needed"), min_value=1)
    reversal_fdr = forms.DecimalField(
        label=_("Reversal test false-discovery rate"),
        min_value=0,
        max_digits=4,
        decimal_places=3,
        required=False,
    )
    reversal_link_min = forms.IntegerField(
        label=_("Shared returns that link two consumers"), min_value=0, required=False
    )
    reversal_large_share = forms.DecimalField(
        label=_("Dearest share of entries counted as large"),
        min_value=0,
        max_value=Decimal("0.5"),
        max_digits=4,
        decimal_places=3,
        required=False,
    )
    reason = forms.CharField(label=_("Reason"), max_length=300, min_length=2)


def _require(request, *perms: str) -> None:
    if not selectors.may_use_desk(request.user):
        raise PermissionDenied
    if perms and not any(request.user.has_perm(p) for p in perms):
        raise PermissionDenied


def _context(request, title: str, **extra) -> dict:
    site = admin.site
    return {
        "site_title": site.site_title,
        "site_header": site.site_header,
        "site_url": site.site_url,
        "has_permission": site.has_permission(request),
        "available_apps": [],
        "is_popup": False,
        "is_nav_sidebar_enabled": False,
        "title": title,
        "desk_nav": [
            (reverse("risk:queue"), _("Review queue")),
            (reverse("risk:alerts"), _("Alerts")),
            (reverse("risk:config"), _("Rules and thresholds")),
        ],
        **extra,
    }


def _page(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def queue(request):
    _require(request)
    page = _page(request, selectors.held_invoice_list())
    return TemplateResponse(
        request,
        "admin/risk/desk/queue.html",
        _context(request, gettext("Held invoices"), page=page),
    )


def alerts(request):
    _require(request, "risk.view_riskalert")
    kind = request.GET.get("kind", "")
    if kind not in SubjectKind.values:
        kind = ""
    page = _page(request, selectors.open_alert_list(kind=kind))
    return TemplateResponse(
        request,
        "admin/risk/desk/alerts.html",
        _context(request, gettext("Open alerts"), page=page, kinds=SubjectKind.choices, kind=kind),
    )


def invoice_detail(request, pk: int):
    _require(request)
    invoice = get_object_or_404(Invoice.objects.select_related("merchant", "consumer"), pk=pk)
    return TemplateResponse(
        request,
        "admin/risk/desk/invoice.html",
        _context(
            request,
            gettext("Evidence for invoice %(number)s") % {"number": invoice.number},
            invoice=invoice,
            may_review=request.user.has_perm("invoices.review_invoice"),
            may_handle=request.user.has_perm("risk.handle_riskalert"),
            **selectors.invoice_evidence(invoice),
        ),
    )


def _done(request, url: str, message) -> HttpResponseRedirect:
    messages.success(request, message)
    return HttpResponseRedirect(url)


def _refused(request, url: str, exc: DomainError) -> HttpResponseRedirect:
    messages.error(request, f"{exc.message} ({exc.code})")
    return HttpResponseRedirect(url)


def _blacklist_consumer(consumer, actor, reason: str) -> int:
    added = 0
    for kind, value, label in services.watch_values_for_consumer(consumer):
        services.watch_add(kind=kind, value=value, label=label, actor=actor, reason=reason)
        added += 1
    return added


@require_POST
def invoice_action(request, pk: int, action: str):
    _require(request)
    invoice = get_object_or_404(Invoice.objects.select_related("merchant", "consumer"), pk=pk)
    url = reverse("risk:invoice", args=[pk])
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("Give a reason (at least two characters)."))
        return HttpResponseRedirect(url)
    reason, user = form.cleaned_data["reason"], request.user
    try:
        if action in ("release", "reject"):
            if not user.has_perm("invoices.review_invoice"):
                raise PermissionDenied
            services.risk_invoice_review(
                invoice=invoice, accept=action == "release", actor=user, reason=reason
            )
            return _done(request, url, gettext("Decision recorded; the consumer is notified."))
        if not user.has_perm("risk.handle_riskalert"):
            raise PermissionDenied
        if action == "blacklist_consumer":
            n = _blacklist_consumer(invoice.consumer, user, reason)
            return _done(request, url, gettext("%(n)d watch-list entries active.") % {"n": n})
        if action == "blacklist_merchant" and invoice.seller_uscc:
            services.watch_add(
                kind=ListKind.MERCHANT,
                value=invoice.seller_uscc,
                label=invoice.seller_name,
                actor=user,
                reason=reason,
            )
            return _done(request, url, gettext("The merchant is blacklisted."))
        if action == "case":
            case = services.risk_case_open(
                actor=user,
                subject=reason,
                description=gettext("Opened from the risk desk for invoice %(number)s.")
                % {"number": invoice.number},
                invoice=invoice,
                merchant=invoice.merchant,
                consumer=invoice.consumer,
            )
            return _done(request, url, gettext("Case %(ref)s opened.") % {"ref": case.reference})
    except DomainError as exc:
        return _refused(request, url, exc)
    raise PermissionDenied


def alert_detail(request, pk: int):
    _require(request, "risk.view_riskalert")
    alert = get_object_or_404(RiskAlert.objects.select_related("merchant", "consumer"), pk=pk)
    return TemplateResponse(
        request,
        "admin/risk/desk/alert.html",
        _context(
            request,
            gettext("Alert %(id)s") % {"id": alert.pk},
            alert=alert,
            may_handle=request.user.has_perm("risk.handle_riskalert"),
        ),
    )


@require_POST
def alert_action(request, pk: int, action: str):
    _require(request, "risk.handle_riskalert")
    alert = get_object_or_404(RiskAlert.objects.select_related("merchant", "consumer"), pk=pk)
    url = reverse("risk:alert", args=[pk])
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("Give a reason (at least two characters)."))
        return HttpResponseRedirect(url)
    reason, user = form.cleaned_data["reason"], request.user
    try:
        if action in ("confirm", "dismiss"):
            services.risk_alert_close(
                alert=alert, confirmed=action == "confirm", actor=user, note=reason
            )
            return _done(request, url, gettext("Alert closed."))
        if action == "blacklist":
            if alert.merchant is not None:
                services.watch_add(
                    kind=ListKind.MERCHANT,
                    value=alert.merchant.uscc,
                    label=alert.merchant.name,
                    actor=user,
                    reason=reason,
                )
            from apps.accounts.models import Consumer

            ids = alert.members or ([alert.consumer_id] if alert.consumer_id else [])
            for consumer in Consumer.objects.filter(pk__in=ids[:200]):
                _blacklist_consumer(consumer, user, reason)
            return _done(request, url, gettext("Blacklisted."))
        if action == "case":
            case = services.risk_case_open(
                actor=user,
                subject=reason,
                description=gettext("Opened from risk alert %(id)s.") % {"id": alert.pk},
                merchant=alert.merchant,
                consumer=alert.consumer,
            )
            return _done(request, url, gettext("Case %(ref)s opened.") % {"ref": case.reference})
    except DomainError as exc:
        return _refused(request, url, exc)
    raise PermissionDenied


def merchant_profile(request, pk: int):
    _require(request, "risk.view_riskalert")
    merchant = get_object_or_404(Merchant, pk=pk)
    return TemplateResponse(
        request,
        "admin/risk/desk/merchant.html",
        _context(
            request,
            gettext("Risk profile of %(name)s") % {"name": merchant.name},
            merchant=merchant,
            **selectors.merchant_profile(merchant),
        ),
    )


def config(request):
    _require(request, "risk.view_riskrule")
    may_change = request.user.has_perm("risk.change_riskrule")
    if request.method == "POST":
        if not may_change:
            raise PermissionDenied
        url = reverse("risk:config")
        try:
            if "hold_score" in request.POST:
                form = SettingsForm(request.POST)
                if form.is_valid():
                    data = dict(form.cleaned_data)
                    reason = data.pop("reason")
                    services.risk_settings_update(actor=request.user, reason=reason, **data)
                    return _done(request, url, gettext("Thresholds saved."))
            else:
                form = RuleForm(request.POST)
                if form.is_valid():
                    data = form.cleaned_data
                    services.risk_rule_update(
                        code=data["code"],
                        enabled=data["enabled"],
                        weight=data["weight"],
                        params=data["params"] or {},
                        actor=request.user,
                        reason=data["reason"],
                    )
                    return _done(request, url, gettext("Rule saved."))
        except DomainError as exc:
            return _refused(request, url, exc)
        messages.error(
            request,
            gettext("Please correct the values: %(errors)s") % {"errors": form.errors.as_text()},
        )
        return HttpResponseRedirect(url)
    cfg = current_config()
    settings_row = services.risk_settings_get()
    rules = [
        {
            "code": code,
            "label": RuleCode(code).label,
            "enabled": cfg.rules[code].enabled,
            "weight": cfg.rules[code].weight,
            "params_json": json.dumps(cfg.rules[code].params),
            "default_weight": RULE_DEFAULTS[code][0],
        }
        for code in RULE_DEFAULTS
    ]
    history = RiskConfigChange.objects.select_related("actor")[:50]
    return TemplateResponse(
        request,
        "admin/risk/desk/config.html",
        _context(
            request,
            gettext("Risk rules and thresholds"),
            rules=rules,
            settings_row=settings_row,
            history=history,
            may_change=may_change,
        ),
    )
