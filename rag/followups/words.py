"""The words follow-up detection reads: the tokeniser, contractions, and word lists.

English function words, the words and phrases that continue a conversation or point back at
it, the contexts where "it", "that" and "there" point at nothing, and a few first words of
other languages that continue a conversation.
"""

from __future__ import annotations

import re

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
TOKEN = re.compile(rf"[{CJK}]|[^\W{CJK}](?:[^\W{CJK}]|[./-](?=[^\W{CJK}]))*")
CONTRACTIONS = (
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


WH = _words_set("what how why when where which who whom whose")
AUX = _words_set("is are was were am be do does did can could should would will shall may "
                  "might must has have had")
IMPERATIVE = _words_set("explain describe list show tell give define compare summarize "
                         "summarise name find outline write provide help walk suggest "
                         "recommend clarify")
PREPOSITIONS = _words_set(
    "about above across after against along among around as at before behind below beside "
    "besides between beyond by despite down during except for from in inside into like near "
    "of off on onto out outside over per regarding since than through throughout to toward "
    "towards under unlike until up upon using via with within without")
FUNCTION_WORDS = WH | AUX | IMPERATIVE | PREPOSITIONS | _words_set(
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
CONTINUATIONS = _words_set(
    "also and so then but or nor plus yet still besides additionally furthermore moreover "
    "however otherwise instead now ok okay alright well hmm thanks thank great cool yes yeah "
    "no nope sure right vs versus same except unlike")
CONTINUATION_STARTS = ("what about", "how about", "what of", "what if", "as for",
                        "compared to", "compared with", "in that case", "in this case")
# Words that always point back: pronouns and the like.
ALWAYS_BACK = _words_set("they them their theirs he she him her his hers its aforementioned "
                          "former latter here elaborate")
BACK_PHRASES = re.compile(
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
EXPLETIVE_AFTER = _words_set("possible impossible necessary unnecessary safe unsafe ok okay "
                              "fine recommended advisable advised better best worse worth "
                              "worthwhile true false required mandatory needed important "
                              "normal common usual typical likely unlikely hard harder easy "
                              "easier difficult feasible allowed permitted wise good bad "
                              "preferable faster slower cheaper efficient sensible enough "
                              "useful expected supposed known documented correct wrong "
                              "appropriate reasonable practical helpful convenient idea")
EXPLETIVE_LINK = _words_set("to that whether if for when")
BE = _words_set("is was be been would will could should might may")
EXISTENTIAL = BE | _words_set("are were can must seems seem exist exists any a an no")
# Words after which "that" starts a clause ("know that ...", "something that ...").
CLAUSE_HEADS = _words_set("know knows ensure ensures sure check verify confirm say says said "
                           "mean means think believe assume guarantee guarantees given so "
                           "such now except show shows prove true possible likely fact way "
                           "ways note noted mentioned claim claims documented states indicate "
                           "indicates suggest suggests seem seems expect expected require "
                           "requires required recommend recommended case idea clear "
                           "important necessary something anything everything nothing all "
                           "one ones those thing things any some")
ONE_HEADS = _words_set("which that this the other another each first second third last "
                        "latter former new old better best faster right same bigger smaller "
                        "next previous different either neither")
# Languages other than English: only a few first words that continue a conversation.
ENGLISH_CUES = _words_set("the what how why when where which who does did can could should "
                           "would it its this that these those they them their and with "
                           "about there not are has have were you your we if then but same "
                           "more please tell explain for or be")
OTHER_CONTINUATIONS = _words_set("und aber et mais alors y pero entonces e ma allora mas "
                                  "então en maar и а но")
CJK_CONTINUATIONS = ("那", "还有", "另外", "而且", "じゃあ", "では", "それで", "それから")


def expand_contractions(question: str) -> str:
    text = question.replace("’", "'").replace("‘", "'")
    for pattern, replacement in CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text
