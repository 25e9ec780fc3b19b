"""Response hardening: CSP with nonces, no-store on personal data, frame and referrer policy."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_admin_pages_carry_csp_and_security_headers(admin_client):
    response = admin_client.get(reverse("admin:accounts_consumer_changelist"))
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src"))
    # Only our own files, or an inline script carrying this request's nonce (added when used).
    assert script_src.startswith("script-src 'self'") and "unsafe" not in script_src
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]


def test_api_replies_are_not_stored(client):
    response = client.get("/api/v1/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_oversized_body_is_refused(client):
    body = b"x" * (3 * 1024 * 1024)
    response = client.post("/api/v1/", data=body, content_type="application/json")
    assert response.status_code in (400, 403, 405, 413)
    assert response.status_code != 500
