"""Export resources of the prizes app: payouts (export only; nobody imports money).

The payee's name and account number are masked unless the user may reveal personal data
(apps.common.import_export); every export is audited.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from import_export import resources

from apps.common.import_export import MaskedResourceMixin, export_choice_column, export_column
from apps.common.masking import mask_account, mask_name

from .models import Payout


class PayoutResource(MaskedResourceMixin, resources.ModelResource):
    """Payouts of the current filter with their award, batch, provider reference and outcome."""

    request_no = export_column("request_no", model=Payout)
    batch = export_column("batch__reference", _("batch"))
    prize = export_column("award__name", _("prize"))
    gross = export_column("award__amount", _("prize amount"))
    tax_withheld = export_column("tax_withheld", model=Payout)
    amount = export_column("amount", model=Payout)
    status = export_choice_column("status", Payout)
    payee_name = export_column("account__consumer__real_name", _("payee's real name"))
    account_no = export_column("account__account_no", _("account number"))
    account_kind = export_column("account__kind", _("account kind"))
    provider_ref = export_column("provider_ref", model=Payout)
    fail_code = export_column("fail_code", model=Payout)
    created_at = export_column("created_at", model=Payout)
    finished_at = export_column("finished_at", model=Payout)

    personal_data_fields = {"payee_name": mask_name, "account_no": mask_account}
    export_select_related = ("batch", "award", "account__consumer")
    export_file_stem = "payouts"

    class Meta:
        model = Payout
        name = _("Payouts")
        fields = (
            "request_no",
            "batch",
            "prize",
            "gross",
            "tax_withheld",
            "amount",
            "status",
            "payee_name",
            "account_no",
            "account_kind",
            "provider_ref",
            "fail_code",
            "created_at",
            "finished_at",
        )
