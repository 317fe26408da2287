"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, with no CDN.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they stay blank on a
machine without internet. Here both load their scripts from the PyPI package
``fastapi-offline`` (part of the ``server`` extra), served under ``/docs-assets``;
the pages name no other host.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from simsearch.errors import MissingDependencyError

__all__ = ["ASSETS", "add_docs_pages"]

#: Where the pages' scripts and styles are served; open without a key, like the pages.
ASSETS = "/docs-assets"


def _assets_folder() -> Path | None:
    # find_spec locates the package without importing it.
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").exists() else None


def add_docs_pages(app: FastAPI) -> None:
    """Serve ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` from local assets.

    ``app`` must be built with ``docs_url=None, redoc_url=None``. Without the assets
    package the pages answer 501 ``missing_dependency`` naming it.
    """
    folder = _assets_folder()
    if folder is not None:
        app.mount(ASSETS, StaticFiles(directory=str(folder)), name="docs-assets")
    title = app.title

    def require_assets() -> None:
        if folder is None:
            raise MissingDependencyError(
                "the API documentation pages need the package 'fastapi-offline': "
                "pip install 'simsearch[server]'"
            )

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        require_assets()
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        require_assets()
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{title} - API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
