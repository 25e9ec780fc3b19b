"""Forms of the draw steps in the admin (each step page posts one of these to one service)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _

from .choices import EDITABLE_STATUSES, DisqualificationReason, DrawStatus, OddsMode
from .models import PeriodicDraw


class StepForm(forms.Form):
    """A step without input: the page asks for confirmation only."""

    def __init__(self, *args, draw: PeriodicDraw, **kwargs):
        self.draw = draw
        super().__init__(*args, **kwargs)


class CommitForm(StepForm):
    randomness_source = forms.CharField(
        label=_("public randomness source"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=PeriodicDraw._meta.get_field("randomness_source").help_text,
        max_length=1000,
    )

    def __init__(self, *args, draw, **kwargs):
        super().__init__(*args, draw=draw, **kwargs)
        self.fields["randomness_source"].initial = draw.randomness_source


class RandomnessForm(StepForm):
    value = forms.CharField(
        label=_("public randomness"),
        max_length=1000,
        help_text=_("Exactly as published by the announced source."),
    )


class DisqualifyForm(StepForm):
    ticket_no = forms.IntegerField(label=_("ticket number"), min_value=1)
    reason = forms.ChoiceField(label=_("reason"), choices=DisqualificationReason.choices)
    note = forms.CharField(label=_("note"), required=False, max_length=300)


class CancelForm(StepForm):
    reason = forms.CharField(label=_("reason"), max_length=300)


class PeriodicDrawForm(forms.ModelForm):
    """Configuration of a draw; the service decides what may still change."""

    class Meta:
        model = PeriodicDraw
        fields = (
            "code",
            "name",
            "campaign",
            "window_starts_at",
            "window_ends_at",
            "cutoff_at",
            "per_holder_limit",
            "notice_days",
            "randomness_source",
        )

    def clean(self):
        cleaned = super().clean()
        starts = cleaned.get("window_starts_at", self.instance.window_starts_at)
        ends = cleaned.get("window_ends_at", self.instance.window_ends_at)
        cutoff = cleaned.get("cutoff_at", self.instance.cutoff_at)
        if starts and ends and ends <= starts:
            self.add_error("window_ends_at", _("The window must end after it starts."))
        if ends and cutoff and cutoff < ends:
            self.add_error("cutoff_at", _("The cut-off must not be before the window ends."))
        if self.instance.pk and self.instance.status not in EDITABLE_STATUSES:
            raise ValidationError(_("The draw's configuration can no longer change."))
        return cleaned


class DrawTierFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        ranks = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE"):
                continue
            ranks.append(data.get("rank"))
        if len(ranks) != len(set(ranks)):
            raise ValidationError(_("Each prize tier needs its own rank."))
        draw = self.instance
        if draw.pk and draw.status not in (DrawStatus.SCHEDULED, DrawStatus.COMMITTED):
            raise ValidationError(_("The draw's configuration can no longer change."))

    def tier_specs(self):
        from .services import TierSpec

        specs = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE"):
                continue
            specs.append(TierSpec(data["rank"], data["name"], data["amount"], data["count"]))
        return specs


class InstantTierFormSet(BaseInlineFormSet):
    """Fixed odds of a pool add up to at most 1; no prize above the campaign's maximum."""

    def clean(self):
        super().clean()
        pool = self.instance
        total = Decimal("0")
        maximum = pool.campaign.max_prize_per_invoice if pool.campaign_id else None
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE"):
                continue
            total += data.get("probability") or Decimal("0")
            face_value = data.get("face_value")
            if maximum is not None and face_value is not None and face_value > maximum:
                form.add_error(
                    "face_value",
                    _("Above the campaign's maximum prize per invoice (%(max)s).")
                    % {"max": maximum},
                )
        if pool.odds_mode == OddsMode.FIXED and total > 1:
            raise ValidationError(_("The probabilities of a pool's tiers add up to more than 1."))


class InstantQuotaForm(forms.ModelForm):
    def clean_quota(self):
        quota = self.cleaned_data["quota"]
        if self.instance.pk and quota < self.instance.awarded:
            raise ValidationError(
                _("Already %(awarded)d awarded that day: the quota cannot be lower."),
                params={"awarded": self.instance.awarded},
            )
        return quota
