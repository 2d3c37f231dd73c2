"""Whether a follow-up question leans on the conversation and needs a rewrite to be searched.

Pure rules over the question's words (rag.followups.words): back-references, ellipsis, and very
short questions that name no subject of their own.
"""

from __future__ import annotations

import re
from itertools import pairwise

from rag.followups.words import (
    ALWAYS_BACK,
    AUX,
    BACK_PHRASES,
    BE,
    CJK,
    CJK_CONTINUATIONS,
    CLAUSE_HEADS,
    CONTINUATION_STARTS,
    CONTINUATIONS,
    ENGLISH_CUES,
    EXISTENTIAL,
    EXPLETIVE_AFTER,
    EXPLETIVE_LINK,
    FUNCTION_WORDS,
    IMPERATIVE,
    ONE_HEADS,
    OTHER_CONTINUATIONS,
    PREPOSITIONS,
    TOKEN,
    WH,
    expand_contractions,
)

SHORT_CONTENT_WORDS = 3  # a question with no more content words is "very short"


def depends_on_history(question: str) -> bool:
    """Whether a follow-up leans on the conversation and needs a rewrite before searching.

    True for back-references ("does it ...", "that one"), ellipsis ("and for Windows?",
    "what about HNSW?"), and very short questions ("why?", "example?") that name no subject
    of their own. A question in another language counts as self-contained unless it is very
    short. Pure and cheap: it runs before every follow-up.
    """
    text = expand_contractions(question)
    spans = [(m.group(), m.start()) for m in TOKEN.finditer(text)]
    words = [token.lower() for token, _ in spans]
    if not words:
        return True
    if not ENGLISH_CUES.intersection(words):
        return _foreign_depends(text, spans, words)
    if _continues(words) or _refers_back(text, words):
        return True
    content = [w for w in words if w not in FUNCTION_WORDS]
    framed = bool(WH.intersection(words)) or _first_word(words) in (
        AUX | IMPERATIVE | {"i", "we", "you"})
    if len(content) > SHORT_CONTENT_WORDS:
        return not framed and words[0] in PREPOSITIONS  # "for a cluster with 3 nodes?"
    return _named(text, spans, english=True) < (1 if framed else 2)


def _first_word(words: list[str]) -> str:
    return words[1] if len(words) > 1 and words[0] == "please" else words[0]


def _continues(words: list[str]) -> bool:
    start = " ".join(words[:3])
    return words[0] in CONTINUATIONS or start.startswith(CONTINUATION_STARTS)


def _refers_back(text: str, words: list[str]) -> bool:
    if re.search(r"\[\d", text) or BACK_PHRASES.search(" ".join(words)):
        return True
    points_inside = bool(re.search(r":\s*\S|[\"“`]|'[^']+'", text))  # "what does this mean: X"
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if word in ALWAYS_BACK or (word in ("this", "these") and not points_inside):
            return True
        if word == "it" and not _expletive_it(words, i):
            return True
        if word == "there" and before not in EXISTENTIAL and after not in EXISTENTIAL:
            return True
        if word == "that" and _that_refers(before, after):
            return True
        if (word == "those" and after not in ("who", "whose")) or (
                word == "such" and after not in ("as", "that")) or (
                word == "instead" and after != "of") or word == "ones" or (
                word == "one" and before in ONE_HEADS and (not after or after in FUNCTION_WORDS)):
            return True
    return False


def _expletive_it(words: list[str], i: int) -> bool:
    """'it' that refers to nothing: "is it possible to", "does it take long to"."""
    before = words[i - 1] if i else ""
    after = words[i + 1:i + 6]
    first = after[0] if after else ""
    if first in ("take", "takes", "took", "cost", "costs"):
        return "to" in after
    if first in ("matter", "matters", "seems", "seem", "appears"):
        return any(w in ("if", "whether", "which", "that", "like", "to") for w in after)
    if after[:2] in (["make", "sense"], ["makes", "sense"]):
        return True
    if before in BE or first in BE:
        return any(w in EXPLETIVE_AFTER and nxt in EXPLETIVE_LINK
                   for w, nxt in pairwise(after))
    return False


def _that_refers(before: str, after: str) -> bool:
    """'that' as a pronoun or determiner ("what does that mean", "change that value"), not
    as the start of a clause ("know that ...", "the index that supports ...")."""
    if not after:
        return True
    if before in CLAUSE_HEADS:
        return False
    if not before or before in FUNCTION_WORDS:
        return True
    return not (after in FUNCTION_WORDS or after.endswith(("s", "ed")))


def _named(text: str, spans: list[tuple[str, int]], *, english: bool) -> int:
    """How many subjects the question names: quoted text, code, acronyms, Capitalised Names."""
    latin = [t for t, _ in spans if t.isalpha() and t.isascii()]
    all_caps = bool(latin) and all(t.isupper() for t in latin)
    small = [t for t in latin[1:] if t.lower() in FUNCTION_WORDS and t != "I"]
    title_case = all_caps or (bool(small) and all(t[0].isupper() for t in small))
    count = len(re.findall(r"\"[^\"]+\"|“[^”]+”|`[^`]+`|'[^']+'", text))
    for token, start in spans:
        if token.lower() in FUNCTION_WORDS:
            continue
        code = (bool(re.search(r"[./_]", token) or re.search(r"[a-z][A-Z]", token))
                or (any(c.isdigit() for c in token) and any(c.isalpha() for c in token)))
        acronym = len(token) >= 2 and token.isupper() and not all_caps
        capital = (english and not title_case and token[0].isupper() and token.isalpha()
                   and not re.search(r"(?:^|[.?!:;\n])[\s\"'“(*`]*$", text[:start]))
        count += code or acronym or capital
    return count


def _foreign_depends(text: str, spans: list[tuple[str, int]], words: list[str]) -> bool:
    """A question with no English cues: dependent when it starts with "und", "et", "y", ...
    or is very short (a CJK character counts half a word) and names too little."""
    if words[0] in OTHER_CONTINUATIONS or text.lstrip().startswith(CJK_CONTINUATIONS):
        return True
    size = sum(0.5 if re.fullmatch(f"[{CJK}]", w) else 1.0 for w in words)
    if size > SHORT_CONTENT_WORDS:
        return False
    named = _named(text, spans, english=False)
    return not (named >= 2 or (named >= 1 and size >= 3))

