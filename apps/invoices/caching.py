"""Read-through cache of the configuration the submission path reads on every request.

Campaigns (the active ones, their industry and area rules, their codes) and merchants (by
credit code) change rarely and are read by every submission; they are kept in the Django cache
(Redis in production, so every gunicorn worker sees one copy).

Invalidation by generation stamps, so that no stale row can survive a change:

- two generation keys, one for campaign configuration and one for merchants, hold a random
  token. Every cached value is stored as (token it was read under, value), and a reader takes
  the generation together with the values in one `get_many`, accepting only values stamped
  with the current token;
- a change (`post_save` / `post_delete` of `Campaign`, `CampaignIndustry`, `CampaignArea`,
  `Merchant`; writers that bypass the signals call `campaign_cache_clear()` /
  `merchant_cache_clear()`) replaces the token at once and again after the commit. A request
  that read the old row just before the commit stores it under the token it read first, which
  is no longer current: the next reader ignores it and reloads. (Deleting keys alone would let
  that request put the old row back for the whole expiry time.)
- a missing generation key (evicted, or a fresh cache) gets a new token, which voids
  everything cached before; values also expire after `INVOICE_CONFIG_CACHE_SECONDS`
  (default 300).

The values are plain model instances and tuples; the key names carry a schema version.

Fewer round trips (the submission path reads five kinds of configuration):

- within a request, the generation tokens are read once, all together, with the first value
  read (a snapshot per request, taken at `request_started`, dropped at `request_finished`;
  a change made inside the request drops the changed generation from the snapshot);
- each process keeps the configuration values it has read, pickled, with the token they were
  stored under (merchants apart, at most `_MERCHANTS_KEPT` of them: there can be many); a kept
  value is served only while its token is current, exactly as a value from the cache, and
  every read unpickles a fresh copy, so no caller can change another's;
- the submission endpoint reads the generation tokens in its rate limits' round trip
  (`generation_keys`, `generations_read`): with the values kept, its configuration then
  costs no round trip at all.
"""

from __future__ import annotations

import contextvars
import pickle
from datetime import date, datetime, time, timedelta
from uuid import uuid4

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .choices import CampaignStatus
from .models import Campaign, CampaignArea, CampaignIndustry

PREFIX = "invoices:cfg:v2"
ACTIVE_CAMPAIGNS_KEY = f"{PREFIX}:campaigns:active"
CAMPAIGN_GEN = f"{PREFIX}:gen:campaigns"
MERCHANT_GEN = f"{PREFIX}:gen:merchants"
_NONE = "none"  # cached "no such merchant" (a miss is not the same as "not cached")


def _ttl() -> int:
    return getattr(settings, "INVOICE_CONFIG_CACHE_SECONDS", 300)


def _rules_key(campaign_id: int) -> str:
    return f"{PREFIX}:campaign:{campaign_id}:rules"


def _code_key(campaign_id: int) -> str:
    return f"{PREFIX}:campaign:{campaign_id}:code"


def _merchant_key(uscc: str) -> str:
    return f"{PREFIX}:merchant:{uscc}"


class _Kept(bytes):
    """A kept value (pickled), unpickled only when served."""


# Generation keys read together (every generation a reader has used in this process).
_generation_keys: dict[str, None] = {CAMPAIGN_GEN: None, MERCHANT_GEN: None}
# This request's generation tokens (None outside a request: every read asks the cache).
_request_tokens: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "config_generation_tokens", default=None
)
# key -> (token, pickled value): the values this process has read (see the module docstring).
_kept: dict[str, tuple[str, _Kept]] = {}
_KEPT_LIMIT = 512
# Merchants by credit code, apart: the busy ones are read again and again, the others must
# not push the configuration out.
_kept_merchants: dict[str, tuple[str, _Kept]] = {}
_MERCHANTS_KEPT = 4096


def _kept_for(key: str) -> tuple[dict, int]:
    if key.startswith(f"{PREFIX}:merchant:"):
        return _kept_merchants, _MERCHANTS_KEPT
    return _kept, _KEPT_LIMIT


def _keep(key: str, item) -> None:
    if not isinstance(item, tuple) or len(item) != 2:
        return
    kept, limit = _kept_for(key)
    if len(kept) >= limit:
        kept.clear()
    kept[key] = (item[0], _Kept(pickle.dumps(item[1], pickle.HIGHEST_PROTOCOL)))


def generation_keys() -> list[str]:
    """The generation keys this process reads, to be read ahead in another round trip of the
    request (`generations_read`)."""
    return list(_generation_keys)


def generations_read(values: dict) -> None:
    """Take this request's generation tokens read ahead ({key: token or None}); a missing one
    is read (and started) by the first reader as usual."""
    tokens = _request_tokens.get()
    if tokens is None:
        return
    for key, token in values.items():
        if token is not None and key in _generation_keys:
            tokens.setdefault(key, token)


