"""django-allauth adapters: two doors, closed sign-up, uniform login failures, encrypted MFA
secrets, consumers' phones and the city app's identity.

The two doors:
- Staff use the browser pages (`/accounts/…`): username, password and TOTP. Nobody signs up.
- Consumers use the app API (`/_allauth/app/v1/…`, allauth headless, `X-Session-Token`): phone
  number and a one-time SMS code. The first confirmed code of an unknown phone creates the
  consumer (`apps.accounts.api.headless`). Optionally they sign in with the city app (OpenID
  Connect, `SocialAccountAdapter`).
Staff accounts are refused at the app door in every flow (password, code, city app), so the app
API never becomes a way round the staff second factor; and a phone is only ever resolved to an
account at the app door, so the browser's code form sends no SMS to anyone.

Consumers' phones live only in `Consumer.phone` (encrypted) and are found through its blind
index; there is no phone on the User row, and allauth's phone hooks below map onto the Consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.stagekit import clear_login
from allauth.account.utils import user_username
from allauth.core import context
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.core.internal.httpkit import is_headless_request
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseForbidden, JsonResponse
from django.shortcuts import resolve_url

from apps.audit.models import AuditCategory, AuditOutcome
from apps.audit.services import audit_record
from apps.common import crypto
from apps.common.masking import mask_phone
from apps.common.pii import normalize_name

from .identity import is_well_formed_name
from .phone import PhoneField, normalize_phone, validate_mainland_mobile
from .selectors import consumer_get_by_id_number, consumer_get_by_phone
from .services import (
    CONSUMER_USERNAME_PREFIX,
    consumer_apply_city_identity,
    consumer_change_phone,
    consumer_register_for_user,
    new_consumer_username,
)
from .sms import SMSError, get_sms_backend
from .validators import validate_resident_id

logger = logging.getLogger(__name__)

# allauth hands the adapter only the secret text (a TOTP key, a recovery-code seed), before the
# authenticator row exists: the associated data binds ciphertexts to this purpose and column,
# so no other encrypted field of the project decrypts in their place, or they in its.
MFA_SECRET_AAD = crypto.associated_data("mfa_authenticator", "data", "secret")

# The SMS gateway's template for sign-in codes (docs/adapters.md, "SMS gateway").
LOGIN_CODE_SMS_TEMPLATE = "login_code"


def is_app_request(request) -> bool:
    """Whether `request` came through the consumer app's door (allauth headless)."""
    return request is not None and bool(is_headless_request(request))


def may_use_app(user) -> bool:
    """Staff and superusers never sign in through the app API (their door has the second
    factor); every other account may."""
    return not (user.is_staff or user.is_superuser)


def consumer_of(user):
    """The user's Consumer profile, or None (staff, anonymous)."""
    if user is None or not getattr(user, "pk", None):
        return None
    try:
        return user.consumer
    except ObjectDoesNotExist:
        return None


def _masked_credentials(credentials: Mapping[str, Any]) -> dict[str, Any]:
    # As django.contrib.auth does before sending `user_login_failed`.
    return {k: ("*" * 20 if k == "password" else v) for k, v in credentials.items()}


def _refuse_at_app_door(user) -> None:
    audit_record(
        action="auth.app_sign_in_refused",
        category=AuditCategory.SECURITY,
        outcome=AuditOutcome.DENIED,
        target=user,
        after={"reason": "staff_account"},
    )


