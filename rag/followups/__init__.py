"""Follow-up questions: which depend on the conversation, their rewrite, and its checks.

A follow-up that names its own subject is searched as asked. One that refers back ("and for
Windows?", "how do I tune it?") is rewritten by the LLM into a standalone query; a rewrite that
looks like an answer (citations, several sentences, text copied from the last answer, far longer
than the question) is rejected, and the question is searched with the previous one instead.

Three modules: `words` (the tokeniser and word lists), `detection` (`depends_on_history`), and
`rewrite` (the rewrite prompt, its parsing and checks, and `fallback_query`).
"""

from rag.followups.detection import SHORT_CONTENT_WORDS, depends_on_history
from rag.followups.rewrite import (
    COPIED_CHARS,
    COPIED_NEW_WORDS,
    REWRITE_ANSWER_CHARS,
    REWRITE_INSTRUCTIONS,
    REWRITE_QUESTIONS,
    fallback_query,
    parse_rewrite,
    rewrite_messages,
    rewrite_problem,
)

__all__ = [
    "COPIED_CHARS",
    "COPIED_NEW_WORDS",
    "REWRITE_ANSWER_CHARS",
    "REWRITE_INSTRUCTIONS",
    "REWRITE_QUESTIONS",
    "SHORT_CONTENT_WORDS",
    "depends_on_history",
    "fallback_query",
    "parse_rewrite",
    "rewrite_messages",
    "rewrite_problem",
]
