"""Rule weights, thresholds and decision scores: validated, historised, audited, and in effect
for the very next submission (the cached configuration is dropped on change)."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.risk.choices import RiskAction
from apps.risk.exceptions import RiskError
from apps.risk.models import RiskConfigChange
from apps.risk.rules import current_config
from apps.risk.services import risk_rule_update, risk_settings_update

from .conftest import fired, staff

pytestmark = pytest.mark.django_db  # SQL facts on PostgreSQL, the ORM path elsewhere


def _split(consumer, merchant, past):
    past(consumer, merchant, 5, total="101.00")


def test_a_weight_change_applies_to_the_next_submission_and_is_recorded(
    consumer, merchant, assess, past
):
    analyst = staff("风控专员")
    _split(consumer, merchant, past)
    assert assess(consumer, merchant, total="103.00").action == RiskAction.HOLD  # cached now
    risk_rule_update(code="split_purchase", weight=20, actor=analyst, reason="too strict")
    decision = assess(consumer, merchant, total="103.00")
    assert fired(decision) == {"split_purchase": 20} and decision.action == RiskAction.ALLOW
    change = RiskConfigChange.objects.get()
    assert change.target == "rule:split_purchase" and change.actor == analyst
    assert change.before["weight"] == 60 and change.after["weight"] == 20
    assert change.reason == "too strict"
    assert AuditEvent.objects.filter(action="risk.config_changed", target_id=change.target).exists()


def test_a_disabled_rule_never_fires(consumer, merchant, assess, past):
    _split(consumer, merchant, past)
    risk_rule_update(code="split_purchase", enabled=False, actor=None, reason="trial")
    assert not assess(consumer, merchant, total="103.00").hits


def test_thresholds_are_params_of_the_rule(consumer, merchant, assess, past):
    past(consumer, merchant, 40, total="101.00")  # outside the default 30 minutes
    assert "split_purchase" not in fired(assess(consumer, merchant, total="103.00"))
    risk_rule_update(
        code="split_purchase", params={"window_minutes": 60}, actor=None, reason="longer"
    )
    assert current_config().rules["split_purchase"].params["window_minutes"] == 60
    assert "split_purchase" in fired(assess(consumer, merchant, total="103.00"))


@pytest.mark.parametrize(
    "params", [{"window_minutes": -1}, {"window_minutes": "soon"}, {"nonsense": 1}]
)
def test_bad_thresholds_are_refused(params):
    with pytest.raises(RiskError) as info:
        risk_rule_update(code="split_purchase", params=params, actor=None, reason="bad")
    assert info.value.code == "risk.invalid_value"
    assert not RiskConfigChange.objects.exists()


def test_unknown_rules_and_missing_reasons_are_refused():
    with pytest.raises(RiskError, match=r"risk\.rule_unknown"):
        risk_rule_update(code="astrology", weight=1, actor=None, reason="x y")
    with pytest.raises(RiskError, match=r"risk\.reason_required"):
        risk_rule_update(code="split_purchase", weight=1, actor=None, reason=" ")


def test_decision_scores_move_hold_and_block(consumer, merchant, assess, past):
    _split(consumer, merchant, past)
    risk_settings_update(hold_score=70, block_score=200, actor=None, reason="fewer holds")
    assert assess(consumer, merchant, total="103.00").action == RiskAction.ALLOW
    risk_settings_update(hold_score=30, block_score=55, actor=None, reason="strict week")
    assert assess(consumer, merchant, total="103.00").action == RiskAction.BLOCK
    assert RiskConfigChange.objects.filter(target="settings").count() == 2


def test_block_must_stay_above_hold():
    with pytest.raises(RiskError):
        risk_settings_update(hold_score=100, block_score=90, actor=None, reason="oops")


def test_the_reversal_test_rate_is_a_setting_with_history_and_bounds():
    row = risk_settings_update(reversal_fdr="0.05", actor=None, reason="more reversal alerts")
    row.refresh_from_db()
    assert str(row.reversal_fdr) == "0.050"
    change = RiskConfigChange.objects.get(target="settings")
    assert change.before["reversal_fdr"] == "0.010" and change.after["reversal_fdr"] == "0.05"
    for bad in ("0", "0.5", "-0.01", "lots"):
        with pytest.raises(RiskError) as info:
            risk_settings_update(reversal_fdr=bad, actor=None, reason="out of range")
        assert info.value.code == "risk.invalid_value"
    assert RiskConfigChange.objects.filter(target="settings").count() == 1


def test_the_returner_link_and_the_large_share_are_settings_with_history_and_bounds():
    row = risk_settings_update(
        reversal_link_min=3, reversal_large_share="0.1", actor=None, reason="wider net"
    )
    row.refresh_from_db()
    assert row.reversal_link_min == 3 and str(row.reversal_large_share) == "0.100"
    change = RiskConfigChange.objects.get(target="settings")
    assert change.before["reversal_link_min"] == "2" and change.after["reversal_link_min"] == "3"
    assert change.before["reversal_large_share"] == "0.050"
    assert change.after["reversal_large_share"] == "0.1"
    for bad in ("0.6", "-0.01", "lots"):
        with pytest.raises(RiskError) as info:
            risk_settings_update(reversal_large_share=bad, actor=None, reason="out of range")
        assert info.value.code == "risk.invalid_value"
    with pytest.raises(RiskError):
        risk_settings_update(reversal_link_min=-1, actor=None, reason="out of range")
    row = risk_settings_update(
        reversal_link_min=0, reversal_large_share="0", actor=None, reason="both off"
    )
    assert row.reversal_link_min == 0 and row.reversal_large_share == 0
    assert RiskConfigChange.objects.filter(target="settings").count() == 2
