"""The claim check: every sentence of an answer scored against the sources it cites.

An answer's sentences (its prose: not code, headings, questions, nor a plain "the documents do
not say") are its claims. A claim without a citation, or citing only numbers that match no
source, is unsupported. A cited claim is scored against each cited source and keeps the best
score: with a reranker, the reranker's relevance of (claim, source text); else the embedder's
cosine of the claim and the source's closest sentence (or the whole chunk, if closer). Below
the scorer's threshold the sources do not support it.

The thresholds are calibrated on real text, not guessed: benchmarks/claims.py scores BEIR
SciFact's claims against their evidence abstracts (support) and against the best-ranked
abstract that is not evidence (an on-topic source that does not back the claim), picks the
threshold that best separates the two on `train`, and reports it on `test` (the README's
claim-check table). For a reranker, 0.5 is the boundary its relevance scores are trained to
(the models' sigmoid output); run the benchmark with your scorer to calibrate another.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rag.events import Claim, Source
from rag.prompting import CITATION, cited_numbers
from rag.sentences import sentence_spans

# Calibrated by benchmarks/claims.py on SciFact train (all-MiniLM-L6-v2), see the README.
EMBEDDING_THRESHOLD = 0.68
RERANK_THRESHOLD = 0.5
MIN_WORDS = 4  # a shorter sentence ("Yes.", "In short:") states nothing to check

_SENTENCE_END = re.compile(r"(?<=[.!?])(?:\s*\[\d+(?:\s*[-–,]\s*\d+)*\])*\s+(?=\S)")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_NOT_PROSE = re.compile(r"^\s*(?:#{1,6}\s|\|?\s*:?-{3,}|>\s*$)")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_WORD = re.compile(r"[^\W_]+")
# "The documents do not say." and its kin: the honest answer, not a claim needing a source
_NO_ANSWER = re.compile(
    r"\b(?:documents?|sources?|context|passages?)\b[^.]{0,40}\b(?:do(?:es)?\s*n[o']t|never|"
    r"neither)\b[^.]{0,30}\b(?:say|state|mention|contain|cover|answer|specify|describe|"
    r"include|provide)", re.IGNORECASE)


class _Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class _Reranker(Protocol):
    def score(self, query: str, texts: Sequence[str]) -> list[float]: ...


def claim_spans(answer: str) -> list[tuple[int, int]]:
    """Offsets of the answer's claims: the sentences of its prose lines (list markers left
    out), skipping fenced code, headings, table rules, questions and short fragments."""
    spans: list[tuple[int, int]] = []
    offset, fenced = 0, False
    for line in answer.split("\n"):
        start, offset = offset, offset + len(line) + 1
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or _NOT_PROSE.match(line) or not line.strip():
            continue
        if line.lstrip().startswith("|"):  # a table row: one claim per row
            spans.append((start + len(line) - len(line.lstrip()), start + len(line.rstrip())))
            continue
        mark = _LIST_MARK.match(line)
        begin = start + (mark.end() if mark else 0)
        body = answer[begin:start + len(line)]
        cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(body)), len(body)]
        for a, b in itertools.pairwise(cuts):
            piece = body[a:b]
            lead = len(piece) - len(piece.lstrip())
            if piece.strip():
                spans.append((begin + a + lead, begin + a + len(piece.rstrip())))
    return [(a, b) for a, b in spans if _is_claim(answer[a:b])]


def _is_claim(sentence: str) -> bool:
    bare = CITATION.sub(" ", sentence).strip()
    if len(_WORD.findall(bare)) < MIN_WORDS or bare.endswith("?"):
        return False
    return not (_NO_ANSWER.search(bare) and not cited_numbers(sentence))


def bare_text(sentence: str) -> str:
    """A claim as scored: without its citation markers and Markdown emphasis."""
    text = CITATION.sub(" ", sentence)
    text = re.sub(r"[*_`]+", "", text)
    return " ".join(text.split())


class ClaimChecker:
    """Scores each claim of an answer against its cited sources (a reranker if given, else the
    embedder) and marks those below the threshold, or without a citation, unsupported."""

    def __init__(self, embedder: _Embedder, reranker: _Reranker | None = None, *,
                 embedding_threshold: float = EMBEDDING_THRESHOLD,
                 rerank_threshold: float = RERANK_THRESHOLD) -> None:
        self.embedder = embedder
        self.reranker = reranker
        self.threshold = rerank_threshold if reranker is not None else embedding_threshold

    @property
    def scorer(self) -> str:
        """What scores the claims: 'reranker' or 'embedder'."""
        return "reranker" if self.reranker is not None else "embedder"

    def check(self, answer: str, sources: Sequence[Source]) -> list[Claim]:
        """The answer's claims, each with its cites, support and verdict."""
        by_n = {s.n: s for s in sources}
        claims: list[Claim] = []
        pending: list[tuple[int, str, list[Source]]] = []
        for start, end in claim_spans(answer):
            text = answer[start:end]
            numbers = cited_numbers(text)
            cites = [n for n in numbers if n in by_n]
            claims.append(Claim(text, start, end, cites))
            if cites:
                pending.append((len(claims) - 1, bare_text(text), [by_n[n] for n in cites]))
            else:
                claims[-1] = _verdict(claims[-1], None, self.threshold, numbers)
        scores = self.scores([(text, cited) for _, text, cited in pending])
        for (index, _, _), score in zip(pending, scores, strict=True):
            claims[index] = _verdict(claims[index], score, self.threshold, [])
        return claims

    def scores(self, items: list[tuple[str, list[Source]]]) -> list[float]:
        """The support of each (claim text, its cited sources): the best score of any."""
        if not items:
            return []
        if self.reranker is not None:
            return [max(_probability(v) for v in self.reranker.score(
                text, [s.hit.text for s in cited])) for text, cited in items]
        return self._embedding_scores(items)

    def _embedding_scores(self, items: list[tuple[str, list[Source]]]) -> list[float]:
        """Cosine of each claim with the closest sentence or whole text of its sources; every
        text is embedded once, in one call."""
        pieces: dict[str, list[str]] = {}
        for _, cited in items:
            for s in cited:
                pieces.setdefault(s.hit.chunk_id, source_pieces(s.hit.text))
        texts = [text for text, _ in items]
        flat = [p for ps in pieces.values() for p in ps]
        vectors = _normalised(self.embedder.embed([*texts, *flat]))
        claim_vectors, rest = vectors[:len(texts)], vectors[len(texts):]
        ranges, at = {}, 0
        for chunk_id, ps in pieces.items():
            ranges[chunk_id], at = (at, at + len(ps)), at + len(ps)
        scores = []
        for vector, (_, cited) in zip(claim_vectors, items, strict=True):
            best = -1.0
            for s in cited:
                a, b = ranges[s.hit.chunk_id]
                best = max(best, float(np.max(rest[a:b] @ vector)))
            scores.append(best)
        return scores


