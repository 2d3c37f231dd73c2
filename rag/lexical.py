"""Text analysis for BM25: lower-case, drop English stop words, Snowball-stem.

Milvus Lite only offers the `standard` analyzer, so documents and queries are stemmed here and
Milvus's BM25 function runs over the result.
"""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# Lucene's English stop words (what Anserini's BM25 baseline removes).
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "  # noqa: SIM905
    "there these they this to was will with".split()
)

_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer.stemWord(word)


def analyze(text: str) -> str:
    """The text as BM25 should index it: stemmed terms joined by spaces."""
    terms = (w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS)
    return " ".join(_stem(t) for t in terms)
