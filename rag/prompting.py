"""Prompts: grounded answers with numbered sources, and citation checks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.events import Source

ANSWER_INSTRUCTIONS = """\
You answer questions about the user's documents. Use only the numbered sources you are given.
Rules:
- Cite every statement with the number of its source in square brackets, like [1] or [2][3].
- Cite only numbers of sources you were given. Never invent a source.
- If the sources do not contain the answer, say plainly that the documents do not say, and \
stop; do not answer from general knowledge.
- Be concise and answer in the language of the question."""

AGENT_INSTRUCTIONS = """\
You answer questions about the user's documents. You have a tool, search_knowledge_base, that \
searches them and returns numbered sources. Search as often as you need (with different \
queries for different parts of the question), then answer using only the sources.
Rules:
- Cite every statement with the number of its source in square brackets, like [1] or [2][3].
- Cite only numbers of sources that searches returned. Never invent a source.
- If the sources do not contain the answer, say plainly that the documents do not say."""


SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_knowledge_base",
        "description": "Search the user's documents. Returns numbered sources to cite as [n].",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "k": {"type": "integer", "description": "How many results (1-10).",
                      "minimum": 1, "maximum": 10},
            },
            "required": ["query"],
        },
    },
}

CITATION = re.compile(r"\[(\d+(?:\s*[-–,]\s*\d+)*)\]")


def estimate_tokens(text: str) -> int:
    """A cautious token estimate for budgeting (about 3 characters a token)."""
    return len(text) // 3 + 1


def describe(source: Source) -> str:
    """One line naming a source: file, page and heading."""
    where = source.hit.location()
    return f"{source.hit.source}, {where}" if where else source.hit.source


def format_sources(sources: Sequence[Source]) -> str:
    """Sources as the model sees them: [n] header line, then the text."""
    return "\n\n".join(f"[{s.n}] {describe(s)}\n{s.hit.text}" for s in sources)


def fit_sources(sources: Sequence[Source], budget_tokens: int) -> list[Source]:
    """Keep sources in rank order while they fit the budget; the last may be shortened."""
    kept: list[Source] = []
    used = 0
    for source in sources:
        cost = estimate_tokens(describe(source)) + estimate_tokens(source.hit.text) + 4
        if used + cost <= budget_tokens:
            kept.append(source)
            used += cost
            continue
        room = budget_tokens - used - estimate_tokens(describe(source)) - 4
        if room >= 64:
            text = source.hit.text[: room * 3].rsplit(" ", 1)[0] + " …"
            hit = type(source.hit)(**{**source.hit.to_dict(), "text": text})
            kept.append(Source(source.n, hit))
        break
    return kept


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier exchange of a chat: the question and the answer (never the reasoning)."""

    question: str
    answer: str


def _history_messages(history: Sequence[Turn], budget_tokens: int) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    used = 0
    for turn in reversed(history):
        cost = estimate_tokens(turn.question) + estimate_tokens(turn.answer) + 8
        if used + cost > budget_tokens:
            break
        messages[:0] = [{"role": "user", "content": turn.question},
                        {"role": "assistant", "content": turn.answer}]
        used += cost
    return messages


def answer_messages(question: str, sources: Sequence[Source], history: Sequence[Turn] = (),
                    *, context_tokens: int = 8192, max_output_tokens: int = 2048
                    ) -> tuple[list[dict[str, str]], list[Source]]:
    """Messages for a grounded answer, and the sources that fitted the context window."""
    budget = context_tokens - max_output_tokens - estimate_tokens(ANSWER_INSTRUCTIONS)
    budget -= estimate_tokens(question) + 64
    history_msgs = _history_messages(history, budget // 4)
    budget -= sum(estimate_tokens(m["content"]) + 4 for m in history_msgs)
    fitted = fit_sources(sources, budget)
    context = format_sources(fitted) if fitted else "(no sources were found)"
    user = f"Sources:\n\n{context}\n\nQuestion: {question}"
    messages = [{"role": "system", "content": ANSWER_INSTRUCTIONS}, *history_msgs,
                {"role": "user", "content": user}]
    return messages, fitted


def agent_messages(question: str, history: Sequence[Turn] = (), *,
                   context_tokens: int = 8192) -> list[dict[str, str]]:
    """Messages that start an agentic answer: instructions, history, question."""
    history_msgs = _history_messages(history, context_tokens // 8)
    return [{"role": "system", "content": AGENT_INSTRUCTIONS}, *history_msgs,
            {"role": "user", "content": question}]



def cited_numbers(answer: str) -> list[int]:
    """Every [n], [n, m] and [n-m] marker in the answer, in first-seen order."""
    seen: dict[int, None] = {}
    for match in CITATION.finditer(answer):
        for part in re.split(r"\s*,\s*", match.group(1)):
            bounds = re.split(r"\s*[-–]\s*", part)
            if len(bounds) == 2 and int(bounds[1]) - int(bounds[0]) in range(0, 50):
                for n in range(int(bounds[0]), int(bounds[1]) + 1):
                    seen.setdefault(n, None)
            else:
                seen.setdefault(int(bounds[0]), None)
    return list(seen)


def check_citations(answer: str, sources: Sequence[Source]) -> tuple[list[int], list[int]]:
    """(cited numbers that match a source, cited numbers that match none)."""
    known = {s.n for s in sources}
    numbers = cited_numbers(answer)
    return [n for n in numbers if n in known], [n for n in numbers if n not in known]