def _read(keys: list[str]) -> dict:
    """`cache.get_many(keys)` for generation keys and values, answered from this request's
    tokens and this process's kept values where it can, in at most one round trip."""
    tokens = _request_tokens.get()
    found, wanted = {}, []
    for key in keys:
        if key in _generation_keys:
            if tokens is not None and key in tokens:
                found[key] = tokens[key]
                continue
        else:
            kept = _kept_for(key)[0].get(key)
            if kept is not None:
                found[key] = kept
                continue
        wanted.append(key)
    if not wanted:
        return found
    if tokens is not None and any(key in _generation_keys for key in wanted):
        # The first generation read of the request reads them all.
        wanted += [k for k in list(_generation_keys) if k not in tokens and k not in wanted]
    fetched = cache.get_many(wanted)
    for key in wanted:
        if key in _generation_keys:
            if tokens is not None and key in fetched:
                tokens[key] = fetched[key]
        elif key in fetched:
            _keep(key, fetched[key])
    found.update({key: fetched[key] for key in keys if key in fetched})
    return found


def _generation(found: dict, gen_key: str) -> str:
    """The current token of a generation (read in the same `get_many` as the values)."""
    token = found.get(gen_key)
    if token is None:
        token = uuid4().hex
        if not cache.add(gen_key, token, None):  # another request started it meanwhile
            token = cache.get(gen_key) or token
        tokens = _request_tokens.get()
        if tokens is not None:
            tokens[gen_key] = token
    return token


def _fresh(found: dict, key: str | None, token: str):
    """The value cached under `key` if it was read under the current token, else None."""
    item = found.get(key) if key else None
    if not isinstance(item, tuple) or len(item) != 2 or item[0] != token:
        return None
    value = item[1]
    return pickle.loads(value) if isinstance(value, _Kept) else value  # noqa: S301 (our own)


def _store(key: str, token: str, value) -> None:
    cache.set(key, (token, value), _ttl())
    _keep(key, (token, value))


def request_started(**kwargs) -> None:
    _request_tokens.set({})


def request_finished(**kwargs) -> None:
    _request_tokens.set(None)


# --- Campaigns -----------------------------------------------------------------------------------


def _load_rule_lists(campaign_id: int) -> tuple[tuple, tuple, tuple]:
    industries = list(
        CampaignIndustry.objects.filter(campaign_id=campaign_id).values_list("code", "excluded")
    )
    areas = CampaignArea.objects.filter(campaign_id=campaign_id).values_list("code", flat=True)
    return (
        tuple(c for c, excluded in industries if not excluded),
        tuple(c for c, excluded in industries if excluded),
        tuple(areas),
    )


def _load_active_campaigns(token: str) -> list[Campaign]:
    campaigns = list(
        Campaign.objects.filter(status=CampaignStatus.ACTIVE).order_by("starts_at", "pk")
    )
    for campaign in campaigns:  # the rules travel with the campaign: one cache read for both
        campaign._cached_rule_lists = _load_rule_lists(campaign.pk)
    _store(ACTIVE_CAMPAIGNS_KEY, token, campaigns)
    return campaigns


def active_campaigns() -> list[Campaign]:
    """Every active campaign, earliest start first (ties by id), with its rule lists."""
    found = _read([CAMPAIGN_GEN, ACTIVE_CAMPAIGNS_KEY])
    token = _generation(found, CAMPAIGN_GEN)
    campaigns = _fresh(found, ACTIVE_CAMPAIGNS_KEY, token)
    return _load_active_campaigns(token) if campaigns is None else campaigns


def _window_match(campaigns: list[Campaign], issue_date: date) -> Campaign | None:
    tz = timezone.get_current_timezone()
    day_start = timezone.make_aware(datetime.combine(issue_date, time.min), tz)
    day_end = day_start + timedelta(days=1)
    for campaign in campaigns:
        if campaign.starts_at < day_end and campaign.ends_at >= day_start:
            return campaign
    return None


def campaign_for_issue_date(issue_date: date) -> Campaign | None:
    """The open campaign whose window (in local time) contains the issue date; the earliest
    starting one if windows overlap, so an invoice enters at most one campaign."""
    return _window_match(active_campaigns(), issue_date)


def campaign_and_merchant(issue_date: date, uscc: str):
    """(`campaign_for_issue_date`, `merchant_by_uscc`) with one cache round trip."""
    merchant_key = _merchant_key(uscc) if uscc else None
    found = _read(
        [CAMPAIGN_GEN, MERCHANT_GEN, ACTIVE_CAMPAIGNS_KEY, *([merchant_key] if uscc else [])]
    )
    campaign_token = _generation(found, CAMPAIGN_GEN)
    campaigns = _fresh(found, ACTIVE_CAMPAIGNS_KEY, campaign_token)
    if campaigns is None:
        campaigns = _load_active_campaigns(campaign_token)
    merchant = _NONE
    if uscc:
        merchant_token = _generation(found, MERCHANT_GEN)
        merchant = _fresh(found, merchant_key, merchant_token)
        if merchant is None:
            merchant = _load_merchant(uscc, merchant_token)
    return _window_match(campaigns, issue_date), (None if merchant == _NONE else merchant)


