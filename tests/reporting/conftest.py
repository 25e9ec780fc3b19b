"""Fixtures of the reporting tests: the prize world of the prize tests (payment and identity
sandboxes on 127.0.0.1, the finance team, a funded campaign)."""

from tests.prizes.conftest import (  # noqa: F401  (fixtures)
    finance,
    identity_sandbox,
    payment_callbacks,
    payment_gateway_settings,
    payment_sandbox,
    prize_world,
)
