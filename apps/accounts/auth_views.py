"""The two sign-in views the project adds to allauth's."""

from __future__ import annotations

from urllib.parse import urlencode

from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.views import ActivateTOTPView
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def admin_login(request, extra_context=None):
    """`admin.site.login`: the admin has no login form of its own.

    Its password-only form would bypass the second factor, so every admin login goes to the
    one allauth flow (password, then TOTP), which returns to the admin page asked for. A user
    who is signed in but not staff (the admin sends them here too) is refused outright: sending
    them to the login page would bounce straight back to the admin.
    """
    next_url = request.GET.get(REDIRECT_FIELD_NAME, "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("admin:index")
    if request.user.is_authenticated:
        if request.user.is_staff:  # already through both factors (StaffMFAMiddleware)
            return HttpResponseRedirect(next_url)
        raise PermissionDenied
    query = urlencode({REDIRECT_FIELD_NAME: next_url})
    return HttpResponseRedirect(f"{reverse('account_login')}?{query}")


class StaffActivateTOTPView(ActivateTOTPView):
    """allauth's TOTP set-up, which also counts as this session's second factor.

    Activation only succeeds with a valid code from the new authenticator, so the session has
    proved possession of it, exactly as at a TOTP sign-in; recording that lets a staff member
    who set up TOTP on first sign-in continue (to their recovery codes) without signing in
    again.
    """

    def form_valid(self, form):
        response = super().form_valid(form)
        user = self.request.user
        totp = Authenticator.objects.filter(user_id=user.pk, type=Authenticator.Type.TOTP).first()
        if totp is not None:
            # Spend the set-up code like a sign-in code, so it cannot be replayed at sign-in.
            totp.wrap().validate_code(form.cleaned_data["code"])
            record_authentication(
                self.request, user, method="mfa", id=totp.pk, type=totp.type, enrolled=True
            )
        return response


activate_totp = StaffActivateTOTPView.as_view()