def campaign_rule_lists(campaign: Campaign) -> tuple[tuple, tuple, tuple]:
    """(included industry prefixes, excluded industry prefixes, area prefixes)."""
    lists = getattr(campaign, "_cached_rule_lists", None)  # came with `active_campaigns`
    if lists is not None:
        return lists
    key = _rules_key(campaign.pk)
    found = _read([CAMPAIGN_GEN, key])
    token = _generation(found, CAMPAIGN_GEN)
    lists = _fresh(found, key, token)
    if lists is None:
        lists = _load_rule_lists(campaign.pk)
        _store(key, token, lists)
    return lists


def campaign_code(campaign_id: int) -> str:
    """A campaign's code by id ("" for none)."""
    if not campaign_id:
        return ""
    key = _code_key(campaign_id)
    found = _read([CAMPAIGN_GEN, key])
    token = _generation(found, CAMPAIGN_GEN)
    code = _fresh(found, key, token)
    if code is None:
        code = Campaign.objects.filter(pk=campaign_id).values_list("code", flat=True).first() or ""
        _store(key, token, code)
    return code


def campaign_cache_clear(campaign_id: int | None = None) -> None:
    """Forget every cached campaign, rule list and code (a new generation). Call after writing
    campaigns or their rules without `save()` / `delete()`. `campaign_id` is accepted for the
    callers' readability; every campaign's entries go."""
    _bump(CAMPAIGN_GEN)


# --- Merchants -----------------------------------------------------------------------------------


def merchant_by_uscc(uscc: str):
    """The merchant with this credit code, or None."""
    if not uscc:
        return None
    key = _merchant_key(uscc)
    found = _read([MERCHANT_GEN, key])
    token = _generation(found, MERCHANT_GEN)
    merchant = _fresh(found, key, token)
    if merchant is None:
        merchant = _load_merchant(uscc, token)
    return None if merchant == _NONE else merchant


def _load_merchant(uscc: str, token: str):
    from apps.merchants.models import Merchant

    merchant = Merchant.objects.filter(uscc=uscc).first() or _NONE
    _store(_merchant_key(uscc), token, merchant)
    return merchant


def merchant_cache_clear(*usccs: str) -> None:
    """Forget every cached merchant (a new generation). Call after writing merchants without
    `save()`; the credit codes are accepted for the callers' readability."""
    _bump(MERCHANT_GEN)


# --- Other configuration read on the submission path (prizes, instant pools) --------------------


def read_through(gen_key: str, key: str, load):
    """`load()` cached under `key` in the generation `gen_key` (same rules as above: a value
    stored under an older generation is never served). `load` may return None."""
    _generation_keys.setdefault(gen_key, None)
    found = _read([gen_key, key])
    token = _generation(found, gen_key)
    value = _fresh(found, key, token)
    if value is None:
        value = load()
        _store(key, token, _NONE if value is None else value)
    return None if value == _NONE else value


def generation_bump(gen_key: str) -> None:
    """Forget everything cached in the generation `gen_key` (now and after the commit)."""
    _bump(gen_key)


# --- Invalidation --------------------------------------------------------------------------------


def _bump(gen_key: str) -> None:
    """A new generation now, and another after the commit: values read before our commit
    and stored in between carry a token that is no longer current."""
    _replace_generation(gen_key)
    transaction.on_commit(lambda: _replace_generation(gen_key))


def _replace_generation(gen_key: str) -> None:
    cache.set(gen_key, uuid4().hex, None)
    tokens = _request_tokens.get()
    if tokens is not None:  # this request reads the new token next time
        tokens.pop(gen_key, None)


def _on_campaign(sender, instance, **kwargs) -> None:
    campaign_cache_clear(instance.pk)


def _on_campaign_rule(sender, instance, **kwargs) -> None:
    campaign_cache_clear(instance.campaign_id)


def _on_merchant(sender, instance, **kwargs) -> None:
    merchant_cache_clear(instance.uscc)


def connect_signals() -> None:
    from django.core import signals
    from django.db.models.signals import post_delete, post_save

    from apps.merchants.models import Merchant

    signals.request_started.connect(request_started, dispatch_uid="cfg-cache-request-started")
    signals.request_finished.connect(request_finished, dispatch_uid="cfg-cache-request-finished")

    for model in (Campaign,):
        post_save.connect(_on_campaign, sender=model, dispatch_uid=f"cfg-cache-{model.__name__}")
        post_delete.connect(
            _on_campaign, sender=model, dispatch_uid=f"cfg-cache-del-{model.__name__}"
        )
    for model in (CampaignIndustry, CampaignArea):
        post_save.connect(
            _on_campaign_rule, sender=model, dispatch_uid=f"cfg-cache-{model.__name__}"
        )
        post_delete.connect(
            _on_campaign_rule, sender=model, dispatch_uid=f"cfg-cache-del-{model.__name__}"
        )
    post_save.connect(_on_merchant, sender=Merchant, dispatch_uid="cfg-cache-merchant")
    post_delete.connect(_on_merchant, sender=Merchant, dispatch_uid="cfg-cache-merchant-del")
