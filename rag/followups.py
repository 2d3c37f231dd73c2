"""Follow-up questions: which depend on the conversation, their rewrite, and its checks.

A follow-up that names its own subject is searched as asked. One that refers back ("and for
Windows?", "how do I tune it?") is rewritten by the LLM into a standalone query; a rewrite that
looks like an answer (citations, several sentences, text copied from the last answer, far longer
than the question) is rejected, and the question is searched with the previous one instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher
from itertools import pairwise

from rag.prompting import CITATION, Turn

REWRITE_INSTRUCTIONS = """\
Turn the user's last question into one standalone search query for a document search engine. \
Resolve what it refers to (it, that, they, the same, ...) and fill in what it leaves out, from \
the earlier questions and the last answer. Do not answer the question. Reply with the search \
query only: one line, no quotes, no source numbers, no explanation."""

REWRITE_QUESTIONS = 3  # earlier user questions the rewrite prompt shows
REWRITE_ANSWER_CHARS = 300  # at most this much of the last answer goes into the rewrite prompt

# A follow-up is rewritten into a standalone query only when it leans on the conversation
# (depends_on_history); a rewrite is checked (rewrite_problem) and, when it is no query, the
# question is searched together with the earlier question it builds on (fallback_query).

SHORT_CONTENT_WORDS = 3  # a question with no more content words is "very short"

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}](?:[^\W{_CJK}]|[./-](?=[^\W{_CJK}]))*")
_CONTRACTIONS = (
    (re.compile(r"\b(it|that|there|what|how|where|who|here|he|she)'s\b", re.I), r"\1 is"),
    (re.compile(r"\blet's\b", re.I), "let us"),
    (re.compile(r"\bcan't\b", re.I), "can not"),
    (re.compile(r"\bwon't\b", re.I), "will not"),
    (re.compile(r"n't\b", re.I), " not"),
    (re.compile(r"'re\b", re.I), " are"),
    (re.compile(r"'ll\b", re.I), " will"),
    (re.compile(r"'ve\b", re.I), " have"),
    (re.compile(r"'d\b", re.I), " would"),
    (re.compile(r"'m\b", re.I), " am"),
    (re.compile(r"'s\b", re.I), ""),  # a possessive: Milvus's -> Milvus
)


def _words_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WH = _words_set("what how why when where which who whom whose")
_AUX = _words_set("is are was were am be do does did can could should would will shall may "
                  "might must has have had")
_IMPERATIVE = _words_set("explain describe list show tell give define compare summarize "
                         "summarise name find outline write provide help walk suggest "
                         "recommend clarify")
_PREPOSITIONS = _words_set(
    "about above across after against along among around as at before behind below beside "
    "besides between beyond by despite down during except for from in inside into like near "
    "of off on onto out outside over per regarding since than through throughout to toward "
    "towards under unlike until up upon using via with within without")
_FUNCTION_WORDS = _WH | _AUX | _IMPERATIVE | _PREPOSITIONS | _words_set(
    "a an the i me my mine myself we us our ours you your yours he him his she her hers it "
    "its they them their theirs this that these those there here one ones and or but nor so "
    "yet if then else because while whereas although though unless whether not no yes also "
    "too very really just only even still already again ever never always sometimes often "
    "more most much many any some all each every both either neither other another such "
    "same own instead please thanks thank ok okay well now exactly actually basically maybe "
    "perhaps been being done doing having get gets got getting know want need let way ways "
    "thing things something anything everything nothing stuff kind sort lot lots bit vs "
    "versus etc")
# A first word that continues the conversation ("and for Windows?", "ok, and then?").
_CONTINUATIONS = _words_set(
    "also and so then but or nor plus yet still besides additionally furthermore moreover "
    "however otherwise instead now ok okay alright well hmm thanks thank great cool yes yeah "
    "no nope sure right vs versus same except unlike")
