"""The browser pages (landing, GraphiQL, REST docs) and their files, over HTTP: everything from
the gateway itself, under a Content-Security-Policy, cached as the paths allow, shipped in the
package. tests/browser/ runs the same pages in Chromium."""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path

import pytest

import gateway
from gateway.web import CONTENT_SECURITY_POLICY
from tests.asgi import call_asgi
from tests.conftest import Env

PACKAGE = Path(gateway.__file__).parent
VENDOR = PACKAGE / "static" / "vendor"
HTML = {"Accept": "text/html"}
PRODUCTION = {"environment": "production", "allow_sandbox_in_production": True}
PAGES = ["/", "/api/v1/docs", "/graphql"]


def links(html: str) -> list[str]:
    return re.findall(r'(?:href|src|data-openapi-url)="([^"]*)"', html)


@pytest.mark.parametrize("path", PAGES)
async def test_pages_load_everything_from_the_gateway(env: Env, path: str) -> None:
    response = await env.http.get(path, headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for link in links(response.text):
        assert link.startswith("/"), link
        assert (await env.http.get(link)).status_code == 200, link


@pytest.mark.parametrize("path", PAGES)
async def test_pages_allow_only_the_gateway_by_content_security_policy(env: Env, path: str) -> None:
    response = await env.http.get(path, headers=HTML)
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    sources = {s for directive in policy.split(";") for s in directive.split()[1:]}
    assert sources == {"'self'", "'none'", "data:"}
    assert "<script>" not in response.text and "<style" not in response.text  # no inline code
    assert response.headers["cache-control"] == "no-cache"


async def test_graphiql_page_keeps_the_explorer_plugin(env: Env) -> None:
    page = (await env.http.get("/graphql", headers=HTML)).text
    assert "/static/vendor/graphiql-plugin-explorer-1.0.2/index.umd.js" in links(page)


async def test_landing_page_links_graphiql_the_rest_docs_health_and_first_steps(env: Env) -> None:
    page = (await env.http.get("/")).text
    assert {"/graphql", "/api/v1/docs", "/api/v1/openapi.json", "/healthz", "/readyz"} <= set(
        links(page)
    )
    assert "First steps" in page and "gateway create-user" in page
    assert "curl -s http://gateway.test/api/v1/users/me" in page


@pytest.mark.settings(**PRODUCTION)
async def test_landing_page_in_production_does_not_link_graphiql(env: Env) -> None:
    page = (await env.http.get("/")).text
    assert "/graphql" not in links(page) and "/api/v1/docs" in links(page)


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/"])
async def test_api_v1_answers_an_index_of_its_documents(env: Env, path: str) -> None:
    response = await env.http.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {"openapi": "/api/v1/openapi.json", "docs": "/api/v1/docs"},
    }


async def test_the_pages_are_not_routes_of_the_openapi_document(env: Env) -> None:
    document = (await env.http.get("/api/v1/openapi.json")).json()
    assert not {"/", "/docs"} & set(document["paths"])


async def test_vendored_files_are_cached_for_a_year(env: Env) -> None:
    response = await env.http.get("/static/vendor/graphiql-3.8.3/graphiql.min.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_gateways_own_files_are_revalidated(env: Env) -> None:
    first = await env.http.get("/static/graphiql.js")
    assert first.headers["cache-control"] == "no-cache"
    again = await env.http.get(
        "/static/graphiql.js", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


async def test_a_missing_static_file_is_the_envelopes_404(env: Env) -> None:
    response = await env.http.get("/static/vendor/graphiql-3.8.3/nothing.js")
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Not found"}


def test_vendored_files_are_those_the_vendoring_script_recorded() -> None:
    recorded = {}
    for line in (VENDOR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        recorded[name] = digest
    present = {
        path.relative_to(VENDOR).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in VENDOR.rglob("*")
        if path.is_file() and path.name != "SHA256SUMS"
    }
    assert present == recorded


def test_every_vendored_package_carries_its_licence() -> None:
    for folder in VENDOR.iterdir():
        if folder.is_dir():
            assert (folder / "LICENSE").is_file(), folder.name


def test_package_data_ships_every_page_and_static_file() -> None:
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["gateway"]
    shipped = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    served = {
        path
        for folder in ("pages", "static")
        for path in (PACKAGE / folder).rglob("*")
        if path.is_file()
    }
    assert served - shipped == set()


async def test_landing_page_shows_no_markup_from_the_host_header(env: Env) -> None:
    hostile = b'x"><script>alert(1)</script>'
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", hostile)]}
    sent = await call_asgi(env.app, scope, [{"type": "http.request", "body": b""}], then={})
    page = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"<script>" not in page  # neither echoed as it came nor run
    assert b"curl -s http://testserver/api/v1/users/me" in page
