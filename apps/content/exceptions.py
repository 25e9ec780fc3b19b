"""Errors of the publicity app, each with a stable machine code."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.common.exceptions import DomainError

MESSAGES = {
    "article.not_permitted": _("You are not allowed to do this with this article."),
    "article.own_approval": _("An article must be approved by somebody who did not write it."),
    "article.not_editable": _("Only a draft can be edited; return the article to draft first."),
    "article.title_required": _("Give the article a title."),
    "article.body_required": _("The article has no text."),
    "article.kind_invalid": _("Unknown kind of article."),
    "article.image_alt_missing": _("Every image needs a text alternative (alt text)."),
    "article.schedule_in_past": _("The publication time must be in the future."),
    "article.reason_required": _("Give a reason."),
    "story.consent_missing": _(
        "A winner story can only go ahead with the winner's recorded consent to this text."
    ),
    "story.consent_text_changed": _(
        "The text differs from the one the winner consented to; record a new consent."
    ),
    "story.full_name_not_consented": _(
        "The text shows the winner's full name, but the consent covers the masked name only."
    ),
    "story.not_a_winner_story": _("Consent is recorded for winner stories only."),
    "story.consent_exists": _("This story already has a valid consent; withdraw it first."),
    "story.winner_name_required": _("Give the winner's name."),
    "story.consent_withdrawn": _("This consent has already been withdrawn."),
    "image.too_large": _("The image is too large."),
    "image.type_not_allowed": _("Only JPEG, PNG and WebP images can be uploaded."),
    "image.unreadable": _("The file is not a readable image."),
    "image.dimensions": _("The image is too large in pixels."),
    "lookup.query_invalid": _("The search is not valid."),
}


class ContentError(DomainError):
    code = "content.error"
    messages = MESSAGES
