"""Reads of the publicity app: what the public may see, and the public merchant lookup."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.common.areas import ZHENGZHOU_AREAS
from apps.common.normalize import to_halfwidth
from apps.invoices.eligibility import CampaignRules, campaign_for_issue_date
from apps.invoices.models import Campaign
from apps.merchants.choices import MerchantStatus
from apps.merchants.models import Merchant

from .choices import ArticleKind, ArticleStatus
from .exceptions import ContentError
from .models import Article, ArticleImage, WinnerConsent

# --- Articles -----------------------------------------------------------------------------------


def _valid_consent():
    return WinnerConsent.objects.filter(article=OuterRef("pk"), withdrawn_at__isnull=True)


def article_public_list(*, kind: str | None = None) -> QuerySet[Article]:
    """Published articles, newest first. A winner story also needs a consent that is not
    withdrawn (belt and braces: withdrawing archives it in the same transaction)."""
    qs = Article.objects.filter(status=ArticleStatus.PUBLISHED).filter(
        ~Q(kind=ArticleKind.WINNER_STORY) | Q(Exists(_valid_consent()))
    )
    if kind:
        if kind not in ArticleKind.values:
            return Article.objects.none()
        qs = qs.filter(kind=kind)
    return qs.order_by("-published_at", "-pk")


def article_public_get(public_id) -> Article:
    """One published article, or `Article.DoesNotExist`."""
    return article_public_list().get(public_id=public_id)


def articles_last_modified(*, kind: str | None = None):
    """The last change to any article (of `kind`), published or not: a withdrawal or an archive
    changes what the lists show, so it must move this time forward too."""
    qs = Article.objects.all()
    if kind in ArticleKind.values:
        qs = qs.filter(kind=kind)
    return qs.aggregate(last=Max("updated_at"))["last"]


def winner_display_name(article: Article) -> str:
    """The name shown with a winner story: masked, or full if the consent covers it."""
    if article.kind != ArticleKind.WINNER_STORY:
        return ""
    consent = article.consents.filter(withdrawn_at__isnull=True).first()
    return consent.display_name if consent else ""


def image_public_get(public_id, *, staff_user=None) -> ArticleImage:
    """An image of a published article (staff who may view articles see every image)."""
    qs = ArticleImage.objects.select_related("article")
    if staff_user is not None and staff_user.has_perm("content.view_article"):
        return qs.get(public_id=public_id)
    return qs.filter(article__in=article_public_list()).get(public_id=public_id)


# --- Public merchant lookup ---------------------------------------------------------------------

#: Sector groups of GB/T 4754-2017 (two-digit divisions) consumers choose from.
INDUSTRY_GROUPS: tuple[tuple[str, object], ...] = (
    ("52", _("Retail")),
    ("62", _("Catering")),
    ("61", _("Accommodation")),
    ("88", _("Culture and arts")),
    ("89", _("Sports")),
    ("90", _("Entertainment")),
    ("80", _("Resident services")),
    ("72", _("Tourism and business services")),
    ("78", _("Parks and scenic areas")),
    ("87", _("Cinemas and broadcasting")),
)
INDUSTRY_NAMES = dict(INDUSTRY_GROUPS)
MAX_QUERY_LENGTH = 50
#: The GIN index of migration merchants 0002: every character and every pair of adjacent
#: characters of the lower-cased name (Chinese names need bigrams: most words are two
#: characters, which a trigram index cannot look up).
GRAMS_MATCH = "merchant_name_grams(merchants_merchant.name) @> merchant_name_grams(%s)"


def normalize_query(q: str) -> str:
    text = " ".join(to_halfwidth(q or "").split())
    if len(text) > MAX_QUERY_LENGTH:
        raise ContentError("lookup.query_invalid", detail={"field": "q"})
    return text


def merchant_lookup(*, q: str = "", area: str = "", industry: str = "") -> QuerySet[Merchant]:
    """Active merchants by name (substring), area and industry, ordered by name.

    Suspended and blacklisted merchants never appear (status is read on every query, nothing
    is cached). On PostgreSQL the name is matched through the n-gram GIN index and then
    rechecked exactly; area and industry use their B-tree indexes.
    """
    q = normalize_query(q)
    if area and area not in ZHENGZHOU_AREAS:
        raise ContentError("lookup.query_invalid", detail={"field": "area"})
    if industry and industry not in INDUSTRY_NAMES:
        raise ContentError("lookup.query_invalid", detail={"field": "industry"})
    qs = Merchant.objects.filter(status=MerchantStatus.ACTIVE)
    if area:
        qs = qs.filter(area_code=area)
    if industry:
        qs = qs.filter(industry_code__startswith=industry)
    if q:
        qs = qs.filter(name__icontains=q)
        if connection.vendor == "postgresql":
            qs = qs.extra(where=[GRAMS_MATCH], params=[q])  # noqa: S610 (fixed SQL, bound value)
    return qs.only("uscc", "name", "area_code", "industry_code", "address", "status").order_by(
        "name", "pk"
    )


def current_campaign() -> Campaign | None:
    return campaign_for_issue_date(timezone.localdate())


@dataclass(frozen=True)
class MerchantQualification:
    merchant: Merchant
    qualifies: bool
    reason: object  # translated text, empty when it qualifies
    area_name: str
    industry_name: object


def merchant_qualification(
    merchant: Merchant, rules: CampaignRules | None
) -> MerchantQualification:
    """Whether an invoice of this merchant can enter the current campaign, as far as the seller
    decides it: the campaign's own area and industry rules (`apps.invoices.eligibility`) and the
    merchant's status. The invoice itself must still qualify (type, amount, buyer)."""
    area_name = ZHENGZHOU_AREAS.get(merchant.area_code, merchant.area_code)
    industry_name = INDUSTRY_NAMES.get(merchant.industry_code[:2], merchant.industry_code)
    if rules is None:
        return MerchantQualification(
            merchant, False, _("No campaign is running now."), area_name, industry_name
        )
    if merchant.status != MerchantStatus.ACTIVE:
        reason = _("Not taking part.")
    elif not rules.area_eligible(merchant.area_code):
        reason = _("Outside the campaign's area.")
    elif not rules.industry_eligible(merchant.industry_code):
        reason = _("Its industry is not part of the campaign.")
    else:
        reason = ""
    return MerchantQualification(merchant, not reason, reason, area_name, industry_name)


def qualify_all(merchants) -> tuple[Campaign | None, list[MerchantQualification]]:
    campaign = current_campaign()
    rules = CampaignRules.load(campaign) if campaign else None
    return campaign, [merchant_qualification(m, rules) for m in merchants]
