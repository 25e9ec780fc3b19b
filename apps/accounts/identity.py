"""Real-name verification of consumers: does this name belong to this resident ID number?

Outcomes: `match` (name and ID number belong together), `mismatch` (the ID number exists with
another name), `not_found` (no such ID number), `unavailable` (no answer; `detail` says why:
`timeout`, `connection_error`, `http_<status>`, `rate_limited`, `malformed_reply`). When a phone
number is given, `phone_match` says whether it is registered to that identity (None: not asked,
not known, or the identity did not match).

`verify_account` asks the same service whether a payout account (bank card or wallet) is held in
that verified name and ID number — prize money goes only to the winner's own account. Its
`AccountCheck` has `match` (True only for a positive answer) and `code`: `match`, `mismatch` (the
account is someone else's, or the name does not fit), `not_found` (no such account) or
`unavailable` (no answer; `detail` as above).

Backends:
- `HttpIdentityVerifier`: the identity service over HTTP (docs/adapters.md). Production.
- `LocalIdentityVerifier`: FOR DEVELOPMENT AND DEMOS ONLY. It checks nothing against any
  register: any well-formed name with a valid resident ID number "matches". It is the embedded
  default so `make run` works offline; `get_identity_verifier()` refuses it when
  `DJANGO_ENV=production`, which must set `IDENTITY_VERIFIER_BACKEND=http`.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models

from apps.common.http import (
    ServiceError,
    check_base_url,
    check_credentials,
    check_timeout,
    shared_client,
)
from apps.common.pii import normalize_identifier, normalize_name

from .validators import validate_resident_id

logger = logging.getLogger(__name__)

VERIFY_PATH = "/v1/identity/verify"
ACCOUNT_VERIFY_PATH = "/v1/identity/account-verify"
ACCOUNT_TYPES = ("bank_card", "wallet")
MAX_ACCOUNT_NO_LENGTH = 64
DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_NAME_LENGTH = 64
MIDDLE_DOT = "·"


class IdentityOutcome(models.TextChoices):
    MATCH = "match"
    MISMATCH = "mismatch"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class IdentityCheck:
    """One answer about one identity.

    Invariants (checked on construction): `detail` is non-empty exactly when the outcome is
    `unavailable`; `phone_match` is None unless the outcome is `match`.
    """

    outcome: IdentityOutcome
    phone_match: bool | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        outcome = IdentityOutcome(self.outcome)
        object.__setattr__(self, "outcome", outcome)
        if bool(self.detail) != (outcome == IdentityOutcome.UNAVAILABLE):
            raise ValueError("a detail comes with `unavailable` and only with it")
        if self.phone_match is not None and outcome != IdentityOutcome.MATCH:
            raise ValueError("phone_match is only known for a matching identity")

    @property
    def is_answer(self) -> bool:
        return self.outcome != IdentityOutcome.UNAVAILABLE

    @classmethod
    def unavailable(cls, detail: str) -> IdentityCheck:
        return cls(outcome=IdentityOutcome.UNAVAILABLE, detail=detail)


class AccountCheckCode(models.TextChoices):
    MATCH = "match"
    MISMATCH = "mismatch"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class AccountCheck:
    """One answer about who holds a payout account.

    Invariants (checked on construction): `match` is true exactly when `code` is `match`;
    `detail` is non-empty exactly when `code` is `unavailable`.
    """

    match: bool
    code: str
    detail: str = ""

    def __post_init__(self) -> None:
        code = AccountCheckCode(self.code)
        object.__setattr__(self, "code", code)
        if bool(self.match) != (code == AccountCheckCode.MATCH):
            raise ValueError("match is true for the code `match` and only for it")
        if bool(self.detail) != (code == AccountCheckCode.UNAVAILABLE):
            raise ValueError("a detail comes with `unavailable` and only with it")

    @property
    def is_answer(self) -> bool:
        return self.code != AccountCheckCode.UNAVAILABLE

    @classmethod
    def answer(cls, code: str) -> AccountCheck:
        return cls(match=code == AccountCheckCode.MATCH, code=code)

    @classmethod
    def unavailable(cls, detail: str) -> AccountCheck:
        return cls(match=False, code=AccountCheckCode.UNAVAILABLE, detail=detail)


def normalize_account_no(account_type: str, account_no: str) -> str:
    """NFKC without whitespace; a card number also loses its dashes. A wallet id keeps its case
    and punctuation: wallets may tell `Ab-1` from `AB1`."""
    text = "".join(ch for ch in unicodedata.normalize("NFKC", account_no) if not ch.isspace())
    return text.replace("-", "") if account_type == "bank_card" else text


def is_well_formed_account(account_type: str, account_no: str) -> bool:
    """A bank card number (12–19 digits) or a wallet account id (1–64 visible ASCII characters),
    normalised (`normalize_account_no`)."""
    if account_type == "bank_card":
        return account_no.isascii() and account_no.isdigit() and 12 <= len(account_no) <= 19
    return (
        0 < len(account_no) <= MAX_ACCOUNT_NO_LENGTH
        and account_no.isascii()
        and account_no.isprintable()
    )


def is_well_formed_name(name: str) -> bool:
    """A person's name as written on an ID card: letters (any script) and middle dots between
    them, 2 to 64 characters once normalised (see `apps.common.pii.normalize_name`)."""
    if not 2 <= len(name) <= MAX_NAME_LENGTH:
        return False
    if name.startswith(MIDDLE_DOT) or name.endswith(MIDDLE_DOT) or MIDDLE_DOT * 2 in name:
        return False
    return all(ch == MIDDLE_DOT or unicodedata.category(ch).startswith("L") for ch in name)


class IdentityVerifier:
    """Base of the identity backends. `verify` normalises the input (NFKC, no spaces, upper-case
    check character) and never raises because of the service (that is `unavailable`)."""

    def verify(self, *, name: str, id_number: str, phone: str | None = None) -> IdentityCheck:
        if not isinstance(name, str) or not isinstance(id_number, str):
            raise TypeError("name and id_number must be text")
        if phone is not None and not isinstance(phone, str):
            raise TypeError("phone must be text or None")
        normalized_phone = normalize_identifier(phone) if phone is not None else ""
        return self._verify(
            name=normalize_name(name),
            id_number=normalize_identifier(id_number),
            phone=normalized_phone or None,
        )

    def _verify(self, *, name: str, id_number: str, phone: str | None) -> IdentityCheck:
        raise NotImplementedError

    def verify_account(
        self, *, name: str, id_number: str, account_type: str, account_no: str
    ) -> AccountCheck:
        """Is this payout account held by this person? Normalises like `verify`; raises
        `ValueError` for an unknown `account_type` (the caller's bug) and never because of the
        service (that is `unavailable`)."""
        if not all(isinstance(v, str) for v in (name, id_number, account_no)):
            raise TypeError("name, id_number and account_no must be text")
        if account_type not in ACCOUNT_TYPES:
            raise ValueError(f"account_type must be one of {ACCOUNT_TYPES}")
        return self._verify_account(
            name=normalize_name(name),
            id_number=normalize_identifier(id_number),
            account_type=account_type,
            account_no=normalize_account_no(account_type, account_no),
        )

    def _verify_account(
        self, *, name: str, id_number: str, account_type: str, account_no: str
    ) -> AccountCheck:
        raise NotImplementedError


class LocalIdentityVerifier(IdentityVerifier):
    """DEVELOPMENT ONLY: no register is consulted.

    A well-formed name with a valid resident ID number (`validate_resident_id`) is a `match`;
    an invalid ID number is `not_found`; a malformed name is `mismatch`. It never claims to know
    the phone (`phone_match=None`). Production must use `HttpIdentityVerifier`.
    """

    def _verify(self, *, name: str, id_number: str, phone: str | None) -> IdentityCheck:
        try:
            validate_resident_id(id_number)
        except ValidationError:
            return IdentityCheck(outcome=IdentityOutcome.NOT_FOUND)
        if not is_well_formed_name(name):
            return IdentityCheck(outcome=IdentityOutcome.MISMATCH)
        return IdentityCheck(outcome=IdentityOutcome.MATCH)

    def _verify_account(
        self, *, name: str, id_number: str, account_type: str, account_no: str
    ) -> AccountCheck:
        """DEVELOPMENT ONLY: any well-formed account of a well-formed identity "matches"."""
        if not is_well_formed_account(account_type, account_no):
            return AccountCheck.answer(AccountCheckCode.NOT_FOUND)
        identity = self._verify(name=name, id_number=id_number, phone=None)
        if identity.outcome != IdentityOutcome.MATCH:
            return AccountCheck.answer(AccountCheckCode.MISMATCH)
        return AccountCheck.answer(AccountCheckCode.MATCH)


class HttpIdentityVerifier(IdentityVerifier):
    """The real-name identity service over HTTP (docs/adapters.md, "Identity verification").

    Never raises on network trouble: failures are `unavailable` with `detail` `timeout`,
    `connection_error`, `http_<status>` (e.g. `http_503`, `http_401`), `rate_limited` (429) or
    `malformed_reply`.
    """

    service_name = "identity-verifier"

    def __init__(self, base_url: str, client_id: str, secret: str, timeout: float):
        self._client = shared_client(
            service=self.service_name,
            base_url=base_url,
            client_id=client_id,
            secret=secret,
            timeout=check_timeout(timeout, setting="IDENTITY_VERIFIER_TIMEOUT"),
        )

    def _verify(self, *, name: str, id_number: str, phone: str | None) -> IdentityCheck:
        payload: dict[str, str] = {"name": name, "id_number": id_number}
        if phone:
            payload["phone"] = phone
        try:
            reply = self._client.post(VERIFY_PATH, payload)
        except ServiceError as exc:
            return IdentityCheck.unavailable("rate_limited" if exc.status == 429 else exc.reason)
        result = reply.data.get("result")
        phone_match = reply.data.get("phone_match")
        valid_phone_match = phone_match is None or isinstance(phone_match, bool)
        valid_result = isinstance(result, str) and result in {"match", "mismatch", "not_found"}
        if not valid_result or not valid_phone_match:
            logger.warning("%s reply does not follow the protocol", self.service_name)
            return IdentityCheck.unavailable("malformed_reply")
        # The phone is only asked about, and only meaningful, for a matching identity.
        if result != IdentityOutcome.MATCH or not phone:
            phone_match = None
        return IdentityCheck(outcome=IdentityOutcome(result), phone_match=phone_match)

    def _verify_account(
        self, *, name: str, id_number: str, account_type: str, account_no: str
    ) -> AccountCheck:
        payload = {
            "name": name,
            "id_number": id_number,
            "account_type": account_type,
            "account_no": account_no,
        }
        try:
            reply = self._client.post(ACCOUNT_VERIFY_PATH, payload)
        except ServiceError as exc:
            return AccountCheck.unavailable("rate_limited" if exc.status == 429 else exc.reason)
        result = reply.data.get("result")
        if not isinstance(result, str) or result not in {"match", "mismatch", "not_found"}:
            logger.warning("%s account reply does not follow the protocol", self.service_name)
            return AccountCheck.unavailable("malformed_reply")
        return AccountCheck.answer(result)


def get_identity_verifier() -> IdentityVerifier:
    """The configured verifier.

    Settings: `IDENTITY_VERIFIER_BACKEND` ("local", the development default, or "http"); for
    "http" also `IDENTITY_VERIFIER_URL`, `IDENTITY_VERIFIER_CLIENT_ID`,
    `IDENTITY_VERIFIER_SECRET` and `IDENTITY_VERIFIER_TIMEOUT` (seconds, default 5). Raises
    `ImproperlyConfigured` for "local" when `settings.PRODUCTION` is true.
    """
    backend = getattr(settings, "IDENTITY_VERIFIER_BACKEND", "local") or "local"
    if backend == "local":
        if getattr(settings, "PRODUCTION", False):
            raise ImproperlyConfigured(
                "IDENTITY_VERIFIER_BACKEND=local verifies nothing and is for development only; "
                "production must set IDENTITY_VERIFIER_BACKEND=http."
            )
        return LocalIdentityVerifier()
    if backend != "http":
        raise ImproperlyConfigured('IDENTITY_VERIFIER_BACKEND must be "local" or "http".')
    client_id = getattr(settings, "IDENTITY_VERIFIER_CLIENT_ID", "")
    secret = getattr(settings, "IDENTITY_VERIFIER_SECRET", "")
    check_credentials(client_id, secret, prefix="IDENTITY_VERIFIER_")
    return HttpIdentityVerifier(
        base_url=check_base_url(
            getattr(settings, "IDENTITY_VERIFIER_URL", ""), setting="IDENTITY_VERIFIER_URL"
        ),
        client_id=client_id,
        secret=secret,
        timeout=check_timeout(
            getattr(settings, "IDENTITY_VERIFIER_TIMEOUT", DEFAULT_TIMEOUT_SECONDS),
            setting="IDENTITY_VERIFIER_TIMEOUT",
        ),
    )
