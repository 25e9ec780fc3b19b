"""Forms of the monitoring pages."""

from __future__ import annotations

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from .definitions import DEFINITIONS
from .models import MonitoringRule


class RuleForm(forms.ModelForm):
    """A rule's settings and why they change (the reason goes into the change history)."""

    change_reason = forms.CharField(label=_("Reason for the change"), max_length=300, required=True)

    class Meta:
        model = MonitoringRule
        fields = (
            "enabled",
            "severity",
            "threshold",
            "window_minutes",
            "params",
            "response",
            "notify",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and self.instance.code in DEFINITIONS:
            definition = DEFINITIONS[self.instance.code]
            self.fields["params"].help_text = _("Parameters and defaults: %(defaults)s") % {
                "defaults": json.dumps(definition.params, ensure_ascii=False) or "{}"
            }
            self.fields["threshold"].help_text = str(definition.help)

    def clean(self):
        from .exceptions import MonitoringError
        from .services import rule_validate

        cleaned = super().clean()
        values = {k: cleaned.get(k) for k in self.Meta.fields if k in cleaned}
        values.setdefault("params", {})
        try:
            rule_validate(
                code=self.instance.code, values={**values, "params": values["params"] or {}}
            )
        except MonitoringError as exc:
            field = exc.detail.get("field")
            target = field if field in self.fields else "params"
            self.add_error(target, str(exc.message))
        return cleaned


class AlertActionForm(forms.Form):
    ACTIONS = (
        ("acknowledge", _("Acknowledge")),
        ("resolve", _("Resolve")),
        ("note", _("Add a note")),
    )
    action = forms.ChoiceField(label=_("Action"), choices=ACTIONS)
    note = forms.CharField(
        label=_("Note"), widget=forms.Textarea(attrs={"rows": 3}), required=False
    )


class ReverseResponseForm(forms.Form):
    response_id = forms.IntegerField(widget=forms.HiddenInput)
    note = forms.CharField(label=_("Why is it reversed?"), max_length=300)
