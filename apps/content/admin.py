"""Back office of the campaign's publicity: articles through their editorial workflow, their
images and the winners' consents.

Text is edited only in draft, through a form whose cleaning is the service's (sanitised, alt
text checked); every status change is an action that calls one service per article (submit,
approve, return to draft, schedule, publish, archive), so the two-person rule and the audit
trail hold here as everywhere. Images and consents are added through services and never edited.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from apps.common.admin import (
    PersonalDataAdminMixin,
    ReadOnlyTabularInline,
    form_action,
    run_service_action,
)
from apps.common.exceptions import DomainError

from . import services
from .choices import EDITABLE_STATUSES, ArticleKind, ArticleStatus, ConsentScope
from .images import reencode_image
from .models import Article, ArticleImage, ArticleStatusChange, WinnerConsent
from .sanitize import images_without_alt, sanitize_html


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=300)


class ScheduleForm(forms.Form):
    publish_at = forms.DateTimeField(
        label=_("publish at"),
        help_text=_("Local time, e.g. 2026-12-01 09:00."),
        input_formats=["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"],
    )


class ArticleForm(forms.ModelForm):
    body = forms.CharField(
        label=_("text"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 20, "cols": 100}),
        help_text=_(
            "HTML: paragraphs, headings h2–h4, lists, tables, links and images uploaded here "
            "(with alt text). Anything else is removed on save."
        ),
    )

    class Meta:
        model = Article
        fields = ["kind", "title", "summary", "body"]

    def clean_body(self):
        body = sanitize_html(self.cleaned_data.get("body", ""))
        if images_without_alt(body):
            raise forms.ValidationError(services.ContentError("article.image_alt_missing").message)
        return body


class HistoryInline(ReadOnlyTabularInline):
    model = ArticleStatusChange
    fields = ("created_at", "from_status", "to_status", "actor", "reason", "digest")
    readonly_fields = fields


class ImageInline(ReadOnlyTabularInline):
    model = ArticleImage
    fields = ("alt_text", "path_display", "content_type", "width", "height", "size")
    readonly_fields = fields

    @admin.display(description=_("path for the text"))
    def path_display(self, obj):
        return format_html("<code>{}</code>", obj.path)


class ConsentInline(ReadOnlyTabularInline):
    model = WinnerConsent
    fields = ("masked", "scope", "consented_at", "evidence", "recorded_by", "withdrawn_at")
    readonly_fields = fields

    @admin.display(description=_("winner"))
    def masked(self, obj):
        return obj.masked_name


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    form = ArticleForm
    list_display = (
        "title",
        "kind",
        "status",
        "author",
        "approved_by",
        "publish_at",
        "published_at",
    )
    list_filter = ("status", "kind")
    search_fields = ("title",)
    date_hierarchy = "created_at"
    list_select_related = ("author", "approved_by")
    inlines = [ImageInline, ConsentInline, HistoryInline]
    actions = [
        "submit_selected",
        "approve_selected",
        "return_selected",
        "schedule_selected",
        "unschedule_selected",
        "publish_selected",
        "archive_selected",
    ]
    WORKFLOW_FIELDS = (
        "status",
        "author",
        "last_edited_by",
        "submitted_at",
        "approved_by",
        "approved_at",
        "publish_at",
        "published_at",
        "archived_at",
        "public_page",
    )

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.status not in EDITABLE_STATUSES:
            return ("kind", "title", "summary", "body_display", *self.WORKFLOW_FIELDS)
        return self.WORKFLOW_FIELDS

    def get_fields(self, request, obj=None):
        if obj is not None and obj.status not in EDITABLE_STATUSES:
            return ("kind", "title", "summary", "body_display", *self.WORKFLOW_FIELDS)
        if obj is None:
            return ("kind", "title", "summary", "body")
        return ("kind", "title", "summary", "body", *self.WORKFLOW_FIELDS)

    @admin.display(description=_("text"))
    def body_display(self, obj):
        # Stored sanitised (allow-list); shown as the public sees it.
        return format_html('<div class="article-body">{}</div>', obj.body and _Safe(obj.body))

    @admin.display(description=_("public page"))
    def public_page(self, obj):
        if obj.status != ArticleStatus.PUBLISHED:
            return "—"
        from django.urls import reverse

        url = reverse("content:article", kwargs={"public_id": obj.public_id})
        return format_html('<a href="{}">{}</a>', url, url)

    def has_delete_permission(self, request, obj=None):
        return False  # articles are archived, never deleted: their history stays

    def has_change_permission(self, request, obj=None):
        # Out of draft the page is a read-only detail view (no Save buttons): the text is
        # frozen until the article is returned to draft by an action.
        if obj is not None and obj.status not in EDITABLE_STATUSES:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = services.article_update(
                article=obj,
                actor=request.user,
                kind=data["kind"],
                title=data["title"],
                summary=data.get("summary", ""),
                body=data.get("body", ""),
            )
        else:
            saved = services.article_create(
                kind=data["kind"],
                title=data["title"],
                summary=data.get("summary", ""),
                body=data.get("body", ""),
                actor=request.user,
            )
        obj.pk = saved.pk
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_REVIEW)

    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_PUBLISH)

    def _run(self, request, queryset, call, done_message):
        run_service_action(self, request, queryset, call, done_message=done_message)

    @admin.action(description=_("Submit selected drafts for review"), permissions=["change"])
    def submit_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda a: services.article_submit(article=a, actor=request.user),
            lambda n: (
                ngettext(
                    "%(count)d article submitted for review.",
                    "%(count)d articles submitted for review.",
                    n,
                )
                % {"count": n}
            ),
        )

    @admin.action(description=_("Approve selected articles"), permissions=["review"])
    def approve_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda a: services.article_approve(article=a, actor=request.user),
            lambda n: (
                ngettext("%(count)d article approved.", "%(count)d articles approved.", n)
                % {"count": n}
            ),
        )

    @admin.action(description=_("Return selected articles to draft"), permissions=["review"])
    def return_selected(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            form_class=ReasonForm,
            call=lambda a, data: services.article_return_to_draft(
                article=a, actor=request.user, reason=data["reason"]
            ),
            title=gettext("Return to draft"),
            done_message=lambda n: (
                ngettext(
                    "%(count)d article returned to draft.",
                    "%(count)d articles returned to draft.",
                    n,
                )
                % {"count": n}
            ),
        )

    @admin.action(description=_("Schedule selected approved articles"), permissions=["publish"])
    def schedule_selected(self, request, queryset):
        def schedule(article, data):
            publish_at = data["publish_at"]
            if timezone.is_naive(publish_at):
                publish_at = timezone.make_aware(publish_at)
            services.article_schedule(article=article, publish_at=publish_at, actor=request.user)

        return form_action(
            self,
            request,
            queryset,
            form_class=ScheduleForm,
            call=schedule,
            title=gettext("Schedule publication"),
            done_message=lambda n: (
                ngettext("%(count)d article scheduled.", "%(count)d articles scheduled.", n)
                % {"count": n}
            ),
        )

    @admin.action(
        description=_("Cancel the schedule of selected articles"), permissions=["publish"]
    )
    def unschedule_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda a: services.article_unschedule(article=a, actor=request.user),
            lambda n: (
                ngettext("%(count)d article unscheduled.", "%(count)d articles unscheduled.", n)
                % {"count": n}
            ),
        )

    @admin.action(description=_("Publish selected articles now"), permissions=["publish"])
    def publish_selected(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda a: services.article_publish(article=a, actor=request.user),
            lambda n: (
                ngettext("%(count)d article published.", "%(count)d articles published.", n)
                % {"count": n}
            ),
        )

    @admin.action(description=_("Archive selected articles"), permissions=["publish"])
    def archive_selected(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            form_class=ReasonForm,
            call=lambda a, data: services.article_archive(
                article=a, actor=request.user, reason=data["reason"]
            ),
            title=gettext("Archive articles"),
            done_message=lambda n: (
                ngettext("%(count)d article archived.", "%(count)d articles archived.", n)
                % {"count": n}
            ),
        )


class _Safe(str):
    """Marks already-sanitised HTML as safe for `format_html`."""

    def __html__(self):
        return str(self)


class ArticleImageForm(forms.ModelForm):
    upload = forms.FileField(
        label=_("image"), help_text=_("JPEG, PNG or WebP, at most 5 MB; it is re-encoded.")
    )

    class Meta:
        model = ArticleImage
        fields = ["article", "alt_text"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["article"].queryset = Article.objects.filter(status__in=EDITABLE_STATUSES)

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        try:
            reencode_image(upload)
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return upload


@admin.register(ArticleImage)
class ArticleImageAdmin(admin.ModelAdmin):
    list_display = (
        "alt_text",
        "article",
        "content_type",
        "width",
        "height",
        "size",
        "uploaded_by",
        "created_at",
        "path_display",
    )
    list_select_related = ("article", "uploaded_by")
    search_fields = ("alt_text", "article__title")

    @admin.display(description=_("path for the text"))
    def path_display(self, obj):
        return format_html("<code>{}</code>", obj.path)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ArticleImageForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "article",
            "alt_text",
            "content_type",
            "width",
            "height",
            "size",
            "sha256",
            "uploaded_by",
            "created_at",
            "path_display",
        )

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("article", "alt_text", "upload")
        return self.get_readonly_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = services.article_image_add(
            article=form.cleaned_data["article"],
            upload=form.cleaned_data["upload"],
            alt_text=form.cleaned_data["alt_text"],
            actor=request.user,
        )
        obj.pk = saved.pk
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})


class WinnerConsentForm(forms.ModelForm):
    name = forms.CharField(label=_("winner's name"), max_length=50)

    class Meta:
        model = WinnerConsent
        fields = ["article", "scope", "consented_at", "evidence"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["article"].queryset = Article.objects.filter(
            kind=ArticleKind.WINNER_STORY
        ).exclude(status=ArticleStatus.ARCHIVED)
        self.fields["scope"].initial = ConsentScope.MASKED_NAME


@admin.register(WinnerConsent)
class WinnerConsentAdmin(PersonalDataAdminMixin, admin.ModelAdmin):
    personal_data_fields = ("winner_name",)
    list_display = (
        "article",
        "masked",
        "scope",
        "consented_at",
        "evidence",
        "recorded_by",
        "withdrawn_at",
    )
    list_filter = ("scope",)
    list_select_related = ("article", "recorded_by")
    actions = ["withdraw_selected"]

    @admin.display(description=_("winner"))
    def masked(self, obj):
        return obj.masked_name

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = WinnerConsentForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("article", "name", "scope", "consented_at", "evidence")
        return self.get_readonly_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
            "article",
            "masked",
            "scope",
            "consented_at",
            "evidence",
            "text_digest",
            "text_snapshot",
            "recorded_by",
            "recorded_at",
            "withdrawn_at",
            "withdrawn_by",
            "withdrawal_note",
        )

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # The detail page is read-only; the withdrawal action checks the change permission.
        return obj is None and super().has_change_permission(request, obj)

    def has_withdraw_permission(self, request) -> bool:
        return request.user.has_perm(services.PERM_WITHDRAW_CONSENT)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = services.consent_record(
            article=data["article"],
            winner_name=data["name"],
            scope=data["scope"],
            consented_at=data["consented_at"],
            evidence=data["evidence"],
            actor=request.user,
        )
        obj.pk = saved.pk
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})

    @admin.action(
        description=_("Record the winner's withdrawal of consent"), permissions=["withdraw"]
    )
    def withdraw_selected(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            form_class=ReasonForm,
            call=lambda c, data: services.consent_withdraw(
                consent=c, actor=request.user, note=data["reason"]
            ),
            title=gettext("Withdraw consent"),
            done_message=lambda n: (
                ngettext(
                    "%(count)d consent withdrawn; its story is no longer public.",
                    "%(count)d consents withdrawn; their stories are no longer public.",
                    n,
                )
                % {"count": n}
            ),
        )
