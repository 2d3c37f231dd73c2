"""A saved conversation as Markdown: each question, its answer with citations, and the sources
the answer cited (then the others retrieved), with their locations and scores."""

from __future__ import annotations

from collections.abc import Sequence

from rag.events import Source
from rag.workspace.conversations import ConversationInfo, SavedReply
from rag.workspace.records import answer_from_record


def conversation_markdown(info: ConversationInfo, replies: Sequence[SavedReply]) -> str:
    """The conversation as one Markdown document."""
    lines = [f"# {info.title}", "",
             f"Knowledge base: {info.kb} · started {info.created_at:%Y-%m-%d %H:%M} UTC · "
             f"{len(replies)} {'reply' if len(replies) == 1 else 'replies'}", ""]
    for number, reply in enumerate(replies, start=1):
        answer = answer_from_record(reply.answer)
        lines += [f"## {number}. {_one_line(reply.question)}", ""]
        if answer.query and answer.query != answer.question:
            lines += [f"*Searched as:* {_one_line(answer.query)}", ""]
        lines += [answer.text.strip() or "*(no answer)*", ""]
        if answer.error:
            lines += [f"> Error: {_one_line(answer.error)}", ""]
        cited = set(answer.citations)
        used = [s for s in answer.listed if s.n in cited]
        others = [s for s in answer.listed if s.n not in cited]
        if used:
            lines += ["**Cited sources**", "", *(_source_line(s) for s in used), ""]
        if others:
            lines += ["**Also retrieved**", "", *(_source_line(s) for s in others), ""]
    return "\n".join(lines).rstrip() + "\n"


def _source_line(source: Source) -> str:
    hit = source.hit
    where = hit.location(" · ")
    scores = [f"score {hit.score:.3f}"]
    if hit.dense_score is not None:
        scores.append(f"cosine {hit.dense_score:.3f}")
    if hit.bm25_score is not None:
        scores.append(f"BM25 {hit.bm25_score:.2f}")
    if hit.rerank_score is not None:
        scores.append(f"rerank {hit.rerank_score:.3f}")
    head = f"- [{source.n}] {hit.source}" + (f", {where}" if where else "")
    return f"{head} ({', '.join(scores)}): {_one_line(hit.text, 240)}"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"
