"""The OpenAPI 3 schema: valid, complete, and documenting the error shape and codes."""

from __future__ import annotations

import pytest
import yaml
from openapi_spec_validator import validate

from apps.invoices.exceptions import REJECTIONS

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_every_consumer_endpoint_is_documented(schema):
    paths = set(schema["paths"])
    for expected in (
        "/api/v1/invoices/",
        "/api/v1/invoices/{uid}/",
        "/api/v1/entries/",
        "/api/v1/me/",
    ):
        assert expected in paths, sorted(paths)


def test_error_shape_and_codes_are_documented(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["properties"]) == {"code", "message", "detail"}
    submit = schema["paths"]["/api/v1/invoices/"]["post"]
    for status in ("400", "401", "403", "409", "422", "429"):
        ref = submit["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/Error")
    for code in REJECTIONS:
        assert code in submit["description"], code
    header = [p for p in submit["parameters"] if p["name"] == "Idempotency-Key"]
    assert header and header[0]["in"] == "header" and header[0]["required"]


def test_docs_page_renders_without_external_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    for host in ("cdn.", "jsdelivr", "unpkg", "googleapis", "gstatic"):
        assert host not in html, host
