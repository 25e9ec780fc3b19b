"""django-allauth adapters: closed sign-up, uniform login failures, encrypted MFA secrets."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.shortcuts import resolve_url

from apps.common import crypto

# allauth hands the adapter only the secret text (a TOTP key, a recovery-code seed), before the
# authenticator row exists: the associated data binds ciphertexts to this purpose and column,
# so no other encrypted field of the project decrypts in their place, or they in its.
MFA_SECRET_AAD = crypto.associated_data("mfa_authenticator", "data", "secret")


class AccountAdapter(DefaultAccountAdapter):
    """Staff sign-in through allauth's forms.

    - Sign-up is closed: staff accounts are created by the system administrator (consumers will
      register through their own API flow, with its own rules).
    - Every refused password login reads the same: allauth's "too many attempts" (its own rate
      limit) uses the wrong-credentials text and still costs one password hash, so an attacker
      cannot tell a rate limit or a lockout from a wrong password or an unknown user.
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
