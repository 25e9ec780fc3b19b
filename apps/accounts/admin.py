"""Admin for staff accounts and for consumers (viewed masked, never edited here)."""

from __future__ import annotations

from django import forms
from django.apps import apps as django_apps
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from apps.common.admin import (
    LargeTableAdminMixin,
    PersonalDataAdminMixin,
    ReadOnlyAdminMixin,
    masked_display,
    normalize_search_term,
    parse_uuid,
    run_service_action,
)
from apps.common.exceptions import DomainError
from apps.common.masking import mask_id_number, mask_name, mask_phone

from .merchant_keys import REASON_MAX_LENGTH, merchant_key_issue, merchant_key_revoke
from .models import Consumer, MerchantAPIKey, MerchantKeyScope, User
from .services import AccountError, consumer_reveal_personal_data


class RevealForm(forms.Form):
    field = forms.ChoiceField(
        label=_("Field"),
        choices=[
            ("real_name", _("real name")),
            ("id_number", _("resident ID number")),
            ("phone", _("mobile phone")),
        ],
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Recorded in the audit trail, e.g. the complaint case number."),
    )


@admin.register(User)
class UserAdmin(LargeTableAdminMixin, DjangoUserAdmin):
    """Staff and consumer logins. Only a superuser grants superuser status or single
    permissions, or edits a superuser: a system administrator with `change_user` cannot raise
    their own privileges (roles are granted through groups)."""

    list_display = ("username", "is_staff", "is_active", "group_names", "last_login")
    list_filter = ("is_staff", "is_active", "groups")
    fieldsets = (
        *DjangoUserAdmin.fieldsets[:-1],
        (
            DjangoUserAdmin.fieldsets[-1][0],  # "Important dates"
            {"fields": ("last_login", "date_joined", "password_changed_at")},
        ),
    )
    readonly_fields = ("last_login", "date_joined", "password_changed_at")
    superuser_only_fields = ("is_superuser", "user_permissions")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    @admin.display(description=User._meta.get_field("groups").verbose_name)
    def group_names(self, obj):
        # Reads the prefetched groups: one query for the whole page.
        names = sorted(group.name for group in obj.groups.all())
        return ", ".join(names) or self.get_empty_value_display()

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += self.superuser_only_fields
        return readonly

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Consumer)
class ConsumerAdmin(
    PersonalDataAdminMixin, ReadOnlyAdminMixin, LargeTableAdminMixin, admin.ModelAdmin
):
    """Consumers as officials may see them: masked identity, statuses, dates.

    Consumers register through the app; identity, verification and status change only through
    services (with audit), so nothing here is editable. Search goes through the blind indexes:
    an exact resident ID number or phone number (full-width digits and spaces accepted), or the
    public ID — never a pattern match on ciphertext.
    """

    personal_data_fields = ("real_name", "id_number", "phone")

    masked_real_name = masked_display(Consumer, "real_name", mask_name)
    masked_id_number = masked_display(Consumer, "id_number", mask_id_number)
    masked_phone = masked_display(Consumer, "phone", mask_phone)

    list_display = (
        "public_id",
        "masked_real_name",
        "masked_id_number",
        "masked_phone",
        "verification_status",
        "status",
        "created_at",
    )
    list_display_links = ("public_id", "masked_real_name")
    list_filter = ("verification_status", "status", "created_at")
    # Sorting by a ciphertext column means nothing; offer only indexed, meaningful columns.
    sortable_by = ("verification_status", "status", "created_at")
    ordering = ("-created_at",)
    # Turns the search box on; `get_search_results` decides what a term matches.
    search_fields = ("=public_id",)
    search_help_text = _("Exact resident ID number, mobile phone number or public ID.")
    fieldsets = (
        (
            _("Identity (masked)"),
            {"fields": ("public_id", "masked_real_name", "masked_id_number", "masked_phone")},
        ),
        (
            _("Verification and status"),
            {"fields": ("verification_status", "verified_at", "status")},
        ),
        (_("Record"), {"fields": ("user", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "public_id",
        "masked_real_name",
        "masked_id_number",
        "masked_phone",
        "verification_status",
        "verified_at",
        "status",
        "user",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def can_reveal(self, request) -> bool:
        return request.user.has_perm("accounts.reveal_personal_data")

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/reveal/",
                self.admin_site.admin_view(self.reveal_view),
                name=f"{info[0]}_{info[1]}_reveal",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_reveal": self.can_reveal(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    @method_decorator(never_cache)
    def reveal_view(self, request, object_id):
        """Show one full value once, after a typed reason; the service audits it."""
        consumer = self.get_object(request, object_id)
        if consumer is None or not self.has_view_permission(request, consumer):
            raise Http404
        if not self.can_reveal(request):
            raise PermissionDenied
        form = RevealForm(request.POST or None)
        revealed = None
        if request.method == "POST" and form.is_valid():
            try:
                revealed = consumer_reveal_personal_data(
                    consumer=consumer,
                    field=form.cleaned_data["field"],
                    actor=request.user,
                    reason=form.cleaned_data["reason"],
                )
            except AccountError as exc:
                form.add_error(None, str(exc.message))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": consumer,
            "title": _("Reveal personal data"),
            "form": form,
            "revealed": revealed,
            "revealed_label": (
                dict(form.fields["field"].choices)[form.cleaned_data["field"]]
                if revealed is not None
                else None
            ),
        }
        return TemplateResponse(request, "admin/accounts/consumer/reveal.html", context)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        opts = self.model._meta
        # candidates() normalises (NFKC, no spaces or dashes, upper case) and hashes under every
        # configured blind-index key, so a search keeps working during a key rotation.
        condition = Q(id_number_index__in=opts.get_field("id_number_index").candidates(term)) | Q(
            phone_index__in=opts.get_field("phone_index").candidates(term)
        )
        public_id = parse_uuid(term)
        if public_id is not None:
            condition |= Q(public_id=public_id)
        return queryset.filter(condition), False


# --- Merchant API keys ------------------------------------------------------------------------


class MerchantKeyIssueForm(forms.Form):
    uscc = forms.CharField(
        label=_("Merchant's unified social credit code"),
        max_length=40,
        help_text=_("The merchant the key is for; it must be active."),
    )
    label = forms.CharField(
        label=_("Label"),
        max_length=MerchantAPIKey._meta.get_field("label").max_length,
        help_text=_("Where the key is used, e.g. “store 12 till system”."),
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=MerchantKeyScope.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    expires_at = forms.SplitDateTimeField(
        label=_("Expires at"),
        required=False,
        widget=AdminSplitDateTime,
        help_text=_("Leave empty for a key that is valid until revoked."),
    )

    def clean_uscc(self):
        from apps.merchants.models import Merchant
        from apps.merchants.validators import validate_uscc

        uscc = validate_uscc(self.cleaned_data["uscc"])
        merchant = Merchant.objects.filter(uscc=uscc).first()
        if merchant is None:
            raise forms.ValidationError(_("No merchant has this credit code."))
        self.cleaned_data["merchant"] = merchant
        return uscc


class MerchantKeyActionForm(ActionForm):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=REASON_MAX_LENGTH)


class MerchantKeyStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", _("Active")), ("expired", _("Expired")), ("revoked", _("Revoked"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if value == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if value == "active":
            return queryset.filter(revoked_at__isnull=True).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        return queryset


MERCHANT_KEY_STATUS_LABELS = {
    "active": _("Active"),
    "expired": _("Expired"),
    "revoked": _("Revoked"),
}


@admin.register(MerchantAPIKey)
class MerchantAPIKeyAdmin(admin.ModelAdmin):
    """Merchants' API keys: viewed, issued on their own page, revoked by an action.

    No key is added, edited or deleted as a row: the token hash and public key are never on a
    form, and the token and private key exist only on the page that issues them (a POST answer
    that is never cached and never stored). Issuing and revoking need their own permissions and
    go through the services, which audit them.
    """

    action_form = MerchantKeyActionForm
    actions = ("revoke",)
    list_display = (
        "masked_key_id",
        "merchant",
        "label",
        "scope_list",
        "status_display",
        "created_at",
        "expires_at",
        "last_used_at",
    )
    list_filter = (MerchantKeyStatusFilter, "created_at")
    list_select_related = ("merchant",)
    search_fields = ("=key_id", "merchant__name")
    search_help_text = _("Exact key ID, part of the merchant's name, or its credit code.")
    ordering = ("-created_at",)
    fields = (
        "key_id",
        "merchant",
        "label",
        "scope_list",
        "status_display",
        "public_key",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "revoked_by",
        "revoked_reason",
        "last_used_at",
        "last_used_ip",
    )
    readonly_fields = fields

    @admin.display(description=_("key ID"), ordering="key_id")
    def masked_key_id(self, obj):
        return obj.masked_key_id

    @admin.display(description=_("scopes"))
    def scope_list(self, obj):
        return ", ".join(obj.scopes or ()) or self.get_empty_value_display()

    @admin.display(description=_("status"))
    def status_display(self, obj):
        return MERCHANT_KEY_STATUS_LABELS[obj.status]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(key_id=term) | Q(merchant__name__icontains=term)
        code = normalize_search_term(term)
        if len(code) == 18:
            condition |= Q(merchant__uscc=code)
        return queryset.filter(condition), False

    # --- permissions ------------------------------------------------------------------------

    def has_add_permission(self, request):
        return False  # keys are issued on the issue page, which shows their secrets once

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_issue_permission(self, request) -> bool:
        return request.user.has_perm("accounts.issue_merchantapikey")

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("accounts.revoke_merchantapikey")

    # --- issuing ------------------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "issue/",
                self.admin_site.admin_view(self.issue_view),
                name=f"{info[0]}_{info[1]}_issue",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_issue": self.has_issue_permission(request)}
        return super().changelist_view(request, extra_context)

    @method_decorator(never_cache)
    def issue_view(self, request):
        """Issue a key and show its token and private key, on this one answer only."""
        if not self.has_issue_permission(request):
            raise PermissionDenied
        form = MerchantKeyIssueForm(request.POST or None)
        issued = None
        if request.method == "POST" and form.is_valid():
            try:
                issued = merchant_key_issue(
                    merchant=form.cleaned_data["merchant"],
                    label=form.cleaned_data["label"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.cleaned_data.get("expires_at"),
                    actor=request.user,
                )
            except DomainError as exc:
                form.add_error(None, str(exc.message))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Issue a merchant API key"),
            "form": form,
            "media": self.media + form.media,
            "issued": issued,
        }
        # never_cache marks the answer no-store: the secrets stay out of every cache.
        return TemplateResponse(request, "admin/accounts/merchantapikey/issue.html", context)

    # --- revoking -----------------------------------------------------------------------------

    @admin.action(description=_("Revoke selected keys (reason required)"), permissions=["revoke"])
    def revoke(self, request, queryset):
        reason = (request.POST.get("reason") or "").strip()
        if not reason:
            self.message_user(
                request, gettext("Enter the reason for revoking in the Reason box."), messages.ERROR
            )
            return
        run_service_action(
            self,
            request,
            queryset,
            lambda key: merchant_key_revoke(key=key, actor=request.user, reason=reason),
            done_message=lambda count: (
                ngettext("%(count)d key revoked.", "%(count)d keys revoked.", count)
                % {"count": count}
            ),
        )


if django_apps.is_installed("allauth.mfa"):
    import allauth.mfa.admin  # noqa: F401  (registers its admin first, so it can be replaced)
    from allauth.mfa.models import Authenticator

    admin.site.unregister(Authenticator)

    @admin.register(Authenticator)
    class AuthenticatorAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
        """Staff second factors without their secrets.

        allauth's own admin edits `data` (the encrypted TOTP secret, the recovery-code seed) as
        free JSON: whoever may change it could plant a secret they know on someone else's
        account. Here nothing is shown of it or written to it; deleting an authenticator (the
        reset after a lost phone, with the delete permission) is the one thing allowed.
        """

        list_display = ("user", "type", "created_at", "last_used_at")
        list_filter = ("type", "created_at", "last_used_at")
        list_select_related = ("user",)
        search_fields = ("user__username",)
        fields = ("user", "type", "created_at", "last_used_at")
        readonly_fields = fields

        def has_delete_permission(self, request, obj=None):
            return admin.ModelAdmin.has_delete_permission(self, request, obj)


if django_apps.is_installed("allauth.socialaccount"):
    from allauth.socialaccount import admin as _socialaccount_admin  # noqa: F401  (registers first)
    from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken

    # The city app is configured from the environment only (settings.SOCIALACCOUNT_PROVIDERS),
    # and links between consumers and the city app are made by sign-in alone: allauth's admin
    # would show client secrets and tokens in clear and let anyone with the permission add an
    # identity provider or re-point a link at another account.
    for _model in (SocialApp, SocialToken, SocialAccount):
        admin.site.unregister(_model)
