"""How long to wait before retrying a 429 or 5xx, and the notice a stream shows meanwhile.

Hand-written rather than the SDK's `max_retries`: the SDK sleeps inside the blocking `create()`
call with no per-attempt hook, so a stream could not yield a `Retrying` notice before each wait.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from rag.llm.events import Retrying

MAX_RETRY_WAIT = 30.0


def retry_wait(headers: Mapping[str, str], attempt: int) -> float:
    """Seconds to wait: retry-after-ms or retry-after when given, else backoff; at most 30.

    `headers` must look keys up in lower case (httpx's headers do, whatever the server sent).
    """
    wait = _header_wait(headers)
    if wait is None:
        wait = 0.5 * 2 ** (attempt - 1)
    return round(min(max(wait, 0.0), MAX_RETRY_WAIT), 3)


def _header_wait(headers: Mapping[str, str]) -> float | None:
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def retry_notice(status: int, wait: float, attempt: int, max_retries: int) -> Retrying:
    """'The LLM server is rate limiting requests (429); retrying in 1 s (retry 1 of 2).'"""
    what = "is rate limiting requests (429)" if status == 429 else f"failed ({status})"
    return Retrying(f"The LLM server {what}; retrying in {wait:g} s "
                    f"(retry {attempt} of {max_retries}).")
