"""Admin for staff accounts and for consumers (viewed masked, never edited here)."""

from __future__ import annotations

from django import forms
from django.apps import apps as django_apps
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache

from apps.common.admin import (
    LargeTableAdminMixin,
    PersonalDataAdminMixin,
    ReadOnlyAdminMixin,
    masked_display,
    parse_uuid,
)
from apps.common.masking import mask_id_number, mask_name, mask_phone

from .models import Consumer, User
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
