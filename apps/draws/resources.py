"""Export resources of the draws app: periodic-draw winners and instant awards.

Export only (nobody imports results); winners' names, phones and ID numbers are masked unless
the user may reveal personal data (apps.common.import_export).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from import_export import resources

from apps.common.import_export import (
    MaskedResourceMixin,
    export_choice_column,
    export_column,
)
from apps.common.masking import mask_id_number, mask_name, mask_phone

from .models import DrawWinner, InstantAward

WINNER_NAME = _("winner's real name")
WINNER_PHONE = _("winner's mobile phone")
WINNER_ID_NUMBER = _("winner's resident ID number")


class DrawWinnerResource(MaskedResourceMixin, resources.ModelResource):
    """Every slot holder of the filtered draws: winners, substitutes, and who was disqualified."""

    draw = export_column("draw__code", DrawWinner._meta.get_field("draw").verbose_name)
    draw_name = export_column("draw__name", _("draw name"))
    rank = export_column("rank", model=DrawWinner)
    tier = export_column("tier__name", DrawWinner._meta.get_field("tier").verbose_name)
    amount = export_column("tier__amount", _("prize amount"))
    slot = export_column("slot", model=DrawWinner)
    ticket_no = export_column("ticket_no", model=DrawWinner)
    invoice = export_column("ticket__invoice__number", _("invoice number"))
    entry_ref = export_column("ticket__entry_ref", _("entry reference"))
    winner_name = export_column("ticket__invoice__consumer__real_name", WINNER_NAME)
    winner_phone = export_column("ticket__invoice__consumer__phone", WINNER_PHONE)
    winner_id_number = export_column("ticket__invoice__consumer__id_number", WINNER_ID_NUMBER)
    substitute_for = export_column("substitute_for", model=DrawWinner)
    disqualified = export_column("disqualified", model=DrawWinner)
    disqualification_reason = export_choice_column("disqualification_reason", DrawWinner)
    created_at = export_column("created_at", model=DrawWinner)

    personal_data_fields = {
        "winner_name": mask_name,
        "winner_phone": mask_phone,
        "winner_id_number": mask_id_number,
    }
    export_select_related = ("draw", "tier", "ticket__invoice__consumer")
    export_file_stem = "draw-winners"

    class Meta:
        model = DrawWinner
        name = _("Draw winners")
        fields = (
            "draw",
            "draw_name",
            "rank",
            "tier",
            "amount",
            "slot",
            "ticket_no",
            "invoice",
            "entry_ref",
            "winner_name",
            "winner_phone",
            "winner_id_number",
            "substitute_for",
            "disqualified",
            "disqualification_reason",
            "created_at",
        )


class InstantAwardResource(MaskedResourceMixin, resources.ModelResource):
    """Instant prizes won, newest first as in the changelist."""

    drawn_at = export_column("drawn_at", model=InstantAward)
    day = export_column("day", model=InstantAward)
    pool = export_column("pool__name", InstantAward._meta.get_field("pool").verbose_name)
    tier = export_column("tier__name", InstantAward._meta.get_field("tier").verbose_name)
    kind = export_choice_column("kind", InstantAward)
    amount = export_column("amount", model=InstantAward)
    payable_after = export_column("payable_after", model=InstantAward)
    invoice = export_column("invoice__number", _("invoice number"))
    consumer = export_column("consumer__public_id", _("consumer ID"))
    consumer_name = export_column("consumer__real_name", WINNER_NAME)
    consumer_phone = export_column("consumer__phone", WINNER_PHONE)

    personal_data_fields = {"consumer_name": mask_name, "consumer_phone": mask_phone}
    export_select_related = ("pool", "tier", "invoice", "consumer")
    export_file_stem = "instant-awards"

    class Meta:
        model = InstantAward
        name = _("Instant awards")
        fields = (
            "drawn_at",
            "day",
            "pool",
            "tier",
            "kind",
            "amount",
            "payable_after",
            "invoice",
            "consumer",
            "consumer_name",
            "consumer_phone",
        )
