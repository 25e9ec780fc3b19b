"""The consumer app's sign-in by SMS code: allauth headless's two code endpoints, plus sign-up.

allauth's login-by-code only serves phones that already belong to an account. For consumers the
first confirmed code of a phone IS the sign-up, so these views (mounted in `lotteryinvoice/urls.py`
over allauth's own `/_allauth/app/v1/auth/code/request` and `/code/confirm`) add exactly that:

- request: for an unknown phone a code is generated and texted as for a known one (same answer,
  same rate limits, so the answer tells nobody whether the phone has an account), and the pending
  sign-in remembers that it is a sign-up;
- confirm: once that code is confirmed, the consumer is created (`consumer_register_by_phone`)
  and allauth's own flow completes the sign-in. No account exists before its phone is proved.

Everything else (rate limits, attempts, timeouts, the session token) is allauth's. A rate-limited
code request is answered 429 (allauth answers it as a form error).

The phone stays out of the session store as far as allauth lets it: a pending sign-in (which holds
the phone and the code) is kept only as long as its code is valid, and the record of how the
session signed in keeps the masked phone, not the phone.
"""

from __future__ import annotations

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY
from allauth.account.internal.flows.login_by_code import LoginCodeVerificationProcess
from allauth.account.internal.userkit import user_id_to_str
from allauth.headless.account.views import ConfirmLoginCodeView, RequestLoginCodeView
from allauth.headless.base.response import AuthenticationResponse, RateLimitResponse
from django.conf import settings

from apps.accounts.services import consumer_register_by_phone
from apps.common.masking import mask_phone

# Marks a pending code sign-in whose phone has no account yet (in allauth's stage state).
SIGNUP_STATE_KEY = "lotteryinvoice_consumer_signup"
RATE_LIMITED_CODE = "too_many_login_attempts"


def _is_rate_limited(form) -> bool:
    return any(
        error.code == RATE_LIMITED_CODE
        for errors in form.errors.as_data().values()
        for error in errors
    )


class ConsumerRequestLoginCodeView(RequestLoginCodeView):
    def handle_invalid_input(self, input):
        if _is_rate_limited(input):
            return RateLimitResponse(self.request)
        return super().handle_invalid_input(input)

    def post(self, request, *args, **kwargs):
        phone = self.input.cleaned_data.get("phone")
        user = getattr(self.input, "_user", None)
        process = LoginCodeVerificationProcess.initiate(request=request, user=user, phone=phone)
        if user is None and phone:
            adapter = get_account_adapter(request)
            code = adapter.generate_phone_verification_code(user=None, phone=phone)
            process.state["code"] = code
            process.state[SIGNUP_STATE_KEY] = True
            process.persist()
            adapter.send_verification_code_sms(user=None, phone=phone, code=code)
        if not request.user.is_authenticated:
            # The pending sign-in (phone and code) need not outlive its code.
            request.session.set_expiry(settings.ACCOUNT_LOGIN_BY_CODE_TIMEOUT)
        return AuthenticationResponse(request)


class ConsumerConfirmLoginCodeView(ConfirmLoginCodeView):
    def post(self, request, *args, **kwargs):
        process = self.process
        if process.user is None and process.state.get(SIGNUP_STATE_KEY):
            # The code was right (the input is valid): the phone is proved; now the account.
            user = consumer_register_by_phone(phone=process.state["phone"])
            process._user = user
            process.state["user_id"] = user_id_to_str(user)
            process.stage.login.user = user
        response = super().post(request, *args, **kwargs)
        if _mask_recorded_phones(request.session):
            response = AuthenticationResponse(request)
        return response


def _mask_recorded_phones(session) -> bool:
    """allauth records the full phone with each code sign-in (`{"method": "code", "phone": …}`)
    in the session, for the session's lifetime; keep the masked one instead."""
    records = session.get(AUTHENTICATION_METHODS_SESSION_KEY)
    if not isinstance(records, list):
        return False
    changed = False
    for record in records:
        phone = record.get("phone") if isinstance(record, dict) else None
        if isinstance(phone, str) and "*" not in phone:
            record["phone"] = mask_phone(phone)
            changed = True
    if changed:
        session[AUTHENTICATION_METHODS_SESSION_KEY] = records
    return changed
