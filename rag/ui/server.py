"""Starting the app: `create_demo` builds it from the settings, `launch` serves it, `main` does
both for `python app.py` and `rag serve`."""

from __future__ import annotations

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
from rag.ui.services import Services

log = logging.getLogger(__name__)


def static_text(name: str) -> str:
    """A file of the package's static folder (the page's CSS and script)."""
    return (files("rag.ui") / "static" / name).read_text(encoding="utf-8")


def create_demo(settings: Settings | None = None) -> gr.Blocks:
    """The app for these settings (default: the environment), not yet launched."""
    settings = settings or Settings.from_env()
    kb = KnowledgeBase(settings)
    if settings.rag_demo_docs:
        _load_demo_docs(kb, Path(settings.rag_demo_docs))
    return build_app(kb)


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


def theme() -> gr.themes.Base:
    """Indigo on slate, system fonts (nothing is fetched from a font service)."""
    return gr.themes.Default(
        primary_hue="indigo", neutral_hue="slate",
        font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def launch(demo: gr.Blocks, **overrides: Any) -> Any:
    """Serve the app, with a login if RAG_AUTH is set and MCP tools if RAG_MCP is on."""
    # No host or port here: Gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself and
    # defaults to 127.0.0.1:7860.
    services: Services = demo.rag_services  # type: ignore[attr-defined]
    settings = services.settings
    auth = auth_from(settings.rag_auth)
    services.warm_up()
    kwargs: dict[str, Any] = dict(
        auth=auth, mcp_server=settings.rag_mcp, theme=theme(), css=static_text("style.css"),
        head=f"<script>\n{static_text('app.js')}</script>", footer_links=["api"])
    kwargs.update(overrides)
    return demo.launch(**kwargs)


def main() -> None:
    """Read the settings once and serve the app until interrupted."""
    configure_logging(logging.INFO)
    try:
        settings = Settings.from_env()
        auth_from(settings.rag_auth)
        demo = create_demo(settings)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    launch(demo)
