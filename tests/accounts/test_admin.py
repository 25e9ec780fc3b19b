"""Admin of staff users and consumers: pages render, PII stays masked, search is exact."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.admin import ConsumerAdmin
from apps.accounts.choices import ConsumerStatus, VerificationStatus
from apps.accounts.models import Consumer, User
from apps.common.masking import mask_id_number, mask_name, mask_phone
from tests.accounts.helpers import sign_in_staff
from tests.factories.core import ConsumerFactory, UserFactory, make_resident_id

pytestmark = pytest.mark.django_db


NAME = "欧阳小明"
PHONE = "13912345678"
ID_NUMBER = make_resident_id(4711)

USER_LIST = reverse("admin:accounts_user_changelist")
CONSUMER_LIST = reverse("admin:accounts_consumer_changelist")


def consumer_change(consumer: Consumer) -> str:
    return reverse("admin:accounts_consumer_change", args=[consumer.pk])


def fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


@pytest.fixture
def consumer():
    return ConsumerFactory(real_name=NAME, id_number=ID_NUMBER, phone=PHONE)


def result_pks(response) -> set[int]:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


# --- users ----------------------------------------------------------------------------------


def test_user_changelist_search_and_filters(admin_client):
    group = Group.objects.create(name="审核员-测试")
    staff = UserFactory(username="reviewer1", is_staff=True)
    staff.groups.add(group)
    UserFactory(username="consumer-login")

    response = admin_client.get(USER_LIST)
    assert response.status_code == 200
    assert "审核员-测试" in response.content.decode()  # the groups column

    assert result_pks(admin_client.get(USER_LIST, {"q": "reviewer"})) == {staff.pk}
    assert staff.pk in result_pks(admin_client.get(USER_LIST, {"is_staff__exact": "1"}))
    assert staff.pk in result_pks(admin_client.get(USER_LIST, {"is_active__exact": "1"}))
    assert result_pks(admin_client.get(USER_LIST, {"groups__id__exact": group.pk})) == {staff.pk}


def test_user_change_and_add_views_render(admin_client):
    user = UserFactory(is_staff=True)
    assert (
        admin_client.get(reverse("admin:accounts_user_change", args=[user.pk])).status_code == 200
    )
    assert admin_client.get(reverse("admin:accounts_user_add")).status_code == 200


def test_user_changelist_query_count_is_constant(admin_client):
    groups = [Group.objects.create(name=f"g{i}") for i in range(3)]
    for user in UserFactory.create_batch(2):
        user.groups.set(groups)
    admin_client.get(USER_LIST)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(USER_LIST)
    for user in UserFactory.create_batch(25):
        user.groups.set(groups)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(USER_LIST)
    assert response.context["cl"].result_count == 28  # 27 + the superuser
    assert len(many) <= len(few)


def test_staff_without_superuser_status_cannot_escalate(client):
    manager = UserFactory(username="sysadmin", is_staff=True)
    manager.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="accounts", codename__in=["view_user", "change_user"]
        )
    )
    superuser = User.objects.create_superuser("root", password="x-very-long-password")
    colleague = UserFactory(is_staff=True)
    sign_in_staff(client, manager)

    response = client.get(reverse("admin:accounts_user_change", args=[colleague.pk]))
    assert response.status_code == 200
    form_fields = response.context["adminform"].form.fields
    assert "is_superuser" not in form_fields
    assert "user_permissions" not in form_fields
    assert "groups" in form_fields

    # A superuser's account is view-only for them, password change included.
    response = client.get(reverse("admin:accounts_user_change", args=[superuser.pk]))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    password_url = reverse("admin:auth_user_password_change", args=[superuser.pk])
    assert client.get(password_url).status_code == 403


def test_authenticator_admin_never_shows_or_edits_the_secret(admin_client, admin_user):
    from allauth.mfa.models import Authenticator

    secret = "1$SECRET-CIPHERTEXT-MUST-NOT-SHOW"
    authenticator = Authenticator.objects.create(
        user=admin_user, type=Authenticator.Type.TOTP, data={"secret": secret}
    )
    url = reverse("admin:mfa_authenticator_change", args=[authenticator.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert secret not in response.content.decode()
    assert admin_client.post(url, {"data": "{}"}).status_code == 403
    assert admin_client.get(reverse("admin:mfa_authenticator_add")).status_code == 403
    changelist = admin_client.get(reverse("admin:mfa_authenticator_changelist"))
    assert changelist.status_code == 200
    # The reset after a lost phone: deleting is allowed with the delete permission.
    delete_url = reverse("admin:mfa_authenticator_delete", args=[authenticator.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 302
    assert not Authenticator.objects.filter(pk=authenticator.pk).exists()


# --- consumers: pages -----------------------------------------------------------------------


def test_consumer_changelist_and_filters_render(admin_client, consumer):
    frozen = ConsumerFactory(status=ConsumerStatus.FROZEN)
    assert result_pks(admin_client.get(CONSUMER_LIST)) >= {consumer.pk, frozen.pk}
    verified = {"verification_status__exact": VerificationStatus.VERIFIED}
    assert consumer.pk in result_pks(admin_client.get(CONSUMER_LIST, verified))
    assert result_pks(admin_client.get(CONSUMER_LIST, {"status__exact": "frozen"})) == {frozen.pk}
    created = {
        "created_at__gte": "2000-01-01 00:00+08:00",
        "created_at__lt": "2999-01-01 00:00+08:00",
    }
    assert consumer.pk in result_pks(admin_client.get(CONSUMER_LIST, created))


def test_consumer_list_and_detail_show_only_masked_pii(admin_client, consumer):
    for url in (CONSUMER_LIST, consumer_change(consumer)):
        response = admin_client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        for plaintext in (NAME, ID_NUMBER, PHONE):
            assert plaintext not in html
        for masked in (mask_name(NAME), mask_id_number(ID_NUMBER), mask_phone(PHONE)):
            assert masked in html


def test_consumer_list_survives_a_row_that_cannot_be_decrypted(admin_client, consumer):
    victim = ConsumerFactory()
    with connection.cursor() as cursor:
        # A ciphertext copied from another row fails its authentication tag.
        cursor.execute(
            "UPDATE accounts_consumer SET phone = (SELECT phone FROM accounts_consumer "
            "WHERE id = %s) WHERE id = %s",
            [consumer.pk, victim.pk],
        )
    response = admin_client.get(CONSUMER_LIST, headers={"accept-language": "en"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "(cannot decrypt)" in html
    assert mask_phone(PHONE) in html  # the intact row still shows its masked phone


def test_consumer_detail_is_read_only(admin_client, consumer):
    url = consumer_change(consumer)
    response = admin_client.get(url)
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert list(response.context["adminform"].form.fields) == []
    # Nothing can be written: not the status, not the identity.
    response = admin_client.post(url, {"status": "frozen", "phone": "13000000000"})
    assert response.status_code == 403
    consumer.refresh_from_db()
    assert consumer.status == ConsumerStatus.ACTIVE
    assert consumer.phone == PHONE


def test_consumers_cannot_be_added_or_deleted_in_admin(admin_client, consumer):
    assert admin_client.get(reverse("admin:accounts_consumer_add")).status_code == 403
    delete_url = reverse("admin:accounts_consumer_delete", args=[consumer.pk])
    assert admin_client.get(delete_url).status_code == 403
    response = admin_client.get(CONSUMER_LIST)
    action_form = response.context["action_form"]
    assert action_form is None or "delete_selected" not in dict(
        action_form.fields["action"].choices
    )


def test_reveal_needs_its_own_permission(rf, admin_user, django_user_model):
    request = rf.get("/")
    request.user = admin_user
    assert admin.site._registry[Consumer].can_reveal(request) is True
    viewer = django_user_model.objects.create(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_consumer"))
    request.user = django_user_model.objects.get(pk=viewer.pk)
    assert admin.site._registry[Consumer].can_reveal(request) is False


def test_admin_that_names_a_pii_field_fails_the_system_check():
    class LeakyConsumerAdmin(ConsumerAdmin):
        list_display = ("public_id", "phone")
        list_display_links = ("public_id",)

    errors = LeakyConsumerAdmin(Consumer, admin.site).check()
    assert [e.id for e in errors] == ["common.E010"]
    assert admin.site._registry[Consumer].check() == []


def test_consumer_changelist_query_count_is_constant(admin_client):
    ConsumerFactory.create_batch(2)
    admin_client.get(CONSUMER_LIST)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(CONSUMER_LIST)
    ConsumerFactory.create_batch(25)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(CONSUMER_LIST)
    assert response.context["cl"].result_count == 27
    assert len(many) <= len(few)


# --- consumers: blind-index search -------------------------------------------------------


@pytest.mark.parametrize(
    "term",
    [
        ID_NUMBER,
        fullwidth(ID_NUMBER),
        f" {ID_NUMBER[:6]} {ID_NUMBER[6:14]} {ID_NUMBER[14:]} ",
        PHONE,
        fullwidth(PHONE),
        "139-1234-5678",
    ],
    ids=["id", "id-fullwidth", "id-spaced", "phone", "phone-fullwidth", "phone-dashes"],
)
def test_search_finds_consumer_by_exact_identifier(admin_client, consumer, term):
    ConsumerFactory.create_batch(3)
    assert result_pks(admin_client.get(CONSUMER_LIST, {"q": term})) == {consumer.pk}


def test_search_accepts_lower_case_check_character(admin_client):
    n = next(n for n in range(5000) if make_resident_id(n).endswith("X"))
    target = ConsumerFactory(id_number=make_resident_id(n))
    term = fullwidth(make_resident_id(n)[:-1]) + "ｘ"
    assert result_pks(admin_client.get(CONSUMER_LIST, {"q": term})) == {target.pk}


def test_search_by_public_id(admin_client, consumer):
    ConsumerFactory()
    assert result_pks(admin_client.get(CONSUMER_LIST, {"q": str(consumer.public_id)})) == {
        consumer.pk
    }


@pytest.mark.parametrize(
    "term", [ID_NUMBER[:-1], PHONE[:7], NAME, "4101", "%"], ids=["id", "phone", "name", "a", "b"]
)
def test_search_never_matches_partial_values(admin_client, consumer, term):
    assert result_pks(admin_client.get(CONSUMER_LIST, {"q": term})) == set()


def test_search_runs_no_pattern_match_on_ciphertext(admin_client, consumer):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(CONSUMER_LIST, {"q": PHONE})
    sql = " ".join(q["sql"] for q in queries if "accounts_consumer" in q["sql"]).upper()
    assert "LIKE" not in sql
    assert "PHONE_INDEX" in sql


# --- languages -----------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "search_label"), [("zh-hans", "搜索"), ("en", "Search")])
def test_pages_render_in_both_languages(admin_client, consumer, language, search_label):
    for url in (CONSUMER_LIST, consumer_change(consumer), USER_LIST):
        response = admin_client.get(url, headers={"accept-language": language})
        assert response.status_code == 200
        assert response.headers["Content-Language"] == language
        assert f'lang="{language}"' in response.content.decode()
    assert (
        search_label
        in admin_client.get(CONSUMER_LIST, headers={"accept-language": language}).content.decode()
    )


def test_default_language_setting_is_honoured(admin_client, consumer, settings):
    settings.LANGUAGE_CODE = "en"
    response = admin_client.get(CONSUMER_LIST)
    assert response.headers["Content-Language"] == "en"
    settings.LANGUAGE_CODE = "zh-hans"
    response = admin_client.get(CONSUMER_LIST)
    assert response.headers["Content-Language"] == "zh-hans"
