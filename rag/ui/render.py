"""Rendering for the Chat tab: sources cards, search steps, chat messages and the status line.

Pure functions of an `Answer` (rag.answer) and its sources; the chat stream only calls them.
Everything the chat and the status line show passes `safe_markdown`: documents and the model
write Markdown, never HTML, images or diagrams into the page. The sources cards are HTML
built here, with every document value escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

from rag.answer import Answer, Draft, Search, Thought
from rag.events import Source
from rag.schema import Hit
from rag.ui.claim_marks import claims_note, marked_markdown

WARN = "⚠"  # plain text glyphs only: no emoji font is needed to render the app
SOURCES_HINT = "The sources found for your question are listed beside the chat."
_CITATION = re.compile(r"\[(\d+(?:\s*[-–,]\s*\d+)*)\]")


def location(hit: Hit) -> str:
    """Where a chunk is: page or pages, then its heading path."""
    return hit.location(" · ")


def num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


# Fenced code: the browser escapes its text itself. An opening fence (up to 3 spaces, then 3+
# backticks or tildes) runs to a closing fence of its character at least as long, or the end.
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
# Outside fenced code: an escaped character (left alone), a run of backticks (a code span
# from it to the next run as long), a "<" that could open a tag, comment or declaration, the
# "![" of an image.
_TOKEN = re.compile(r"\\.|`+|<(?=[A-Za-z/!?])|!\[")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
WORD_JOINER = "\u2060"  # invisible: breaks "<img" and "![" inside code spans


def _code_span_safe(span: str) -> str:
    """A code span shows as typed, but no parser can read a tag or an image in it."""
    return _TAG_START.sub("<" + WORD_JOINER, span).replace("![", "!" + WORD_JOINER + "[")


def _line_safe(line: str) -> str:
    """One line of prose with raw HTML escaped, images shown as text; in one pass."""
    tokens = list(_TOKEN.finditer(line))
    closer: dict[int, int] = {}  # a backtick run's token -> the next run as long
    after: dict[int, int] = {}
    for k in range(len(tokens) - 1, -1, -1):
        run = tokens[k].group()
        if run[0] == "`":
            if len(run) in after:
                closer[k] = after[len(run)]
            after[len(run)] = k
    out, pos, k = [], 0, 0
    while k < len(tokens):
        token = tokens[k]
        out.append(line[pos:token.start()])
        if k in closer:
            pos, k = tokens[closer[k]].end(), closer[k] + 1
            out.append(_code_span_safe(line[token.start():pos]))
            continue
        found = token.group()
        out.append({"<": "&lt;", "![": "!\\["}.get(found, found))  # "![" stays text
        pos, k = token.end(), k + 1
    out.append(line[pos:])
    return "".join(out)


def _prose_safe(text: str, known: Collection[int]) -> str:
    text = link_citations(text, set(known)) if known else text
    text = re.sub(r"```(?=mermaid)", "``` ", text)  # a diagram would render HTML labels
    return "\n".join(_line_safe(line) for line in text.split("\n"))


def _fence(indent: int, info: str, body: list[str]) -> str:
    """A fenced code block that every Markdown parser reads as one: its own lines, a fence
    longer than any backtick run in it, no container around it."""
    lines = [line[min(indent, len(line) - len(line.lstrip(" "))):] for line in body]
    text = "\n".join(lines)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"\n{ticks} {info.replace('`', '').strip()}\n{text}\n{ticks}\n"


def _blocks(text: str) -> Iterator[tuple[str, tuple[int, str, list[str]] | None]]:
    """The text as prose and fenced code blocks, in order."""
    lines, prose, i = text.split("\n"), [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None or (opening.group(2)[0] == "`" and "`" in opening.group(3)):
            prose.append(lines[i])
            i += 1
            continue
        indent, fence, info = len(opening.group(1)), opening.group(2), opening.group(3)
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])),
                   len(lines))
        yield "\n".join(prose), (indent, info, lines[i + 1:end])
        prose, i = [], end + 1
    yield "\n".join(prose), None


def safe_markdown(text: str, known: Collection[int] = ()) -> str:
    """Markdown that renders as Markdown only: raw HTML shows as text, images as their
    Markdown (nothing is fetched without a click), diagrams as code. Citation markers [n]
    of `known` sources outside code blocks link to their cards."""
    parts = []
    for prose, code in _blocks(text):
        parts.append(_prose_safe(prose, known))
        if code is not None:
            parts.append(_fence(*code))
    return "\n".join(parts)


def link_citations(text: str, known: set[int],
                   href: Callable[[int], str] = lambda n: f"#src-{n}") -> str:
    """Markdown with each known [n] marker turned into a link: to its source card, or where
    `href` says (the viewer's address of its passage, in the API's Markdown)."""

    def one(match: re.Match[str]) -> str:
        inner = re.sub(r"\d+", lambda m: (f"[{m.group()}]({href(int(m.group()))})"
                                          if int(m.group()) in known else m.group()),
                       match.group(1))
        return f"[{inner}]"

    return _CITATION.sub(one, text)


def one_line(text: str, limit: int = 90) -> str:
    """The first line of a text, whitespace collapsed, cut to a limit with an ellipsis."""
    first = " ".join(text.strip().split("\n", 1)[0].split())
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def md_text(text: str) -> str:
    """Plain text (a file name, a heading) for Markdown: its punctuation shows as typed."""
    return re.sub(r"([\\`*_\[\]<>!|~])", r"\\\1", " ".join(text.split()))


def hits_markdown(sources: list[Source]) -> str:
    """A short Markdown list of sources, for a collapsible search step."""
    if not sources:
        return "No results."
    lines = []
    for s in sources:
        where = md_text(location(s.hit))
        rerank = ("" if s.hit.sentence_score is None
                  else f", sentence {num(s.hit.sentence_score, 3)}")
        rerank += ("" if s.hit.rerank_score is None
                   else f", rerank {num(s.hit.rerank_score, 3)}")
        lines.append(f"{s.n}. **{md_text(s.hit.source)}**{' · ' + where if where else ''} — "
                     f"cosine {num(s.hit.dense_score, 3)}, BM25 {num(s.hit.bm25_score, 2)}"
                     f"{rerank}")
    return "\n".join(lines)


def _step(title: str, content: str, status: str = "done",
          duration: float | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"title": safe_markdown(title), "status": status}
    if duration is not None:
        meta["duration"] = duration
    return {"role": "assistant", "content": safe_markdown(content), "metadata": meta}


def _say(text: str, known: Collection[int] = ()) -> dict[str, Any]:
    return {"role": "assistant", "content": safe_markdown(text, known)}


def _search_message(answer: Answer, search: Search) -> dict[str, Any] | None:
    found = "…" if search.pending else hits_markdown(answer.sources_of(search))
    if search.tool:
        return _step(f"Searched: {one_line(search.query)}", found)
    if search.rewritten:  # the question's own search shows only when its query differs
        return _step(f"Searched for: {one_line(search.query)}", found)
    return None


def chat_messages(answer: Answer) -> list[dict[str, Any]]:
    """The chatbot messages of one reply, after its question: searches, thinking, the
    answer with linked citations, and the error if it failed; all of them `safe_markdown`."""
    known = set(answer.sources)
    messages: list[dict[str, Any]] = []
    for step in answer.steps:
        if isinstance(step, Search):
            message = _search_message(answer, step)
            if message is not None:
                messages.append(message)
        elif isinstance(step, Thought):
            pending = step.seconds is None
            messages.append(_step("Thinking", step.text, "pending" if pending else "done",
                                  step.seconds))
        elif isinstance(step, Draft):
            messages.append(_say(step.text, known))
    if answer.text:
        messages.append({"role": "assistant", "content": marked_markdown(
            answer.text, answer.claims, lambda text: safe_markdown(text, known))})
    if answer.error is not None:
        hint = f"\n\n{SOURCES_HINT}" if answer.sources else ""
        messages.append(_say(f"{WARN} {answer.error}{hint}"))
    return messages


def done_note(answer: Answer) -> str:
    """'✓ answered in 3.1 s · first token after 0.4 s · 812 tokens · cites [1], [2]'."""
    parts = []
    total = answer.timings.get("total")
    if total is not None:
        parts.append(f"answered in {total:.1f} s")
    first = answer.timings.get("first_token")
    if first is not None:
        parts.append(f"first token after {first:.1f} s")
    if answer.usage:
        parts.append(f"{answer.usage.get('total_tokens', 0)} tokens")
    if answer.citations:
        parts.append("cites " + ", ".join(f"[{n}]" for n in answer.citations))
    if claims_note(answer.claims):
        parts.append(claims_note(answer.claims))
    note = "✓ " + (" · ".join(parts) or "done")
    unknown = answer.unknown_citations
    if unknown:
        verb = "does" if len(unknown) == 1 else "do"
        note += f"  \n{WARN} {', '.join(f'[{n}]' for n in unknown)} {verb} not match any source."
    return note


def status_text(answer: Answer) -> str:
    """The line under the chat: notices, then how the answer went once it is complete."""
    lines = [f"ℹ {safe_markdown(message)}" for message in answer.notices]
    if answer.final is not None:
        lines.append(done_note(answer))
    return "  \n".join(lines)