class AccountAdapter(DefaultAccountAdapter):
    """Staff sign-in through allauth's forms, consumer sign-in through the app API.

    - Sign-up is closed: staff accounts are created by the system administrator; consumer
      accounts come into existence by their first confirmed SMS code (or city-app sign-in),
      never through allauth's sign-up endpoint.
    - Every refused password login reads the same: allauth's "too many attempts" (its own rate
      limit) uses the wrong-credentials text and still costs one password hash, so an attacker
      cannot tell a rate limit or a lockout from a wrong password or an unknown user.
    - A staff password presented at the app door is a failed login (axes counts it).
    """

    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "too_many_login_attempts": DefaultAccountAdapter.error_messages[
            "username_password_mismatch"
        ],
    }

    def is_open_for_signup(self, request) -> bool:
        return False

    def get_password_change_redirect_url(self, request) -> str:
        # Back to work: a forced change (expired password) should not end on the same form.
        return resolve_url(settings.LOGIN_REDIRECT_URL)

    def pre_authenticate(self, request, **credentials) -> None:
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            make_password(credentials.get("password") or "")
            raise

    def authenticate(self, request, **credentials):
        user = super().authenticate(request, **credentials)
        if user is not None and is_app_request(request) and not may_use_app(user):
            # Right password, wrong door: answered and counted exactly like a wrong password.
            user_login_failed.send(
                sender=__name__, credentials=_masked_credentials(credentials), request=request
            )
            _refuse_at_app_door(user)
            return None
        return user

    def pre_login(self, request, user, **kwargs):
        if is_app_request(request) and not may_use_app(user):
            # Any other way in (a sign-in code, the city app) meets the same refusal; the app
            # client sees an ordinary "not signed in" answer.
            clear_login(request)
            _refuse_at_app_door(user)
            return HttpResponseForbidden()
        return super().pre_login(request, user, **kwargs)

    def login(self, request, user) -> None:
        super().login(request, user)
        if is_app_request(request):
            # The app's session (its token is the session key) is kept by the store while it is
            # in use; `ConsumerSessionTokenStrategy` enforces the idle and absolute limits.
            request.session.set_expiry(settings.CONSUMER_SESSION_IDLE_TIMEOUT_SECONDS)

    def populate_username(self, request, user) -> None:
        # Only accounts created by a sign-in flow get here (consumers): a random login name.
        if not user_username(user):
            user_username(user, new_consumer_username())

    # --- Phones (allauth's phone hooks, mapped onto Consumer.phone) --------------------------

    def phone_form_field(self, **kwargs):
        return PhoneField(**kwargs)

    def clean_phone(self, phone: str) -> str:
        return validate_mainland_mobile(phone)

    def get_user_by_phone(self, phone: str):
        if not is_app_request(context.request):
            return None  # the browser pages serve staff, who have no phone on file
        consumer = consumer_get_by_phone(phone=normalize_phone(phone))
        if consumer is None or not may_use_app(consumer.user):
            return None
        return consumer.user

    def get_phone(self, user) -> tuple[str, bool] | None:
        consumer = consumer_of(user)
        if consumer is None or not consumer.phone:
            return None
        # A phone is stored only once it has proved itself (a confirmed code, or the city
        # app's verified claim), so a stored phone is a verified phone.
        return consumer.phone, True

    def set_phone(self, user, phone: str, verified: bool) -> None:
        # An unproven phone is never stored: it is written when its code is confirmed
        # (`set_phone_verified`).
        consumer = consumer_of(user)
        if consumer is not None and verified:
            consumer_change_phone(consumer=consumer, phone=validate_mainland_mobile(phone))

    def set_phone_verified(self, user, phone: str) -> None:
        consumer = consumer_of(user)
        if consumer is not None:
            consumer_change_phone(consumer=consumer, phone=validate_mainland_mobile(phone))

    def send_verification_code_sms(self, user, phone: str, code: str, **kwargs) -> None:
        send_code_sms(phone=phone, code=code)

    def send_unknown_account_sms(self, phone: str, **kwargs) -> None:
        # Nothing to say: at the app door an unknown phone gets a sign-up code instead
        # (`apps.accounts.api.headless`), and the browser pages never text anyone.
        pass

    def send_account_already_exists_sms(self, phone: str) -> None:
        pass  # sign-up by form is closed