_CONTINUATION_STARTS = ("what about", "how about", "what of", "what if", "as for",
                        "compared to", "compared with", "in that case", "in this case")
# Words that always point back: pronouns and the like.
_ALWAYS_BACK = _words_set("they them their theirs he she him her his hers its aforementioned "
                          "former latter here elaborate")
_BACK_PHRASES = re.compile(
    r"\b(?:if so|if not|do so|doing so|why so|how so|in (?:that|this) case"
    r"|(?:what|anything|something|who|where) else|tell me more|say more|go on"
    r"|more (?:details?|info|information|examples?)|(?:mentioned|said|shown|listed) above"
    r"|the above|you (?:said|mentioned|wrote|cited|suggested|recommended|described|listed"
    r"|showed|gave|just)|your (?:answer|example|suggestion|response|reply|explanation|list"
    r"|last|previous|first|second)|(?:previous|last) (?:answer|response|reply|message"
    r"|question|one|example)|the (?:first|second|third|fourth|fifth|last|next|other|previous)"
    r" (?:ones?|points?|options?|steps?|items?|methods?|approach(?:es)?|examples?"
    r"|solutions?|suggestions?|sources?|links?|commands?|bullets?|ways?)"
    r"|the same(?! (?:as|time|way as))|sources? \d+)\b|\b(?:too|either|as well|then|above)$")
# "it" with nothing to refer to: "is it possible to ...", "how long does it take to ...".
_EXPLETIVE_AFTER = _words_set("possible impossible necessary unnecessary safe unsafe ok okay "
                              "fine recommended advisable advised better best worse worth "
                              "worthwhile true false required mandatory needed important "
                              "normal common usual typical likely unlikely hard harder easy "
                              "easier difficult feasible allowed permitted wise good bad "
                              "preferable faster slower cheaper efficient sensible enough "
                              "useful expected supposed known documented correct wrong "
                              "appropriate reasonable practical helpful convenient idea")
_EXPLETIVE_LINK = _words_set("to that whether if for when")
_BE = _words_set("is was be been would will could should might may")
_EXISTENTIAL = _BE | _words_set("are were can must seems seem exist exists any a an no")
# Words after which "that" starts a clause ("know that ...", "something that ...").
_CLAUSE_HEADS = _words_set("know knows ensure ensures sure check verify confirm say says said "
                           "mean means think believe assume guarantee guarantees given so "
                           "such now except show shows prove true possible likely fact way "
                           "ways note noted mentioned claim claims documented states indicate "
                           "indicates suggest suggests seem seems expect expected require "
                           "requires required recommend recommended case idea clear "
                           "important necessary something anything everything nothing all "
                           "one ones those thing things any some")
_ONE_HEADS = _words_set("which that this the other another each first second third last "
                        "latter former new old better best faster right same bigger smaller "
                        "next previous different either neither")
# Languages other than English: only a few first words that continue a conversation.
_ENGLISH_CUES = _words_set("the what how why when where which who does did can could should "
                           "would it its this that these those they them their and with "
                           "about there not are has have were you your we if then but same "
                           "more please tell explain for or be")
_OTHER_CONTINUATIONS = _words_set("und aber et mais alors y pero entonces e ma allora mas "
                                  "então en maar и а но")
_CJK_CONTINUATIONS = ("那", "还有", "另外", "而且", "じゃあ", "では", "それで", "それから")


def depends_on_history(question: str) -> bool:
    """Whether a follow-up leans on the conversation and needs a rewrite before searching.

    True for back-references ("does it ...", "that one"), ellipsis ("and for Windows?",
    "what about HNSW?"), and very short questions ("why?", "example?") that name no subject
    of their own. A question in another language counts as self-contained unless it is very
    short. Pure and cheap: it runs before every follow-up.
    """
    text = _expand_contractions(question)
    spans = [(m.group(), m.start()) for m in _TOKEN.finditer(text)]
    words = [token.lower() for token, _ in spans]
    if not words:
        return True
    if not _ENGLISH_CUES.intersection(words):
        return _foreign_depends(text, spans, words)
    if _continues(words) or _refers_back(text, words):
        return True
    content = [w for w in words if w not in _FUNCTION_WORDS]
    framed = bool(_WH.intersection(words)) or _first_word(words) in (
        _AUX | _IMPERATIVE | {"i", "we", "you"})
    if len(content) > SHORT_CONTENT_WORDS:
        return not framed and words[0] in _PREPOSITIONS  # "for a cluster with 3 nodes?"
    return _named(text, spans, english=True) < (1 if framed else 2)


