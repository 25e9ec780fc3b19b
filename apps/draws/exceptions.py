"""Why a draw step is refused: one stable code per reason, with a translated message.

The codes are a contract with the admin and any API; never rename one.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.common.exceptions import DomainError

DRAW_ERRORS: dict[str, tuple[int, object]] = {
    "draw.permission_denied": (403, _("You do not have permission for this draw step.")),
    "draw.not_editable": (
        409,
        _("The draw's configuration can no longer change: its ticket list is frozen."),
    ),
    "draw.window_closed": (
        409,
        _("The commitment must be published before the entry window closes."),
    ),
    "draw.randomness_source_required": (
        400,
        _("Announce the public randomness source before committing."),
    ),
    "draw.no_tiers": (400, _("Add at least one prize tier before committing.")),
    "draw.invalid_tiers": (400, _("Prize tiers need distinct ranks from 1 and positive amounts.")),
    "draw.before_cutoff": (409, _("The ticket list can only be frozen at or after the cut-off.")),
    "draw.randomness_required": (400, _("Enter the public randomness value.")),
    "draw.already_started": (409, _("This draw has already been started.")),
    "draw.not_started": (409, _("The draw must be started before it can be confirmed.")),
    "draw.same_person": (
        403,
        _("The draw must be confirmed by a different staff member from the one who started it."),
    ),
    "draw.already_drawn": (409, _("This draw has already been executed; it never runs twice.")),
    "draw.tickets_changed": (
        409,
        _("The stored ticket list no longer matches its published digest."),
    ),
    "draw.notice_period_over": (409, _("The public notice period is over.")),
    "draw.notice_period_running": (
        409,
        _("The draw can only be finalised after the public notice period."),
    ),
    "draw.not_a_winner": (
        400,
        _("That ticket does not hold a prize in this draw (or is already disqualified)."),
    ),
    "draw.reason_required": (400, _("A reason is required.")),
    "draw.invalid_code": (400, _("This draw code is not valid.")),
    "draw.invalid_window": (
        400,
        _("The window must end after it starts, and the cut-off must not be before its end."),
    ),
    "instant.quantity_below_awarded": (
        409,
        _("The total quantity cannot be lower than the number of prizes already awarded."),
    ),
}


class DrawError(DomainError):
    """A draw step that is refused, with its stable code."""

    def __init__(self, code: str, *, detail: dict | None = None):
        status, message = DRAW_ERRORS[code]
        super().__init__(code, message, detail=detail or {}, status_code=status)
