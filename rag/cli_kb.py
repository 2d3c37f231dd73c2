"""`rag kb`: the knowledge bases listed in the app's database, and `rag --kb NAME`'s lookup.

Every knowledge base has its own Milvus collections; the default one is MILVUS_COLLECTION's.
The commands open the app's database (DATABASE_URL) for their run and close it, with every
knowledge base they opened. The heavy packages are imported inside the commands.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rag.cli_render import err, out
from rag.cli_workspace import workspace
from rag.errors import RagError
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.kb_set import KnowledgeBaseSet
    from rag.workspace import KBInfo, KnowledgeBases, Workspace

kb_app = typer.Typer(help="Knowledge bases: each with its own collections in Milvus; pick one "
                     "for a command with `rag --kb NAME ...`.", no_args_is_help=True)


def _registry(ws: Workspace, settings: Settings) -> KnowledgeBases:
    return ws.knowledge_bases(settings.milvus_collection, settings.embedding_model)


def selected_settings(settings: Settings, name: str) -> Settings:
    """The settings of the knowledge base named `name` (its collections and embedding model);
    a ConfigError listing the names when there is none of that name."""
    from rag.workspace import Workspace

    ws = Workspace(settings.database_url)
    try:
        info = _registry(ws, settings).get(name)
    finally:
        ws.close()
    return settings.with_(milvus_collection=info.collection, embedding_model=info.embedding_model)


@contextmanager
def knowledge_base_set() -> Iterator[KnowledgeBaseSet]:
    """Every knowledge base, for one command (closed after it, with the database)."""
    with workspace() as ws:
        from rag.kb_set import KnowledgeBaseSet

        settings = Settings.from_env()
        kbs = KnowledgeBaseSet(settings, _registry(ws, settings))
        try:
            yield kbs
        finally:
            kbs.close()


def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False)


def _documents(kbs: KnowledgeBaseSet, info: KBInfo) -> int | None:
    """How many documents the knowledge base holds; None (said on stderr) if it cannot open."""
    try:
        return len(kbs.open(info.name).store.list_documents())
    except RagError as exc:
        err.print(f"[yellow]{escape(info.name)}:[/yellow] {escape(str(exc))}", highlight=False)
        return None


def _row(info: KBInfo, default: str, documents: int | None) -> dict[str, Any]:
    created = info.created_at.replace(tzinfo=UTC).isoformat() if info.created_at else None
    return {"name": info.name, "default": info.collection == default,
            "embedding_model": info.embedding_model, "collection": info.collection,
            "documents": documents, "created_at": created}


@kb_app.command("list")
def kb_list(as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON line per knowledge base.")] = False) -> None:
    """List the knowledge bases (the default first) with their documents."""
    with knowledge_base_set() as kbs:
        default = kbs.registry.default
        rows = [_row(info, default, _documents(kbs, info)) for info in kbs.list()]
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    table = Table("name", "documents", "embedding model", "collection")
    for row in rows:
        name = escape(row["name"]) + (" (default)" if row["default"] else "")
        count = "?" if row["documents"] is None else str(row["documents"])
        table.add_row(name, count, escape(row["embedding_model"]), escape(row["collection"]))
    out.print(table)


@kb_app.command("create")
def kb_create(
    name: Annotated[str, typer.Argument(help="Its name (any text, e.g. 'Team notes').")],
    embedding_model: Annotated[str | None, typer.Option(
        "--embedding-model", help="The embedding model of its vectors (default: "
        "EMBEDDING_MODEL).")] = None,
) -> None:
    """Add an empty knowledge base (its collections are made when it is first used)."""
    with workspace() as ws:
        settings = Settings.from_env()
        info = _registry(ws, settings).create(name, embedding_model or settings.embedding_model)
    _say(f"created {info.name} (embedding model {info.embedding_model}); add documents with "
         f"rag --kb {_quoted(info.name)} ingest PATH")


@kb_app.command("rename")
def kb_rename(name: Annotated[str, typer.Argument(help="The knowledge base.")],
              new: Annotated[str, typer.Argument(help="Its new name.")]) -> None:
    """Rename a knowledge base; its documents, conversations, feedback and roles stay with it."""
    with workspace() as ws:
        registry = _registry(ws, Settings.from_env())
        old = registry.get(name).name
        info = registry.rename(old, new)
    _say(f"renamed {old} to {info.name}")


@kb_app.command("rm")
def kb_rm(name: Annotated[str, typer.Argument(help="The knowledge base.")],
          yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False) -> None:
    """Delete a knowledge base: its collections with every document in them, its conversations
    and its roles (the default one cannot be deleted)."""
    with knowledge_base_set() as kbs:
        info = kbs.registry.get(name)
        if info.collection == kbs.registry.default:
            kbs.remove(info.name)  # refused, with the reason
        if not yes:
            count = len(kbs.open(info.name).store.list_documents())
            noun = "document" if count == 1 else "documents"
            typer.confirm(f"Delete the knowledge base {info.name} and its {count} {noun}?",
                          abort=True)
        kbs.remove(info.name)
    _say(f"deleted the knowledge base {info.name}")


def _quoted(name: str) -> str:
    """The name as a shell word."""
    import shlex

    return shlex.quote(name)
