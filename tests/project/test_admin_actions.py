"""No admin action is offered to, or runnable by, a user who may only view.

Django offers an action declared without `permissions` to anyone who can see the changelist;
this walks every registered ModelAdmin so a new action without permissions fails here.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.test import RequestFactory

from tests.accounts.helpers import sign_in_staff
from tests.factories.core import UserFactory

pytestmark = pytest.mark.django_db

# Read-only actions that are meant for viewers (they write an audit record themselves).
READ_ONLY_ACTIONS = {("audit", "auditevent", "export_csv")}


def view_only_user(model):
    user = UserFactory(is_staff=True)
    ct = ContentType.objects.get_for_model(model)
    # The model's own view permission (a proxy shares its concrete model's content type, which
    # may carry other "view_…" permissions too).
    views = Permission.objects.filter(content_type=ct, codename__startswith="view_")
    own = views.filter(codename=f"view_{model._meta.model_name}").first()
    user.user_permissions.add(own or views.get())
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label_lower)
def test_view_only_user_is_offered_no_writing_action(model):
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = view_only_user(model)
    offered = set(model_admin.get_actions(request))
    allowed = {
        a
        for (app, name, a) in READ_ONLY_ACTIONS
        if (app, name) == (model._meta.app_label, model._meta.model_name)
    }
    assert offered <= allowed, f"{model._meta.label}: {sorted(offered - allowed)}"
    # Every custom action declares the permissions it needs.
    for action in model_admin.actions or ():
        func = getattr(model_admin, action) if isinstance(action, str) else action
        assert getattr(func, "allowed_permissions", None), f"{model._meta.label}.{action}"


def test_posting_an_action_as_view_only_user_changes_nothing(client):
    from apps.merchants.models import Merchant
    from tests.factories.core import MerchantFactory

    merchant = MerchantFactory()
    sign_in_staff(client, view_only_user(Merchant))
    response = client.post(
        "/admin/merchants/merchant/",
        {"action": "blacklist", "_selected_action": [merchant.pk]},
    )
    assert response.status_code in (200, 302, 403)
    merchant.refresh_from_db()
    assert merchant.status == "active"
