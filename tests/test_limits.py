"""Memory and size limits (issue 12, item 3): an 18 MB single-line file, files over the
per-file caps, and a faulty LLM server streaming an answer far past max_tokens."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.chunking import chunk_sections
from rag.embedding import LocalEmbedder
from rag.errors import LLMError
from rag.ingest import Ingestor
from rag.llm import LLMClient, LLMConfig
from rag.schema import Section
from rag.settings import Settings
from rag.store import MilvusStore
from tests.llm_server import FakeGptOss, huge_answer

ROOT = Path(__file__).resolve().parent.parent

# One line, no sentence ends: paragraph, sentence and line are the whole text, so the old
# chunker counted millions of words in one tokenizer call (7 GB for 18.5 MB).
LINE_TEXT = '''
import random
from tokenizers import Tokenizer
from rag.embedding import BUNDLED_MODEL, resolve_model_dir

def one_line(size):
    vocab = Tokenizer.from_file(str(resolve_model_dir(BUNDLED_MODEL) / "tokenizer.json")
                                ).get_vocab()
    words = sorted(w for w in vocab if w.isalpha() and w.isascii() and len(w) >= 5)
    rng = random.Random(7)
    parts, length = [], 0
    while length < size:
        word = rng.choice(words) + (", " if rng.random() < 0.1 else " ")
        parts.append(word)
        length += len(word)
    return "".join(parts)[:size].rstrip()
'''


def _one_line(size: int) -> str:
    scope: dict = {}
    exec(LINE_TEXT, scope)  # the same text in this process and in the subprocess
    return scope["one_line"](size)


def _covered(text: str, chunks: list[str]) -> bool:
    """Whether the chunks, in order, cover every non-space character of the text."""
    covered, start = 0, -1
    for chunk in chunks:
        start = text.find(chunk, start + 1)
        if start < 0 or text[covered:start].strip():
            return False
        covered = max(covered, start + len(chunk))
    return not text[covered:].strip()


def test_a_long_single_line_is_chunked_whole_and_within_the_chunk_size(
        embedder: LocalEmbedder) -> None:
    blob = base64.b64encode(random.Random(3).randbytes(150_000)).decode()  # one 200 kB "word"
    text = _one_line(1_000_000) + " " + blob + " tail words here"
    chunks = list(chunk_sections([Section(text=text)], doc_id="d", version="v", source="d",
                                 count_tokens=embedder.count_tokens))
    assert _covered(text, [c.text for c in chunks])
    assert max(len(c.text) for c in chunks) <= 200 * 32  # the blob of one "word" is cut too
    assert max(embedder.count_tokens([c.text for c in chunks])) <= 200


# A subprocess's own peak RSS: /proc's VmHWM. (ru_maxrss would not do: a child started with
# vfork, as subprocess does, carries the parent's peak, pytest's own of earlier tests.)
PEAK_MB = '''
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
'''

INGEST_SCRIPT = LINE_TEXT + PEAK_MB + '''
import json, sys, tempfile
from pathlib import Path
from rag.embedding import OpenAIEmbedder
from rag.ingest import Ingestor
from rag.store import MilvusStore

folder = Path(tempfile.mkdtemp())
path = folder / "one-line.txt"
path.write_text(one_line(int(sys.argv[2])))
embedder = OpenAIEmbedder("fake", base_url=sys.argv[1], api_key="k", batch_size=256)
store = MilvusStore(str(folder / "kb.db"), embedding_model="fake",
                    dimension=embedder.dimension)
[result] = Ingestor(store, embedder).ingest_paths([path])
stored = store.count_chunks(result.source)
store.close()
print(json.dumps({"result": result.to_dict(), "stored": stored, "chars": path.stat().st_size,
                  "rss_mb": peak_mb()}))
'''


@pytest.mark.timeout(900)
def test_an_18_mb_single_line_file_is_stored_in_bounded_memory(llm: FakeGptOss) -> None:
    """Peak RSS under 1.5 GB: the process holds the file's bytes and text a few times over
    (some 100 MB), the tokenizer, Milvus Lite's client and a batch of chunks; the old chunker
    reached 7 GB on such a file. The fake server's embeddings (8 numbers from a hash) keep
    the ~15,000 chunks quick to store; the tokenizer counting them is the real one."""
    run = subprocess.run([sys.executable, "-c", INGEST_SCRIPT, llm.base_url, "18500000"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    result = report["result"]
    assert result["status"] == "added", result
    assert result["chunks"] == report["stored"] > report["chars"] // (200 * 8)
    assert report["rss_mb"] < 1536, report


def test_a_file_over_max_file_mb_fails_alone(store: MilvusStore, embedder: LocalEmbedder,
                                             tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("word " * 300_000)  # 1.4 MB
    small = tmp_path / "small.md"
    small.write_text("# Small\n\nA small file that fits every limit.\n")
    ingestor = Ingestor(store, embedder, max_file_mb=1)
    results = {r.source: r for r in ingestor.ingest_paths([big, small])}
    assert results["small.md"].status == "added"
    assert results["big.txt"].status == "failed"
    assert "1.4 MB" in results["big.txt"].reason
    assert "MAX_FILE_MB" in results["big.txt"].reason
    assert store.count_chunks("big.txt") == 0


def test_a_file_over_max_chunks_per_file_fails_alone(store: MilvusStore,
                                                     embedder: LocalEmbedder,
                                                     tmp_path: Path) -> None:
    long = tmp_path / "long.txt"
    long.write_text(textwrap.fill(_one_line(60_000), 100))
    ingestor = Ingestor(store, embedder, batch_size=8, max_chunks_per_file=10)
    [result] = ingestor.ingest_paths([long])
    assert result.status == "failed"
    assert "more than 10 chunks" in result.reason and "MAX_CHUNKS_PER_FILE" in result.reason
    assert store.count_chunks("long.txt") == 0  # the batches stored before it are removed
    assert store.list_documents() == []


def test_a_pdf_over_max_pages_fails(store: MilvusStore, embedder: LocalEmbedder,
                                    shared: Path) -> None:
    pdf = next(p for p in sorted((shared).rglob("*.pdf")) if "7p" in p.name)
    [result] = Ingestor(store, embedder, max_pages=3).ingest_paths([pdf])
    assert result.status == "failed"
    assert "7 pages" in result.reason and "MAX_PAGES" in result.reason


def test_limits_are_settings() -> None:
    s = Settings.from_env({"MAX_FILE_MB": "5", "MAX_PAGES": "10", "MAX_CHUNKS_PER_FILE": "99",
                           "LLM_MAX_ANSWER_CHARS": "1000"})
    assert (s.max_file_mb, s.max_pages, s.max_chunks_per_file, s.llm_max_answer_chars) == (
        5, 10, 99, 1000)
    defaults = Settings()
    assert defaults.max_file_mb == 100 and defaults.max_pages == 2000
    with pytest.raises(Exception, match="MAX_PAGES"):
        Settings.from_env({"MAX_PAGES": "0"})


def test_a_huge_answer_is_cut_at_the_limit(llm: FakeGptOss) -> None:
    llm.script(huge_answer(2_000_000))
    client = LLMClient(LLMConfig(llm.base_url, "k", "gpt-oss-20b", max_retries=0),
                       max_answer_chars=50_000)
    received = 0
    with pytest.raises(LLMError, match="LLM_MAX_ANSWER_CHARS") as caught:
        for item in client.stream_chat([{"role": "user", "content": "hi"}]):
            received += len(getattr(item, "text", ""))
    assert "more than 50000 characters" in str(caught.value)
    assert 0 < received <= 50_000


ANSWER_SCRIPT = PEAK_MB + '''
import json, sys
sys.path.insert(0, ".")
from rag.errors import LLMError
from rag.llm import LLMClient, LLMConfig
from tests.llm_server import FakeGptOss, huge_answer

with FakeGptOss() as server:
    server.script(huge_answer(1000), huge_answer(int(sys.argv[1])))
    client = LLMClient(LLMConfig(server.base_url, "k", "gpt-oss-20b", max_retries=0))
    list(client.stream_chat([{"role": "user", "content": "warm up"}]))
    before = peak_mb()
    parts, error = [], ""
    try:
        for item in client.stream_chat([{"role": "user", "content": "hi"}]):
            parts.append(getattr(item, "text", ""))
    except LLMError as exc:
        error = str(exc)
rss = peak_mb()
print(json.dumps({"chars": sum(map(len, parts)), "error": error, "growth_mb": rss - before}))
'''


def test_a_20_mb_answer_stops_at_the_default_limit_in_bounded_memory() -> None:
    """The default limit (200,000 characters) ends a 20 MB answer early: the client keeps
    its deltas (as the web chat does) and its peak RSS grows by less than 50 MB over a warmed
    up client's (20 MB of answer kept as ~900,000 delta objects would take well over 100)."""
    run = subprocess.run([sys.executable, "-c", ANSWER_SCRIPT, "20000000"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert "LLM_MAX_ANSWER_CHARS" in report["error"], report
    assert 0 < report["chars"] <= 200_000
    assert report["growth_mb"] < 50, report


def test_answer_limit_is_wired_from_settings(llm: FakeGptOss, tmp_path: Path) -> None:
    from rag.kb import KnowledgeBase

    kb = KnowledgeBase(Settings(openai_base_url=llm.base_url, llm_model="gpt-oss-20b",
                                llm_max_answer_chars=1234,
                                milvus_uri=str(tmp_path / "kb.db")))
    assert kb.pipeline.llm is not None
    assert kb.pipeline.llm.max_answer_chars == 1234