def send_code_sms(*, phone: str, code: str) -> None:
    """Text a one-time code. The log line carries the masked phone only, never the code; a
    gateway failure is answered to the app as `sms.unavailable` (503) or `sms.invalid_phone`."""
    try:
        get_sms_backend().send(phone=phone, template=LOGIN_CODE_SMS_TEMPLATE, params={"code": code})
    except SMSError as exc:
        logger.warning("sign-in code to %s not sent: %s", mask_phone(phone), exc.reason or exc.code)
        request = context.request
        if not is_app_request(request):
            raise
        body = {
            "status": exc.status_code,
            "errors": [{"code": exc.code, "message": str(exc.message), "param": "phone"}],
        }
        raise ImmediateHttpResponse(JsonResponse(body, status=exc.status_code)) from None


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are stored encrypted (apps.common.crypto), and staff
    cannot switch their mandatory TOTP off themselves (a security administrator resets it by
    deleting the authenticator in the admin)."""

    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text, MFA_SECRET_AAD)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text, MFA_SECRET_AAD)

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        user = authenticator.user
        if authenticator.type == Authenticator.Type.TOTP and (user.is_staff or user.is_superuser):
            return False
        return super().can_delete_authenticator(authenticator)


# --- The city app (OpenID Connect) -------------------------------------------------------------

# The city app's claims contract. `name` and `id_number` are its real-name identity and count only
# when `identity_verified` is true; `phone_number` counts only when `phone_number_verified` is
# true (the OpenID Connect standard claim pair).
CLAIM_NAME = "name"
CLAIM_ID_NUMBER = "id_number"
CLAIM_IDENTITY_VERIFIED = "identity_verified"
CLAIM_PHONE = "phone_number"
CLAIM_PHONE_VERIFIED = "phone_number_verified"
# What is kept of the claims in `SocialAccount.extra_data` (stored in clear): no personal data.
KEPT_CLAIMS = frozenset({"sub", "iss", "aud", "iat", "exp", "auth_time"})


@dataclass(frozen=True)
class CityIdentity:
    """What the city app vouches for, validated and normalised; empty strings when not given
    or not verified."""

    real_name: str = ""
    id_number: str = ""
    phone: str = ""


def city_identity_from_claims(claims: Mapping[str, Any]) -> CityIdentity:
    """Map the city app's claims onto a consumer's identity.

    Only verified claims count, and only well-formed values: a name and ID number come as a
    pair (a valid resident ID number with a well-formed name, or neither); a phone must be a
    mainland mobile number. Nothing here raises on bad input: unusable claims are dropped.
    """
    real_name = id_number = phone = ""
    if claims.get(CLAIM_IDENTITY_VERIFIED) is True:
        raw_name = claims.get(CLAIM_NAME)
        name = normalize_name(raw_name) if isinstance(raw_name, str) else ""
        try:
            number = validate_resident_id(claims.get(CLAIM_ID_NUMBER))
        except ValidationError:
            number = ""
        if number and is_well_formed_name(name):
            real_name, id_number = name, number
    if claims.get(CLAIM_PHONE_VERIFIED) is True:
        try:
            phone = validate_mainland_mobile(claims.get(CLAIM_PHONE))
        except ValidationError:
            phone = ""
    return CityIdentity(real_name=real_name, id_number=id_number, phone=phone)


def oidc_claims(extra_data: Mapping[str, Any]) -> dict[str, Any]:
    """The claims of an OpenID Connect login (allauth keeps the ID token's and the userinfo
    answer's; userinfo wins where both have a claim)."""
    merged: dict[str, Any] = {}
    for part in ("id_token", "userinfo"):
        value = extra_data.get(part)
        if isinstance(value, Mapping):
            merged.update(value)
    return merged or dict(extra_data)


def _without_personal_data(extra_data: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for part in ("id_token", "userinfo"):
        value = extra_data.get(part)
        if isinstance(value, Mapping):
            kept[part] = {k: v for k, v in value.items() if k in KEPT_CLAIMS}
    return kept


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """Consumers' sign-in with the city app (OpenID Connect), at the app door only.

    - Nothing the city app says is stored in clear: not on the User row (no names, no e-mail),
      not in `SocialAccount.extra_data` (reduced to `KEPT_CLAIMS`); the verified identity goes
      to the Consumer's encrypted fields (`consumer_apply_city_identity`).
    - A first city-app sign-in joins the consumer who already holds that identity (resident ID
      number, else the verified phone) instead of creating a second one; otherwise it creates a
      consumer (one identity, one consumer).
    """

    @staticmethod
    def at_app_door(request, sociallogin) -> bool:
        # The token flow is an app API request; the redirect flow's callback is a browser page
        # of a sign-in the app started (allauth marks such a sign-in "headless").
        return is_app_request(request) or sociallogin.is_headless

    def is_open_for_signup(self, request, sociallogin) -> bool:
        return self.at_app_door(request, sociallogin)

    def is_auto_signup_allowed(self, request, sociallogin) -> bool:
        return True  # there is no sign-up form to show: the identity comes from the city app

    def populate_user(self, request, sociallogin, data):
        claims = oidc_claims(sociallogin.account.extra_data or {})
        sociallogin._city_identity = city_identity_from_claims(claims)
        sociallogin.account.extra_data = _without_personal_data(sociallogin.account.extra_data)
        sociallogin.email_addresses = []
        sociallogin.phone = None
        user = sociallogin.user
        user_username(user, "")
        return user

    def pre_social_login(self, request, sociallogin) -> None:
        if not self.at_app_door(request, sociallogin):
            # The browser pages serve staff, who never sign in with the city app.
            raise ImmediateHttpResponse(HttpResponseForbidden())
        identity: CityIdentity = getattr(sociallogin, "_city_identity", CityIdentity())
        if sociallogin.is_existing:
            if not may_use_app(sociallogin.user):
                _refuse_at_app_door(sociallogin.user)
                raise PermissionDenied
            consumer = consumer_of(sociallogin.user)
        else:
            consumer = self._consumer_holding(identity)
            if consumer is not None:
                sociallogin.connect(request, consumer.user)
        if consumer is not None and may_use_app(consumer.user):
            consumer_apply_city_identity(
                consumer=consumer,
                real_name=identity.real_name,
                id_number=identity.id_number,
                phone=identity.phone,
            )

    @staticmethod
    def _consumer_holding(identity: CityIdentity):
        for consumer in (
            consumer_get_by_id_number(id_number=identity.id_number),
            consumer_get_by_phone(phone=identity.phone),
        ):
            if consumer is not None and may_use_app(consumer.user):
                return consumer
        return None

    @transaction.atomic
    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form)
        consumer = consumer_register_for_user(user=user, channel="city_app")
        identity: CityIdentity = getattr(sociallogin, "_city_identity", CityIdentity())
        consumer_apply_city_identity(
            consumer=consumer,
            real_name=identity.real_name,
            id_number=identity.id_number,
            phone=identity.phone,
        )
        return user


__all__ = [
    "CONSUMER_USERNAME_PREFIX",
    "AccountAdapter",
    "CityIdentity",
    "MFAAdapter",
    "SocialAccountAdapter",
    "city_identity_from_claims",
    "consumer_of",
    "is_app_request",
    "may_use_app",
    "send_code_sms",
]
