"""Starting the app: `create_demo` builds it from the settings, `launch` serves it, `main` does
both for `python app.py` and `rag serve`.

Beyond loopback the app serves only behind a login (RAG_AUTH), unless the operator says it may
serve without one (RAG_ALLOW_NO_AUTH=true) or it runs as a Hugging Face Space (SPACE_ID is
set there: a public demo by design). The page itself loads images, media and form targets only
from the app (a Content-Security-Policy), whatever markup a document or an answer holds.
"""

from __future__ import annotations

import ipaddress
import logging
from importlib.resources import files
from pathlib import Path
from typing import Any

import gradio as gr

from rag.errors import ConfigError, RagError
from rag.kb import KnowledgeBase
from rag.logs import configure_logging
from rag.settings import Settings
from rag.ui.blocks import build_app
from rag.ui.mcp_login import mcp_launch_options
from rag.ui.services import Services
from rag.workspace import Workspace

log = logging.getLogger(__name__)

# What the page may load from elsewhere: nothing. Gradio's own files are the app's ('self').
CONTENT_POLICY = ("img-src 'self' data: blob:; media-src 'self' data: blob:; "
                  "object-src 'none'; form-action 'self'")


def static_text(name: str) -> str:
    """A file of the package's static folder (the page's CSS and script)."""
    return (files("rag.ui") / "static" / name).read_text(encoding="utf-8")


def create_demo(settings: Settings | None = None) -> gr.Blocks:
    """The app for these settings (default: the environment), not yet launched."""
    settings = settings or Settings.from_env()
    admin = auth_from(settings.rag_auth)
    workspace = Workspace(settings.database_url)
    kb = KnowledgeBase(settings)
    if settings.rag_demo_docs:
        _load_demo_docs(kb, Path(settings.rag_demo_docs))
    return build_app(kb, workspace, admin)


def _load_demo_docs(kb: KnowledgeBase, folder: Path) -> None:
    """Ingest the demo folder into an empty knowledge base (RAG_DEMO_DOCS)."""
    try:
        if not kb.store.is_empty():
            return
        if not folder.is_dir():
            raise ConfigError(f"RAG_DEMO_DOCS={folder} is not a folder.")
        results = kb.ingestor.ingest_paths([folder])
    except RagError as exc:
        log.warning("Demo documents were not loaded: %s", exc)
        return
    added = sum(r.status == "added" for r in results)
    log.info("Loaded %d demo documents from %s", added, folder)


def auth_from(value: str) -> tuple[str, str] | None:
    """RAG_AUTH="user:password" as a (user, password) pair; empty means no login."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError("RAG_AUTH must look like user:password")
    return user, password


def is_loopback(host: str) -> bool:
    """Whether a listening address is this machine only: localhost, 127.0.0.0/8 or ::1."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name or an interface address other machines can reach


def check_exposure(host: str, settings: Settings, logins: bool = False) -> str:
    """Whether the app may serve on `host`: '' when it is loopback or has a login; a warning
    to log when it serves beyond loopback without one because RAG_ALLOW_NO_AUTH or a Space
    says so; otherwise a ConfigError saying what to set."""
    if logins or settings.rag_auth or is_loopback(host):
        return ""
    if settings.rag_allow_no_auth:
        return (f"Serving on {host} without a login (RAG_ALLOW_NO_AUTH=true): anyone who "
                "reaches this address can read, add and delete documents.")
    if settings.space_id:
        return (f"Serving the Hugging Face Space {settings.space_id} without a login, as a "
                "public demo: visitors can read, add and delete documents. Set RAG_AUTH "
                "(a secret) for a login.")
    raise ConfigError(
        f"The web app would listen on {host} (GRADIO_SERVER_NAME), beyond this machine, "
        "without a login. Set RAG_AUTH=user:password, listen on 127.0.0.1, or set "
        "RAG_ALLOW_NO_AUTH=true if the network in front of it is trusted (for example a "
        "reverse proxy with its own login).")


def page_head() -> str:
    """The page's <head> additions: the content policy, no DNS prefetching, our script."""
    return (f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">\n'
            '<meta http-equiv="x-dns-prefetch-control" content="off">\n'
            f"<script>\n{static_text('app.js')}</script>")


def theme() -> gr.themes.Base:
    """Indigo on slate, system fonts (nothing is fetched from a font service)."""
    return gr.themes.Default(
        primary_hue="indigo", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def launch(demo: gr.Blocks, **overrides: Any) -> Any:
    """Serve the app, with a login if RAG_AUTH is set or accounts exist (`rag users add`), and
    MCP tools if RAG_MCP is on; exits
    with the reason if it would serve beyond loopback without a login (`check_exposure`)."""
    # The port is Gradio's: GRADIO_SERVER_PORT, default 7860.
    services: Services = demo.rag_services  # type: ignore[attr-defined]
    settings = services.settings
    host = overrides.pop("server_name", None) or settings.gradio_server_name
    access = services.access
    try:
        warning = check_exposure(host, settings, access.logins)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    if warning:
        log.warning(warning)
    services.warm_up()
    kwargs: dict[str, Any] = dict(
        server_name=host, auth=access.login if access.logins else None,
        mcp_server=settings.rag_mcp, theme=theme(), css=static_text("style.css"),
        head=page_head(), footer_links=["api"])
    # MCP behind the login too, with each tool call checked against the caller's role
    kwargs.update(mcp_launch_options(access, services.kbs.registry, settings.rag_mcp))
    kwargs.update(overrides)
    return demo.launch(**kwargs)


def main() -> None:
    """Read the settings once and serve the app until interrupted."""
    configure_logging(logging.INFO)
    try:
        settings = Settings.from_env()
        auth_from(settings.rag_auth)
        workspace = Workspace(settings.database_url)
        logins = workspace.accounts.exist()
        workspace.close()
        check_exposure(settings.gradio_server_name, settings, logins)  # before the slow start
        demo = create_demo(settings)
    except RagError as exc:
        raise SystemExit(f"error: {exc}") from None
    launch(demo)
