"""Forms of the staff case desk. They only parse input; every write is a service call."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .choices import OPEN_STATUSES, CaseChannel, CaseKind, CaseOutcome, CasePriority, CaseStatus
from .models import CaseCategory, FaqArticle


def _textarea(rows: int = 4, **attrs) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "cols": 80, **attrs})


class ReplyForm(forms.Form):
    canned = forms.ChoiceField(label=_("Canned reply"), required=False)
    body = forms.CharField(
        label=_("Reply to the consumer"),
        required=False,
        max_length=10_000,
        widget=_textarea(6, accesskey="r"),
        help_text=_("Shown to the consumer. Empty with a canned reply chosen: its text is sent."),
    )
    article = forms.ModelChoiceField(
        label=_("Link a FAQ article"),
        queryset=FaqArticle.objects.none(),
        required=False,
    )
    await_consumer = forms.BooleanField(
        label=_("Wait for the consumer's answer (stops the clock)"), required=False
    )
    file = forms.FileField(label=_("Attachment (JPEG, PNG, PDF)"), required=False)

    def __init__(self, *args, canned=(), articles=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.canned_bodies = {str(c.pk): c.body for c in canned}
        self.fields["canned"].choices = [("", "—")] + [(str(c.pk), c.title) for c in canned]
        self.fields["canned"].widget.attrs["data-canned-target"] = "id_reply-body"
        if articles is not None:
            self.fields["article"].queryset = articles

    def clean(self):
        data = super().clean()
        if not (data.get("body") or "").strip():
            chosen = data.get("canned")
            if chosen:
                data["body"] = self.canned_bodies.get(chosen, "")
            elif not data.get("article"):
                raise forms.ValidationError(
                    _("Write a reply, choose a canned reply or an article.")
                )
        return data


class NoteForm(forms.Form):
    body = forms.CharField(
        label=_("Internal note"),
        max_length=10_000,
        widget=_textarea(3, accesskey="n"),
        help_text=_("Only staff see notes."),
    )
    file = forms.FileField(label=_("Attachment (JPEG, PNG, PDF)"), required=False)


class ResolveForm(forms.Form):
    outcome = forms.ChoiceField(label=_("Outcome"), choices=CaseOutcome.choices)
    summary = forms.CharField(
        label=_("Resolution summary (shown to the consumer)"),
        required=False,
        max_length=10_000,
        widget=_textarea(3, accesskey="s"),
    )


class ReassignForm(forms.Form):
    assignee = forms.ChoiceField(
        label=_("Assign to"),
        required=False,
        help_text=_("Empty: the next available handler of the queue (round-robin)."),
    )
    reason = forms.CharField(label=_("Reason"), required=False, max_length=300)

    def __init__(self, *args, members=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [("", _("Next available (round-robin)"))] + [
            (str(m.user_id), m.user.get_full_name() or m.user.get_username()) for m in members
        ]
        self.fields["assignee"].widget.attrs["accesskey"] = "a"


class EscalateForm(forms.Form):
    reason = forms.CharField(
        label=_("Why escalate"), max_length=300, widget=forms.TextInput(attrs={"accesskey": "e"})
    )


class ReopenForm(forms.Form):
    reason = forms.CharField(label=_("Why reopen"), required=False, max_length=300)


class LinkForm(forms.Form):
    merchant_uscc = forms.CharField(label=_("Merchant credit code"), required=False, max_length=18)
    invoice_number = forms.CharField(label=_("Invoice number"), required=False, max_length=20)
    draw_code = forms.CharField(label=_("Periodic draw code"), required=False, max_length=40)


class CaseEntryForm(forms.Form):
    """A case taken on the phone (12345 hotline) or entered by staff."""

    channel = forms.ChoiceField(
        label=_("Channel"),
        choices=[
            (CaseChannel.HOTLINE.value, CaseChannel.HOTLINE.label),
            (CaseChannel.STAFF.value, CaseChannel.STAFF.label),
        ],
    )
    category = forms.ModelChoiceField(label=_("Category"), queryset=CaseCategory.objects.none())
    priority = forms.TypedChoiceField(
        label=_("Priority"),
        choices=[("", _("Category default")), *CasePriority.choices],
        coerce=int,
        empty_value=None,
        required=False,
    )
    subject = forms.CharField(label=_("Subject"), max_length=200)
    description = forms.CharField(label=_("Description"), required=False, widget=_textarea(5))
    caller_name = forms.CharField(label=_("Caller name"), required=False, max_length=100)
    caller_phone = forms.CharField(label=_("Caller phone"), required=False, max_length=32)
    hotline_ticket = forms.CharField(
        label=_("Hotline ticket number"), required=False, max_length=40
    )
    received_at = forms.DateTimeField(
        label=_("Received at"),
        required=False,
        help_text=_("When the hotline took the call (the SLA starts then). Empty: now."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    merchant_uscc = forms.CharField(label=_("Merchant credit code"), required=False, max_length=18)
    merchant_name = forms.CharField(label=_("Merchant as reported"), required=False, max_length=200)
    invoice_number = forms.CharField(label=_("Invoice number"), required=False, max_length=20)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].queryset = CaseCategory.objects.filter(active=True).order_by(
            "kind", "sort_order", "name"
        )


class HotlineImportForm(forms.Form):
    file = forms.FileField(
        label=_("Hotline export (CSV, UTF-8)"),
        help_text=_("Columns: see docs/complaints.md. Tickets already imported are skipped."),
    )


class QueueFilterForm(forms.Form):
    queue = forms.TypedChoiceField(label=_("Queue"), required=False, coerce=int, empty_value=None)
    status = forms.ChoiceField(label=_("Status"), required=False)
    kind = forms.ChoiceField(
        label=_("Kind"), required=False, choices=[("", _("All")), *CaseKind.choices]
    )
    assignee = forms.ChoiceField(label=_("Assignee"), required=False)

    def __init__(self, *args, queues=(), members=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["queue"].choices = [("", _("All my queues"))] + [(q.pk, q.name) for q in queues]
        self.fields["status"].choices = [("", _("All open"))] + [
            (s.value, s.label) for s in CaseStatus if s in OPEN_STATUSES
        ]
        seen, people = set(), []
        for m in members:
            if m.user_id not in seen:
                seen.add(m.user_id)
                people.append((str(m.user_id), m.user.get_full_name() or m.user.get_username()))
        self.fields["assignee"].choices = [("", _("Anyone")), ("none", _("Unassigned")), *people]
