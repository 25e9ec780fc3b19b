"""State machines: an explicit table of allowed transitions, checked by every service."""

from __future__ import annotations

from collections.abc import Mapping

from django.utils.translation import gettext_lazy as _

from .exceptions import InvalidTransition


def check_transition(
    table: Mapping[str, frozenset[str] | set[str]], current: str, target: str, *, entity: str
) -> None:
    """Raise `InvalidTransition` unless `current → target` is in `table`."""
    if target not in table.get(current, ()):
        raise InvalidTransition(
            f"{entity}.invalid_transition",
            _("This change of status is not allowed."),
            detail={"from": current, "to": target},
        )
