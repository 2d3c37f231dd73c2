"""The rewrite of a follow-up into a standalone query: the prompt, the reply's parsing, the
checks that reject a reply that is no query, and the fallback searched instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

from rag.followups.detection import depends_on_history
from rag.followups.words import FUNCTION_WORDS, TOKEN
from rag.prompting import CITATION, Turn

REWRITE_INSTRUCTIONS = """\
Turn the user's last question into one standalone search query for a document search engine. \
Resolve what it refers to (it, that, they, the same, ...) and fill in what it leaves out, from \
the earlier questions and the last answer. Do not answer the question. Reply with the search \
query only: one line, no quotes, no source numbers, no explanation."""

REWRITE_QUESTIONS = 3  # earlier user questions the rewrite prompt shows
REWRITE_ANSWER_CHARS = 300  # at most this much of the last answer goes into the rewrite prompt


def _without_citations(text: str) -> str:
    return re.sub(r"\s*" + CITATION.pattern, "", text)


def rewrite_messages(question: str, history: Sequence[Turn]) -> list[dict[str, str]]:
    """Messages asking for one standalone search query: the last few user questions, a short
    excerpt of the last answer (without its source numbers), then the follow-up."""
    lines = [f"User: {turn.question.strip()}" for turn in history[-REWRITE_QUESTIONS:]]
    if history:
        answer = " ".join(_without_citations(history[-1].answer).split())
        if len(answer) > REWRITE_ANSWER_CHARS:
            answer = answer[:REWRITE_ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
        if answer:
            lines.append(f"Assistant (excerpt of the last answer): {answer}")
    lines.append(f"User: {question.strip()}")
    return [{"role": "system", "content": REWRITE_INSTRUCTIONS},
            {"role": "user", "content": "\n".join(lines)}]


_QUERY_LABEL = re.compile(r"^[*_]*(?:standalone |rewritten |search )*query[*_]*\s*:[*_\s]*",
                          re.I)


def parse_rewrite(text: str) -> str:
    """The model's reply as a query: without a leading label line, a "Query:" prefix and
    quotes. Several lines stay several lines, for rewrite_problem to reject."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    while len(lines) > 1 and lines[0].endswith(":") and len(lines[0].split()) <= 5:
        lines.pop(0)  # "Here is the standalone query:"
    cleaned = (_QUERY_LABEL.sub("", line).strip().strip("\"'`“”").strip() for line in lines)
    return "\n".join(line for line in cleaned if line)


_REFUSAL = re.compile(r"\bsorry\b|\bapologi[sz]e\b|\bas an ai\b|\blanguage model\b"
                      r"|^i (?:can ?not|can't|am unable|am not able|'m unable|'m not able)"
                      r" (?:to )?(?:help|answer|assist|provide|rewrite|determine|find|tell)",
                      re.I)
_ANSWER_START = re.compile(r"^(?:yes|no|sure|certainly|of course|here is|here are|here's"
                           r"|based on|according to|the answer|you can|in short)\b", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
COPIED_CHARS = 40  # a common stretch this long with the last answer, holding ...
COPIED_NEW_WORDS = 4  # ... this many content words no question used, is copied answer text


def rewrite_problem(rewrite: str, question: str, history: Sequence[Turn]) -> str | None:
    """Why the model's rewrite is no search query (it answered, refused, rambled), or None."""
    text = rewrite.strip()
    if not text:
        return "it was empty"
    if CITATION.search(text):
        return "it carried source numbers like [1]"
    if _REFUSAL.search(text):
        return "it was a refusal"
    if len(text) > min(300, 3 * len(question.strip()) + 60):
        return "it was far longer than the question"
    sentences = [s for s in _SENTENCE_END.split(text) if len(s.split()) >= 3]
    if "\n" in text:
        return "it ran over several lines"
    if (_ANSWER_START.match(text) or len(sentences) > 2
            or (len(sentences) == 2 and not all(s.endswith("?") for s in sentences))):
        return "it read like an answer"
    asked = [question, *(turn.question for turn in history)]
    if history and _copies_answer(text, history[-1].answer, asked):
        return "it copied the previous answer"
    return None


def _copies_answer(text: str, answer: str, questions: Sequence[str]) -> bool:
    mine = " ".join(text.lower().split())
    theirs = " ".join(_without_citations(answer).lower().split())
    match = SequenceMatcher(None, mine, theirs, autojunk=False).find_longest_match(
        0, len(mine), 0, len(theirs))
    if match.size < COPIED_CHARS:
        return False
    asked = {m.group().lower() for q in questions for m in TOKEN.finditer(q)}
    piece = mine[match.a:match.a + match.size]
    new = [w for w in (m.group() for m in TOKEN.finditer(piece))
           if w not in asked and w not in FUNCTION_WORDS]
    return len(new) >= COPIED_NEW_WORDS


def fallback_query(question: str, history: Sequence[Turn]) -> str:
    """The question as asked after the previous question, and, when that one was a follow-up
    too, after the last self-contained question before it: what the question builds on."""
    asked = [turn.question.strip() for turn in history[-5:] if turn.question.strip()]
    if not asked:
        return question
    chain = [asked[-1]]
    if depends_on_history(asked[-1]):
        anchor = next((q for q in reversed(asked[:-1]) if not depends_on_history(q)), None)
        chain[:0] = [anchor] if anchor else []
    return " ".join([*chain, question.strip()])
