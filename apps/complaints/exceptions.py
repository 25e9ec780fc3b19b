"""Errors of the complaints app, each with a stable machine code."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from apps.common.exceptions import DomainError

MESSAGES = {
    "case.not_found": _("No such case."),
    "case.not_permitted": _("You are not allowed to do this with this case."),
    "case.not_open": _("This case is no longer open."),
    "case.not_resolved": _("This case has not been resolved yet."),
    "case.reopen_window_passed": _("This case can no longer be reopened."),
    "case.already_rated": _("This case has already been rated."),
    "case.rating_invalid": _("The rating must be a whole number from 1 to 5."),
    "case.category_invalid": _("Choose an active category of this kind."),
    "case.kind_invalid": _("Unknown kind of case."),
    "case.link_not_yours": _("You can only link your own invoices and prizes."),
    "case.link_not_found": _("The linked record does not exist."),
    "case.empty_message": _("Write a message."),
    "case.closed_for_messages": _("This case is closed; reopen it to write again."),
    "case.hotline_ticket_taken": _("A case with this hotline ticket number already exists."),
    "case.contact_required": _("A hotline case needs the caller's phone number."),
    "case.phone_invalid": _("The phone number is not valid."),
    "case.subject_required": _("Give the case a subject."),
    "case.assignee_not_member": _("The assignee is not a member of the case's queue."),
    "case.no_available_handler": _("Nobody in this queue is available for new cases."),
    "case.outcome_invalid": _("Choose how the case was resolved."),
    "case.article_not_published": _("Only published FAQ articles can be linked."),
    "category.invalid": _("The category is not valid."),
    "attachment.too_large": _("The file is too large."),
    "attachment.too_many": _("This case has as many attachments as allowed."),
    "attachment.type_not_allowed": _("Only JPEG, PNG and PDF files can be attached."),
    "attachment.empty": _("The file is empty."),
    "hotline.file_unreadable": _("The file could not be read as UTF-8 CSV."),
    "hotline.missing_columns": _("The file lacks required columns."),
}


class CaseError(DomainError):
    code = "case.error"
    messages = MESSAGES
