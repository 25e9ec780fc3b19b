"""Merchant admin: pages, search, filters, and status actions through `merchant_set_status`."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.common.exceptions import DomainError, InvalidTransition
from apps.merchants.choices import MerchantStatus
from apps.merchants.models import Merchant
from apps.merchants.services import merchant_set_status
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import MerchantFactory, UserFactory, make_uscc

pytestmark = pytest.mark.django_db


LIST = reverse("admin:merchants_merchant_changelist")
ADD = reverse("admin:merchants_merchant_add")
STATUS_ACTIONS = {"suspend", "blacklist", "reactivate"}


def change_url(merchant: Merchant) -> str:
    return reverse("admin:merchants_merchant_change", args=[merchant.pk])


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def result_pks(response) -> set[int]:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def offered_actions(response) -> set[str]:
    action_form = response.context["action_form"]
    if action_form is None:
        return set()
    return {name for name, _label in action_form.fields["action"].choices if name}


def run_action(client, action: str, merchants, **extra):
    data = {"action": action, "_selected_action": [m.pk for m in merchants], "index": 0, **extra}
    return client.post(LIST, data, follow=True)


def message_texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def merchant():
    return MerchantFactory(
        name="郑州二七饭店有限公司", uscc=make_uscc(501, area="410103"), area_code="410103"
    )


@pytest.fixture
def view_only_client(client):
    official = UserFactory(username="statistician", is_staff=True)
    official.user_permissions.set(
        Permission.objects.filter(content_type__app_label="merchants", codename="view_merchant")
    )
    sign_in_staff(client, official)
    return client


# --- pages, search, filters ---------------------------------------------------------------


def test_changelist_renders_area_name_with_code(admin_client, merchant):
    response = admin_client.get(LIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<td class="field-area">二七区 (410103)</td>' in html
    assert merchant.uscc in html


def test_change_and_add_views_render(admin_client, merchant):
    response = admin_client.get(change_url(merchant))
    assert response.status_code == 200
    form_fields = response.context["adminform"].form.fields
    assert "status" not in form_fields  # read-only: changes go through the actions
    assert "uscc" not in form_fields  # the identity of the merchant, fixed once saved
    assert {"name", "address", "area_code", "industry_code"} <= set(form_fields)
    assert admin_client.get(ADD).status_code == 200


def test_search_by_part_of_the_name(admin_client, merchant):
    MerchantFactory(name="郑州金水超市")
    assert result_pks(admin_client.get(LIST, {"q": "二七饭店"})) == {merchant.pk}
    assert result_pks(admin_client.get(LIST, {"q": "饭店 "})) == {merchant.pk}


@pytest.mark.parametrize(
    "transform",
    [
        lambda code: code,
        lambda code: code.lower(),
        fullwidth,
        lambda code: code[:10],
    ],
    ids=["exact", "lower-case", "full-width", "prefix"],
)
def test_search_by_credit_code(admin_client, merchant, transform):
    MerchantFactory(uscc=make_uscc(777, area="410182"))
    assert result_pks(admin_client.get(LIST, {"q": transform(merchant.uscc)})) == {merchant.pk}


def test_search_by_credit_code_does_not_match_the_middle(admin_client, merchant):
    assert result_pks(admin_client.get(LIST, {"q": merchant.uscc[4:12]})) == set()


def test_filters(admin_client, merchant):
    other = MerchantFactory(area_code="410105", industry_code="6210")
    outside = MerchantFactory(area_code="410305")  # 洛阳: not a Zhengzhou district
    suspended = MerchantFactory(status=MerchantStatus.SUSPENDED)

    assert result_pks(admin_client.get(LIST, {"status__exact": "suspended"})) == {suspended.pk}
    assert result_pks(admin_client.get(LIST, {"area_code": "410103"})) == {merchant.pk}
    assert result_pks(admin_client.get(LIST, {"area_code": "other"})) == {outside.pk}
    assert result_pks(admin_client.get(LIST, {"industry_code": "6210"})) == {other.pk}
    html = admin_client.get(LIST).content.decode()
    assert "金水区 (410105)" in html  # the area filter lists districts by name


def test_changelist_query_count_is_constant(admin_client):
    MerchantFactory.create_batch(2)
    admin_client.get(LIST)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(LIST)
    MerchantFactory.create_batch(25)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(LIST)
    assert response.context["cl"].result_count == 27
    assert len(many) <= len(few)


def test_add_normalises_credit_code_and_defaults_area(admin_client):
    uscc = make_uscc(4242, area="410182")
    response = admin_client.post(
        ADD,
        {
            "uscc": fullwidth(uscc.lower()),
            "name": "荥阳测试餐饮店",
            "address": "",
            "area_code": "",
            "industry_code": "6210",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    merchant = Merchant.objects.get(name="荥阳测试餐饮店")
    assert merchant.uscc == uscc
    assert merchant.area_code == "410182"
    assert merchant.status == MerchantStatus.ACTIVE


def test_add_rejects_bad_check_character(admin_client):
    uscc = make_uscc(4243)
    bad = uscc[:-1] + ("0" if uscc[-1] != "0" else "1")
    response = admin_client.post(
        ADD, {"uscc": bad, "name": "x", "area_code": "", "industry_code": "5211"}
    )
    assert response.status_code == 200
    assert "uscc" in response.context["adminform"].form.errors
    assert not Merchant.objects.filter(name="x").exists()


def test_change_form_cannot_change_status(admin_client, merchant):
    response = admin_client.post(
        change_url(merchant),
        {
            "name": merchant.name,
            "address": "",
            "area_code": merchant.area_code,
            "industry_code": merchant.industry_code,
            "status": MerchantStatus.BLACKLISTED,
            "status_reason": "sneaky",
        },
    )
    assert response.status_code == 302
    merchant.refresh_from_db()
    assert merchant.status == MerchantStatus.ACTIVE
    assert merchant.status_reason == ""


# --- status actions ----------------------------------------------------------------------


def test_suspend_action_changes_status_through_the_service(admin_client, merchant, admin_user):
    response = run_action(admin_client, "suspend", [merchant], reason="多次拆分开票")
    assert response.status_code == 200
    merchant.refresh_from_db()
    assert merchant.status == MerchantStatus.SUSPENDED
    assert merchant.status_reason == "多次拆分开票"
    assert merchant.status_changed_at is not None
    event = AuditEvent.objects.get(action="merchant.status_changed", target_id=str(merchant.pk))
    assert event.actor_id == admin_user.pk
    assert event.after == {"status": "suspended"}
    assert any("1" in text for text in message_texts(response))


def test_action_without_reason_records_who_acted(admin_client, merchant, admin_user):
    run_action(admin_client, "blacklist", [merchant])
    merchant.refresh_from_db()
    assert merchant.status == MerchantStatus.BLACKLISTED
    assert admin_user.get_username() in merchant.status_reason


def test_reactivate_action(admin_client):
    blacklisted = MerchantFactory(status=MerchantStatus.BLACKLISTED)
    run_action(admin_client, "reactivate", [blacklisted], reason="申诉通过")
    blacklisted.refresh_from_db()
    assert blacklisted.status == MerchantStatus.ACTIVE


def test_invalid_transition_is_refused_with_a_message(admin_client, merchant):
    blacklisted = MerchantFactory(status=MerchantStatus.BLACKLISTED, status_reason="fraud")
    response = run_action(admin_client, "suspend", [blacklisted, merchant], reason="复查")
    blacklisted.refresh_from_db()
    merchant.refresh_from_db()
    assert blacklisted.status == MerchantStatus.BLACKLISTED
    assert blacklisted.status_reason == "fraud"
    assert merchant.status == MerchantStatus.SUSPENDED  # the valid one still went through
    levels = {m.level_tag for m in get_messages(response.wsgi_request)}
    assert {"error", "success"} <= levels
    assert any(blacklisted.name in text for text in message_texts(response))


def test_view_only_staff_is_not_offered_status_actions(view_only_client, merchant):
    response = view_only_client.get(LIST)
    assert response.status_code == 200
    assert offered_actions(response).isdisjoint(STATUS_ACTIONS)


def test_view_only_staff_cannot_post_a_status_action(view_only_client, merchant):
    response = run_action(view_only_client, "blacklist", [merchant], reason="x")
    assert response.status_code in (200, 403)
    merchant.refresh_from_db()
    assert merchant.status == MerchantStatus.ACTIVE


def test_staff_with_change_permission_is_offered_status_actions(client, merchant):
    official = UserFactory(is_staff=True)
    official.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="merchants", codename__in=["view_merchant", "change_merchant"]
        )
    )
    sign_in_staff(client, official)
    assert offered_actions(client.get(LIST)) >= STATUS_ACTIONS


@pytest.mark.parametrize(("language", "label"), [("zh-hans", "搜索"), ("en", "Search")])
def test_pages_render_in_both_languages(admin_client, merchant, language, label):
    for url in (LIST, change_url(merchant), ADD):
        response = admin_client.get(url, headers={"accept-language": language})
        assert response.status_code == 200
        assert f'lang="{language}"' in response.content.decode()
    assert label in admin_client.get(LIST, headers={"accept-language": language}).content.decode()


# --- the service behind the actions ------------------------------------------------------


def test_service_follows_the_transition_table(admin_user, merchant):
    updated = merchant_set_status(
        merchant=merchant, status=MerchantStatus.BLACKLISTED, reason="虚开", actor=admin_user
    )
    assert updated.status == MerchantStatus.BLACKLISTED
    event = AuditEvent.objects.get(action="merchant.status_changed", target_id=str(merchant.pk))
    assert (event.before, event.after, event.reason) == (
        {"status": "active"},
        {"status": "blacklisted"},
        "虚开",
    )
    assert event.actor_id == admin_user.pk
    with pytest.raises(InvalidTransition) as excinfo:
        merchant_set_status(
            merchant=merchant, status=MerchantStatus.SUSPENDED, reason="x", actor=admin_user
        )
    assert excinfo.value.code == "merchant.invalid_transition"
    with pytest.raises(InvalidTransition):
        merchant_set_status(
            merchant=merchant, status=MerchantStatus.BLACKLISTED, reason="again", actor=admin_user
        )
    merchant.refresh_from_db()
    assert (merchant.status, merchant.status_reason) == (MerchantStatus.BLACKLISTED, "虚开")


@pytest.mark.parametrize(
    ("reason", "code"), [("", "merchant.reason_required"), ("x" * 301, "merchant.reason_too_long")]
)
def test_service_requires_a_sensible_reason(admin_user, merchant, reason, code):
    with pytest.raises(DomainError) as excinfo:
        merchant_set_status(
            merchant=merchant, status=MerchantStatus.SUSPENDED, reason=reason, actor=admin_user
        )
    assert excinfo.value.code == code
    merchant.refresh_from_db()
    assert merchant.status == MerchantStatus.ACTIVE