def source_pieces(text: str) -> list[str]:
    """What a claim is compared with in one source: each sentence, each pair of neighbouring
    sentences (a claim often joins two), and the whole text."""
    sentences = [text[a:b] for a, b in sentence_spans(text, min_words=3)] or [text]
    pairs = [f"{x} {y}" for x, y in itertools.pairwise(sentences)]
    return [*sentences, *pairs, text]


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _probability(score: float) -> float:
    """A reranker's score as a relevance in 0..1 (a raw logit goes through the sigmoid)."""
    return score if 0.0 <= score <= 1.0 else 1.0 / (1.0 + math.exp(-score))


def _verdict(claim: Claim, score: float | None, threshold: float,
             unknown: list[int]) -> Claim:
    if score is None:
        reason = ("cites " + ", ".join(f"[{n}]" for n in unknown) + ", which matches no source"
                  if unknown else "no citation")
        return Claim(claim.text, claim.start, claim.end, [], None, False, reason)
    score = round(score, 4)
    if score >= threshold:
        return Claim(claim.text, claim.start, claim.end, claim.cites, score, True, "")
    cited = ", ".join(f"[{n}]" for n in claim.cites)
    reason = (f"{cited} {'does' if len(claim.cites) == 1 else 'do'} not support it "
              f"(support {score:.2f}, needs {threshold:.2f})")
    return Claim(claim.text, claim.start, claim.end, claim.cites, score, False, reason)
