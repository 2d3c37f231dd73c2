"""The sources panel: one card per source, with its place, scores and chunk text.

Every document value is escaped; a card carries its chunk's id so that a click opens the
passage in the viewer (rag.ui.viewer).
"""

from __future__ import annotations

import html

from rag.answer import Answer
from rag.events import Source
from rag.ui.render import WARN, location, num

_SCORE_TIPS = {"cosine": "cosine similarity of the query and the chunk",
               "BM25": "BM25 keyword relevance",
               "sentence": "cosine similarity of the query and the chunk's closest sentence",
               "rerank": "reranker relevance of the query and the chunk"}


def _score(name: str, value: str) -> str:
    return (f"<span class='rag-score' title='{_SCORE_TIPS[name]}'>{name} <b>{value}</b>"
            f"</span>")


def source_card(source: Source, cited: bool) -> str:
    """One numbered source: file, place, scores, and the chunk text behind a summary."""
    esc, hit, n = html.escape, source.hit, source.n
    badge = "<span class='rag-badge'>cited</span>" if cited else ""
    preview = " ".join(hit.text.split())
    preview = preview[:110] + ("…" if len(preview) > 110 else "")
    scores = [_score("cosine", num(hit.dense_score, 3)), _score("BM25", num(hit.bm25_score, 2))]
    if hit.sentence_score is not None:
        scores.append(_score("sentence", num(hit.sentence_score, 3)))
    if hit.rerank_score is not None:
        scores.append(_score("rerank", num(hit.rerank_score, 3)))
    order = "reranking" if hit.rerank_score is not None else "fusion"
    scores.append(f"<span class='rag-score' title='rank after {order} (fused score)'>rank "
                  f"<b>{hit.rank}</b> · fused {hit.score:.4f}</span>")
    view = ("<button class='rag-view' type='button' title='Show this passage in its document'"
            ">View in document</button>")
    return (f"<div class='rag-source{' rag-cited' if cited else ''}' id='src-{n}' "
            f"data-chunk='{esc(hit.chunk_id, quote=True)}'>"
            f"<div class='rag-source-title'><span class='rag-n'>[{n}]</span>"
            f"<span class='rag-file'>{esc(hit.source)}</span>"
            f"<span class='rag-where'>{esc(location(hit))}</span>{badge}{view}</div>"
            f"<div class='rag-scores'>{''.join(scores)}</div>"
            f"<details><summary>{esc(preview)}</summary>"
            f"<div class='rag-chunk'>{esc(hit.text)}</div></details></div>")


def sources_html(answer: Answer | None) -> str:
    """The sources panel for one answer: numbered cards with scores and the chunk text."""
    if answer is None:
        return ("<div class='rag-sources'><div class='rag-empty'>Sources appear here: the "
                "passages each answer was built from, with their scores.</div></div>")
    head = "Sources"
    if answer.query:
        head += f" <span class='rag-query'>for “{html.escape(answer.query)}”</span>"
    parts = [f"<div class='rag-sources'><div class='rag-sources-head'>{head}</div>"]
    if not answer.sources:
        note = "No sources found." if answer.done else "Searching…"
        parts.append(f"<div class='rag-empty'>{note}</div>")
    parts.extend(_cards(answer))
    parts.extend(f"<div class='rag-warn'>{WARN} [{n}] does not match any source.</div>"
                 for n in answer.unknown_citations)
    parts.append("</div>")
    return "".join(parts)


def _cards(answer: Answer) -> list[str]:
    """The source cards: once the answer is done and cites sources, the cited ones first and
    the others folded under "Also retrieved (n)"; while it streams, all in their order."""
    cited = set(answer.citations)
    if not (answer.done and cited):
        return [source_card(s, s.n in cited) for s in answer.listed]
    used = [source_card(s, True) for s in answer.listed if s.n in cited]
    others = [source_card(s, False) for s in answer.listed if s.n not in cited]
    if others:
        used.append(f"<details class='rag-also'><summary>Also retrieved ({len(others)})"
                    f"</summary><div class='rag-also-list'>{''.join(others)}</div></details>")
    return used
