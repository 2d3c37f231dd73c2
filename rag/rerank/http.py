"""A rerank server over HTTP: `POST {base}/rerank`, in either of the two shapes servers speak.

- vLLM, Jina, llama.cpp, Infinity (and Cohere-style APIs):
  `{"model", "query", "documents", "top_n"}` -> `{"results": [{"index", "relevance_score"}]}`
- Text Embeddings Inference: `{"query", "texts"}` -> `[{"index", "score"}]`

The first shape is sent first. TEI rejects it with 422 "missing field `texts`"; the client then
sends TEI's shape (with `truncate: true`, so long passages are cut by the server rather than
refused) and keeps to it. Either response shape is read whatever was sent. Passages go in
batches of `batch_size` (TEI's default limit is 32 per request); a pointwise cross-encoder's
scores do not depend on the batch. Every failure is a RerankError saying what to fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx

from rag.redact import redact
from rag.rerank import RerankError

SHAPES = "{'results': [{'index', 'relevance_score'}]} or [{'index', 'score'}]"


def rerank_url(base_url: str) -> str:
    """The endpoint: `{base}/rerank`, or the URL itself when it already ends in /rerank."""
    base = base_url.strip().rstrip("/")
    return base if base.endswith("/rerank") else f"{base}/rerank"


class HttpReranker:
    """A reranking model served over HTTP."""

    def __init__(self, model: str, *, base_url: str, api_key: str = "", timeout: float = 60.0,
                 batch_size: int = 32) -> None:
        if not base_url.strip():
            raise RerankError("The http reranker needs RERANKER_BASE_URL.")
        self.name = model
        self.url = rerank_url(base_url)
        self.batch_size = batch_size
        self.tei = False  # learned from a 422 on the first shape
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers,
                                    transport=httpx.HTTPTransport(retries=2))

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """The server's relevance score of each text, in input order."""
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            scores.extend(self._score_batch(query, list(texts[start:start + self.batch_size])))
        return scores

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _body(self, query: str, texts: list[str]) -> dict[str, Any]:
        if self.tei:
            return {"query": query, "texts": texts, "truncate": True}
        return {"model": self.name, "query": query, "documents": texts, "top_n": len(texts)}

    def _score_batch(self, query: str, texts: list[str]) -> list[float]:
        response = self._post(self._body(query, texts))
        if not self.tei and response.status_code == 422 and "texts" in response.text:
            self.tei = True
            response = self._post(self._body(query, texts))
        self._raise_for_status(response)
        try:
            payload = response.json()
        except ValueError:
            raise RerankError(f"The reranker at {redact(self.url)} did not answer JSON: "
                              f"{_snippet(response.text)!r}. Expected {SHAPES}.") from None
        return parse_scores(payload, len(texts), redact(self.url))

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        try:
            return self._client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise RerankError(f"The reranker at {redact(self.url)} did not answer in time "
                              f"({type(exc).__name__}).") from exc
        except httpx.TransportError as exc:
            raise RerankError(f"Cannot reach the reranker at {redact(self.url)} "
                              f"({redact(str(exc))}): is it running? "
                              "Set RERANKER_BASE_URL, or RERANKER=none to turn reranking "
                              "off.") from exc

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        detail, url = _snippet(response.text), redact(self.url)
        if status in (401, 403):
            raise RerankError(f"The reranker at {url} rejected the API key ({status}): "
                              "set RERANKER_API_KEY.")
        if status == 404:
            raise RerankError(
                f"The reranker at {url} answered 404 ({detail}): either the server has no "
                "/rerank endpoint there (RERANKER_BASE_URL is the server's base, e.g. "
                "http://host:8000/v1 for vLLM, http://host:8080 for TEI) or it does not serve "
                f"the model '{self.name}' (RERANKER).")
        raise RerankError(f"The reranker at {url} refused the request ({status}): {detail}")


def parse_scores(payload: Any, count: int, url: str) -> list[float]:
    """Scores by input index from either response shape; RerankError when it is neither."""
    items = payload.get("results") if isinstance(payload, dict) else payload
    scores: list[float | None] = [None] * count
    for item in items if isinstance(items, list) else [None]:
        index = item.get("index") if isinstance(item, dict) else None
        value = item.get("relevance_score", item.get("score")) if isinstance(item, dict) else None
        if (not isinstance(index, int) or not 0 <= index < count
                or not isinstance(value, int | float) or isinstance(value, bool)
                or not math.isfinite(value)):
            raise RerankError(f"The reranker at {url} answered in an unknown shape: "
                              f"{_snippet(str(payload))!r}. Expected {SHAPES}.")
        scores[index] = float(value)
    found = [s for s in scores if s is not None]
    if len(found) != count:
        raise RerankError(f"The reranker at {url} scored {len(found)} of {count} passages.")
    return found


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
