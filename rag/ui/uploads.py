"""The files an `/ingest` call names, as the API and MCP give them, turned into files on disk.

Three forms, one per item:

- a Gradio FileData (what `gradio_client.handle_file` uploads): {"path", "orig_name", ...};
- a data URL with the document's name and its content, base64 or percent-encoded:
  "data:text/markdown;name=notes.md;base64,IyBOb3Rlcw==" (RFC 2397; `name` is required, since a
  document is known by its name);
- the URL or server path of a file uploaded to this app: "http://HOST/gradio_api/file=PATH"
  (what `POST /gradio_api/upload` and Gradio's `upload_file_to_gradio` MCP tool give).

Gradio's MCP server passes list items on as plain strings (it only converts a file given
alone), so the last two forms are what MCP clients send. Nothing is fetched from the network,
and a path outside Gradio's upload folder is refused: neither an API call nor an MCP tool may
read the server's own files (a FileData without Gradio's `meta` tag is not checked by Gradio).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from gradio.data_classes import FileData
from gradio.utils import get_upload_folder

from rag.errors import LoaderError
from rag.loading import document_name

DATA_URL_EXAMPLE = "data:text/markdown;name=notes.md;base64,IyBOb3Rlcw=="
_FILE_ROUTE = "/gradio_api/file="
_HOW = (f"give the file as a data URL with its name ({DATA_URL_EXAMPLE}), or upload it to "
        f"this app first (POST /gradio_api/upload) and give its URL (…{_FILE_ROUTE}PATH)")


@dataclass(frozen=True, slots=True)
class Upload:
    """A file to ingest: where it is now, and the document name it is stored under."""

    path: Path
    name: str


def resolve(item: Any, scratch: Path) -> Upload:
    """One item of an /ingest call as a file on disk; LoaderError saying what is wrong with it.
    A data URL's content is written under `scratch` (the caller deletes it afterwards)."""
    if isinstance(item, FileData):
        item = item.model_dump()
    if isinstance(item, str):
        if item.startswith("data:"):
            return _data_url(item, scratch)
        return _uploaded(_server_path(item), None, item)
    if isinstance(item, Mapping) and isinstance(item.get("path"), str):
        return _uploaded(item["path"], item.get("orig_name"), item["path"])
    raise LoaderError(_shown(item), f"not a file: {_HOW}")


def _server_path(text: str) -> str:
    """The server path in an upload URL (…/gradio_api/file=PATH), or the text itself."""
    parts = urlsplit(text)
    if parts.scheme in ("http", "https"):
        _, sep, path = parts.path.partition(_FILE_ROUTE)
        if not sep:
            raise LoaderError(_shown(text), f"other addresses are not fetched: {_HOW}")
        return unquote(path)
    return text


def _uploaded(path: str, orig_name: Any, given: str) -> Upload:
    """A file that must be inside Gradio's upload folder, named by its original name."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(get_upload_folder()).resolve()):
        raise LoaderError(_shown(given), f"not a file uploaded to this app: {_HOW}")
    name = orig_name if isinstance(orig_name, str) and orig_name else resolved.name
    return Upload(resolved, document_name(name))


def _data_url(url: str, scratch: Path) -> Upload:
    """A data URL's content written to a scratch file named like the document."""
    header, sep, payload = url.removeprefix("data:").partition(",")
    params = [p.strip() for p in header.split(";")]
    name = next((unquote(p.split("=", 1)[1]) for p in params[1:]
                 if p.lower().startswith(("name=", "filename="))), "")
    shown = document_name(name) if name.strip() else _shown(url)
    if not sep or not name.strip():
        raise LoaderError(shown, f"a data URL needs the document's name and a comma before "
                                 f"the content: {DATA_URL_EXAMPLE}")
    if params[-1].lower() == "base64":
        try:
            data = base64.b64decode("".join(unquote(payload).split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise LoaderError(shown, f"the data URL's content is not valid base64 ({exc})"
                              ) from exc
    else:
        data = unquote_to_bytes(payload)
    folder = scratch / str(len(list(scratch.iterdir())))
    folder.mkdir()
    path = folder / ("document" + PurePath(shown).suffix[:20])  # the type comes from the name
    path.write_bytes(data)
    return Upload(path, document_name(shown))


def _shown(value: Any, limit: int = 80) -> str:
    """An input as a result's source: cut to `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
