"""Reads of consumers by their personal data, through the blind indexes only."""

from __future__ import annotations

from .models import Consumer


def consumer_get_by_phone(*, phone: str) -> Consumer | None:
    """The consumer whose phone is `phone` (already normalised), under any blind-index key."""
    if not phone:
        return None
    candidates = Consumer._meta.get_field("phone_index").candidates(phone)
    return Consumer.objects.select_related("user").filter(phone_index__in=candidates).first()


def consumer_get_by_id_number(*, id_number: str) -> Consumer | None:
    """The consumer holding this resident ID number (already validated), if any."""
    if not id_number:
        return None
    candidates = Consumer._meta.get_field("id_number_index").candidates(id_number)
    return Consumer.objects.select_related("user").filter(id_number_index__in=candidates).first()