def _expand_contractions(question: str) -> str:
    text = question.replace("’", "'").replace("‘", "'")
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _first_word(words: list[str]) -> str:
    return words[1] if len(words) > 1 and words[0] == "please" else words[0]


def _continues(words: list[str]) -> bool:
    start = " ".join(words[:3])
    return words[0] in _CONTINUATIONS or start.startswith(_CONTINUATION_STARTS)


def _refers_back(text: str, words: list[str]) -> bool:
    if re.search(r"\[\d", text) or _BACK_PHRASES.search(" ".join(words)):
        return True
    points_inside = bool(re.search(r":\s*\S|[\"“`]|'[^']+'", text))  # "what does this mean: X"
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if word in _ALWAYS_BACK or (word in ("this", "these") and not points_inside):
            return True
        if word == "it" and not _expletive_it(words, i):
            return True
        if word == "there" and before not in _EXISTENTIAL and after not in _EXISTENTIAL:
            return True
        if word == "that" and _that_refers(before, after):
            return True
        if (word == "those" and after not in ("who", "whose")) or (
                word == "such" and after not in ("as", "that")) or (
                word == "instead" and after != "of") or word == "ones" or (
                word == "one" and before in _ONE_HEADS and (not after or after in _FUNCTION_WORDS)):
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
    if before in _BE or first in _BE:
        return any(w in _EXPLETIVE_AFTER and nxt in _EXPLETIVE_LINK
                   for w, nxt in pairwise(after))
    return False


def _that_refers(before: str, after: str) -> bool:
    """'that' as a pronoun or determiner ("what does that mean", "change that value"), not
    as the start of a clause ("know that ...", "the index that supports ...")."""
    if not after:
        return True
    if before in _CLAUSE_HEADS:
        return False
    if not before or before in _FUNCTION_WORDS:
        return True
    return not (after in _FUNCTION_WORDS or after.endswith(("s", "ed")))


def _named(text: str, spans: list[tuple[str, int]], *, english: bool) -> int:
    """How many subjects the question names: quoted text, code, acronyms, Capitalised Names."""
    latin = [t for t, _ in spans if t.isalpha() and t.isascii()]
    all_caps = bool(latin) and all(t.isupper() for t in latin)
    small = [t for t in latin[1:] if t.lower() in _FUNCTION_WORDS and t != "I"]
    title_case = all_caps or (bool(small) and all(t[0].isupper() for t in small))
    count = len(re.findall(r"\"[^\"]+\"|“[^”]+”|`[^`]+`|'[^']+'", text))
    for token, start in spans:
        if token.lower() in _FUNCTION_WORDS:
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
    if words[0] in _OTHER_CONTINUATIONS or text.lstrip().startswith(_CJK_CONTINUATIONS):
        return True
    size = sum(0.5 if re.fullmatch(f"[{_CJK}]", w) else 1.0 for w in words)
    if size > SHORT_CONTENT_WORDS:
        return False
    named = _named(text, spans, english=False)
    return not (named >= 2 or (named >= 1 and size >= 3))


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
    asked = {m.group().lower() for q in questions for m in _TOKEN.finditer(q)}
    piece = mine[match.a:match.a + match.size]
    new = [w for w in (m.group() for m in _TOKEN.finditer(piece))
           if w not in asked and w not in _FUNCTION_WORDS]
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
