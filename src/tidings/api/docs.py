"""`/api/v1/docs`: the OpenAPI explorer, under the same Content-Security-Policy as every page.

FastAPI's built-in page loads Swagger UI from a CDN (no integrity) and starts it with an inline
script, which the app's CSP (`script-src 'self'`, web/routes.py) forbids. Here the assets come
from the pinned `swagger-ui-bundle-v2` package (pyproject.toml), served from our origin, and the
start-up code is a static file (web/static/api-docs.js) that reads the document's URL from a
data attribute.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

DOCS_URL = "/api/v1/docs"
ASSETS_URL = f"{DOCS_URL}/assets"

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tidings API</title>
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{{openapi_url}}"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script type="module" src="/static/api-docs.js"></script>
</body>
</html>
"""


def mount_docs(app: FastAPI) -> None:
    """The explorer page and its assets (create the app with `docs_url=None`)."""
    page = _PAGE.replace("{openapi_url}", app.openapi_url or "")

    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    app.add_api_route(DOCS_URL, docs, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS_URL, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
