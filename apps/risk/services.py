"""The risk check inside the submission pipeline (step 8).

Until the risk-control rules land, every submission is allowed; the pipeline already honours
`hold` (the invoice waits for a reviewer, never enters a draw) and `block` (rejected with
`risk.blocked`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class RiskAction(models.TextChoices):
    ALLOW = "allow"
    HOLD = "hold"
    BLOCK = "block"


@dataclass(frozen=True)
class RiskDecision:
    action: str
    score: int = 0
    reasons: tuple[str, ...] = ()
    code: str = ""


ALLOW = RiskDecision(RiskAction.ALLOW)


def risk_assess_submission(*, consumer, record, campaign) -> RiskDecision:
    """Score one verified, eligible submission. No rules are configured yet: allow."""
    return ALLOW
