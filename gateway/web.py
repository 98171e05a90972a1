"""The gateway's browser pages (landing, GraphiQL, REST docs) and the static files they load."""

from __future__ import annotations

import html
import os
from functools import cache
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gateway.settings import Settings

# Resolved, as StaticFiles resolves the paths it serves (a symlinked install included).
STATIC = Path(__file__).with_name("static").resolve()
VENDORED = STATIC / "vendor"
PAGES = Path(__file__).with_name("pages")

# Every page loads its scripts, styles and data from the gateway itself and nothing else
# (issue 19: air-gapped installs). `data:` is allowed for images and fonts only because the
# vendored stylesheets embed theirs (GraphiQL's fonts, Swagger UI's icons): nothing is fetched.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",  # small, and they name the assets: always revalidated
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The vendored files' paths hold their versions (`vendor/graphiql-3.8.3/…`), so a path never
# changes content: a browser may keep them for a year without asking again.
VENDORED_CACHE = "public, max-age=31536000, immutable"
# The gateway's own scripts and styles change with the gateway: kept, but revalidated (ETag).
OWN_CACHE = "no-cache"


class StaticAssets(StaticFiles):
    """`/static`: the pages' files, with the cache headers their paths allow."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        vendored = Path(full_path).is_relative_to(VENDORED)
        response.headers["Cache-Control"] = VENDORED_CACHE if vendored else OWN_CACHE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@cache
def _template(name: str) -> Template:
    return Template((PAGES / name).read_text(encoding="utf-8"))


def page(request: Request, name: str, **values: str) -> Response:
    """A page of `gateway/pages/`, its links under the app's root path (behind a proxy's
    prefix), with the headers every page has."""
    root = request.scope.get("root_path", "")
    html = _template(name).substitute(root=root, **values)
    return HTMLResponse(html, headers=PAGE_HEADERS)


def graphiql_page(request: Request) -> Response:
    """GraphiQL with the explorer plugin, every file from `/static` (strawberry's own page loads
    them from unpkg.com)."""
    return page(request, "graphiql.html")


def web_routes(settings: Settings) -> list[BaseRoute]:
    """The landing page, the REST docs and the `/api/v1` index, and `/static`. They are not in
    the REST route table (gateway/rest/routes.py): pages, not the contract's JSON routes."""
    graphiql = settings.exploration(settings.graphiql)

    async def landing(request: Request) -> Response:
        link = (
            '<li><a href="$root/graphql">GraphiQL</a>: write and run GraphQL queries, with the '
            "schema's documentation and an explorer</li>"
        )
        graphiql_item = Template(link).substitute(root=request.scope.get("root_path", ""))
        # The address the browser used, escaped: the Host header is the client's to write.
        origin = html.escape(str(request.base_url).rstrip("/"))
        item = graphiql_item if graphiql else ""
        return page(request, "index.html", graphiql_item=item, origin=origin)

    async def api_docs(request: Request) -> Response:
        return page(request, "api-docs.html")

    async def api_index(request: Request) -> Response:
        """`/api/v1` itself: where a client that probes the base URL finds the rest, in the
        contract's envelope like every answer below it (a browser follows `docs`)."""
        root = request.scope.get("root_path", "") + "/api/v1"
        links = {"openapi": f"{root}/openapi.json", "docs": f"{root}/docs"}
        return JSONResponse({"success": True, "data": links})

    return [
        Route("/", landing, methods=["GET"]),
        Route("/api/v1", api_index, methods=["GET"]),
        Route("/api/v1/", api_index, methods=["GET"]),
        Route("/api/v1/docs", api_docs, methods=["GET"]),
        Mount("/static", app=StaticAssets(directory=STATIC), name="static"),
    ]
