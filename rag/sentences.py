"""Sentence vectors: one vector per sentence of a chunk, pooled from the chunk's own encoding.

A chunk of 200 tokens answers a question with one or two of its sentences; its single vector
averages those with the rest. The encoder already computes a vector per token of the chunk (in
the context of the whole chunk), so a sentence's vector is the mean of its tokens' vectors
("late chunking"): no extra encoder call at ingest. At query time the best sentence's cosine
(max-sim) is a third signal beside the chunk's cosine and BM25 (rag.fusion.convex_fuse).

Measured on the development question sets (benchmarks/tune_fusion.py), hybrid with sentence
scores ranks the evidence chunk first more often than hybrid without (see the README's
retrieval table).

Stored per chunk as float16 vectors, base64 in a VARCHAR field (`pack` / `unpack`): Milvus Lite
has no multi-vector field; 60 sentences of 384 dimensions fit the 65,535-byte limit.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

import numpy as np

MIN_WORDS = 6  # a shorter sentence (a heading line, "Yes.") joins the one after it
MAX_SENTENCES = 60  # more spans are merged pairwise until they fit one stored field
MAX_PACKED = 65_535  # bytes of the stored field

_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
_WORD = re.compile(r"\S+")


def sentence_spans(text: str, *, min_words: int = MIN_WORDS,
                   limit: int = MAX_SENTENCES) -> list[tuple[int, int]]:
    """Character spans of the text's sentences (and lines: table rows, list items).

    A span of fewer than min_words words joins the next one (the last joins the one before);
    more than `limit` spans are merged pairwise until they fit.
    """
    spans: list[tuple[int, int]] = []
    start: int | None = None
    words = 0
    for begin, end in _pieces(text):
        start = begin if start is None else start
        words += len(_WORD.findall(text, begin, end))
        if words >= min_words:
            spans.append((start, end))
            start, words = None, 0
    if start is not None:
        tail_end = len(text.rstrip())
        if spans:
            spans[-1] = (spans[-1][0], tail_end)
        elif tail_end > start:
            spans.append((start, tail_end))
    while len(spans) > limit:
        spans = [(spans[i][0], spans[min(i + 1, len(spans) - 1)][1])
                 for i in range(0, len(spans), 2)]
    return spans


def _pieces(text: str) -> list[tuple[int, int]]:
    """Spans between sentence ends and line breaks, without surrounding space."""
    pieces, position = [], 0
    for match in [*_BREAK.finditer(text), None]:
        end = len(text) if match is None else match.start()
        piece = text[position:end]
        stripped = piece.strip()
        if stripped:
            begin = position + len(piece) - len(piece.lstrip())
            pieces.append((begin, begin + len(stripped)))
        if match is not None:
            position = match.end()
    return pieces


def pool(tokens: np.ndarray, offsets: Sequence[tuple[int, int]],
         spans: Sequence[tuple[int, int]], shift: int = 0) -> np.ndarray:
    """One L2-normalised vector per span: the mean of the token vectors inside it.

    tokens is (n_tokens, dim) for one encoded text, offsets each token's character span in
    that text (special tokens have empty spans and belong to no sentence); the spans are in the
    chunk text, which starts `shift` characters into the encoded text (after the heading line).
    A span the encoder did not reach (the input was truncated) gets no vector.
    """
    starts = np.array([s for s, _ in offsets], dtype=np.int64)
    ends = np.array([e for _, e in offsets], dtype=np.int64)
    real = ends > starts
    rows = []
    for begin, end in spans:
        inside = real & (ends > begin + shift) & (starts < end + shift)
        if inside.any():
            vector = tokens[inside].mean(axis=0)
            rows.append(vector / max(float(np.linalg.norm(vector)), 1e-12))
    if not rows:
        return np.zeros((0, tokens.shape[1]), dtype=np.float32)
    return np.asarray(rows, dtype=np.float32)


def pack(vectors: np.ndarray) -> str:
    """The vectors as stored: float16, base64 (empty string for none)."""
    if len(vectors) == 0:
        return ""
    packed = base64.b64encode(np.asarray(vectors, dtype="<f2").tobytes()).decode("ascii")
    if len(packed) > MAX_PACKED:
        raise ValueError(f"{len(vectors)} sentence vectors do not fit one field; "
                         f"sentence_spans keeps them to {MAX_SENTENCES}")
    return packed


def unpack(packed: str, dimension: int) -> np.ndarray:
    """The stored vectors as float32 rows of the given width."""
    if not packed:
        return np.zeros((0, dimension), dtype=np.float32)
    raw = np.frombuffer(base64.b64decode(packed), dtype="<f2")
    return raw.reshape(-1, dimension).astype(np.float32)


def best_sentence(query: np.ndarray, vectors: np.ndarray) -> float | None:
    """The cosine of the sentence closest to the query (None when there are none)."""
    if len(vectors) == 0:
        return None
    return float(np.max(vectors @ query))
