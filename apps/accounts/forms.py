"""The back office's sign-in form."""

from __future__ import annotations

from allauth.account.forms import LoginForm
from allauth.utils import get_username_max_length
from django import forms
from django.contrib.auth import get_user_model
from django.utils.text import capfirst


class StaffLoginForm(LoginForm):
    """allauth's login form with a plain username field (`ACCOUNT_FORMS["login"]`).

    The project's login methods include "phone" for the consumer app; on the staff pages that
    would turn the field into "Username or phone", yet staff sign in by username only.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        label = capfirst(get_user_model()._meta.get_field("username").verbose_name)
        self.fields["login"] = forms.CharField(
            label=label,
            max_length=get_username_max_length(),
            widget=forms.TextInput(attrs={"placeholder": label, "autocomplete": "username"}),
        )

    def user_credentials(self) -> dict:
        credentials = {"username": self.cleaned_data["login"]}
        password = self.cleaned_data.get("password")
        if password:
            credentials["password"] = password
        return credentials
