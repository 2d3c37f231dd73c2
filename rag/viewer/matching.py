"""Where a cited passage lies in a page's text: both compared on their letters and digits.

The passage is a chunk's stored text, cleaner than the page's (running lines dropped, broken
words joined, spaces collapsed). Both are casefolded (NFKC) to letters and digits; windows of
the passage found in the page's text (str.find) make runs, stretched as far as the texts
agree; the heaviest chains of runs in the order of both texts are kept, less what is chance.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

_WINDOW = 12  # letters and digits of the passage looked up at once
_STRIDE = 4  # between the starts of two windows
_MAX_HITS = 6  # a window found more often on the page tells nothing of where the passage is
_JUMP = 400  # page characters a stretch may skip that the passage lacks (a footer, a figure)
_MIN_STRETCH = 24  # a shorter stretch of the passage on the page can be chance
_FILL = 8  # page characters between two found stretches that are boxed with them
_CHAINS = 6  # chains of found stretches taken, each from what the ones before left
_NEAR = 80  # passage characters between two found stretches of one part of it
_SHARE = 0.25  # a part smaller than this share of the largest is a phrase found elsewhere
_MAX_RUNS = 600  # the longest runs that are chained: the work stays bounded


Run = tuple[int, int, int]  # passage start, passage end, page text start: the same letters


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", ch).casefold() if c.isalnum())


def fold(chars: list[str] | str) -> tuple[str, list[int]]:
    """Letters and digits of a text, casefolded, with each one's index in `chars`."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(chars):
        if ch.isascii():
            if ch.isalnum():
                out.append(ch.lower())
                where.append(i)
        elif folded := _fold_char(ch):
            out.append(folded)
            where.extend([i] * len(folded))
    return "".join(out), where


def _runs(text: str, passage: str) -> set[Run]:
    """(passage start, passage end, page start) of the stretches where windows of the
    passage were found, each stretched as far as both texts agree."""
    k = min(_WINDOW, len(passage))
    starts = [*range(0, len(passage) - k + 1, _STRIDE), len(passage) - k]
    open_runs: dict[int, list[int]] = {}  # diagonal (page - passage position) -> run
    runs: list[list[int]] = []
    for i in starts:
        window, hits, pos = passage[i:i + k], [], text.find(passage[i:i + k])
        while pos >= 0 and len(hits) <= _MAX_HITS:
            hits.append(pos)
            pos = text.find(window, pos + 1)
        for pos in hits if len(hits) <= _MAX_HITS else ():
            run = open_runs.get(pos - i)
            if run is not None and run[1] >= i:
                run[1] = max(run[1], i + k)
            else:
                open_runs[pos - i] = run = [i, i + k, pos]
                runs.append(run)
    stretched: set[Run] = set()
    for p0, p1, t0 in runs:
        while p0 > 0 and t0 > 0 and passage[p0 - 1] == text[t0 - 1]:
            p0, t0 = p0 - 1, t0 - 1
        while p1 < len(passage) and t0 + p1 - p0 < len(text) and \
                passage[p1] == text[t0 + p1 - p0]:
            p1 += 1
        stretched.add((p0, p1, t0))
    return stretched


def _chain(runs: list[Run]) -> list[Run]:
    """The heaviest chain of runs in the order of both texts, each run trimmed to begin
    where the one before it ends (dynamic programming over the runs sorted by passage)."""
    best: list[tuple[int, int]] = []  # (weight of the best chain ending here, previous)
    for j, (p0, p1, t0) in enumerate(runs):
        weight, before = p1 - p0, -1
        for i in range(j):
            q0, q1, s0 = runs[i]
            if q1 < p1 and s0 < t0 and s0 + q1 - q0 <= t0 + max(0, q1 - p0) and \
                    best[i][0] + p1 - max(p0, q1) > weight:
                weight, before = best[i][0] + p1 - max(p0, q1), i
        best.append((weight, before))
    at = max(range(len(best)), key=lambda j: best[j][0], default=-1)
    chain: list[Run] = []
    while at >= 0:
        p0, p1, t0 = runs[at]
        at = best[at][1]
        cut = max(0, runs[at][1] - p0) if at >= 0 else 0
        chain.append((p0 + cut, p1, t0 + cut))
    return chain[::-1]


def _pieces(chain: list[Run], least: int) -> list[list[Run]]:
    """The chain cut where the page skips more than _JUMP characters the passage lacks (a
    footer, a figure), without the pieces that hold no run of `least` characters: chance."""
    pieces: list[list[Run]] = []
    for run in chain:
        if pieces:
            q0, q1, s0 = pieces[-1][-1]
            if run[2] - (s0 + q1 - q0) <= 2 * (run[0] - q1) + _JUMP:
                pieces[-1].append(run)
                continue
        pieces.append([run])
    return [p for p in pieces if max(r[1] - r[0] for r in p) >= least]


def _uncovered(runs: list[Run], kept: list[Run]) -> list[Run]:
    """The parts of the runs outside the passage's stretches in `kept`."""
    out = []
    for p0, p1, t0 in runs:
        edges = [p0, *(e for k in sorted(kept) if k[0] < p1 and k[1] > p0 for e in k[:2]), p1]
        out += [(a, b, t0 + a - p0) for a, b in zip(edges[::2], edges[1::2], strict=True)
                if b > a]
    return out


def _main_part(kept: list[Run]) -> list[Run]:
    """The runs without the groups (runs next to each other in the passage) that are small
    beside the largest: the passage's own phrases found elsewhere on the page. The part of a
    passage on a page is one stretch of it, its start, its end or all of it."""
    groups: list[list[Run]] = []
    for run in sorted(kept):
        if groups and run[0] - groups[-1][-1][1] <= _NEAR:
            groups[-1].append(run)
        else:
            groups.append([run])
    sizes = [sum(r[1] - r[0] for r in group) for group in groups]
    least = _SHARE * max(sizes, default=0)
    return [r for group, size in zip(groups, sizes, strict=True) if size >= least for r in group]


def match(text: str, passage: str) -> tuple[list[tuple[int, int]], int]:
    """Where a passage lies in a page's text, both folded (letters and digits): spans
    [start, end) of the text, and how many of the passage's characters were found. Up to
    _CHAINS chains of runs are taken, each from the runs outside the passage's stretches
    found before (two texts may order a table's rows or a figure's labels differently)."""
    runs = sorted(_runs(text, passage), key=lambda r: r[0] - r[1])[:_MAX_RUNS]
    least = min(_MIN_STRETCH, max(1, len(passage) // 2))
    kept: list[Run] = []
    for _ in range(_CHAINS):
        runs = sorted(_uncovered(runs, kept))
        pieces = _pieces(_chain(runs), least)
        if not pieces:
            break
        kept.extend(run for piece in pieces for run in piece)
    kept = _main_part(kept)
    spans: list[tuple[int, int]] = []
    for p0, p1, t0 in sorted(kept, key=lambda r: r[2]):
        if spans and 0 <= t0 - spans[-1][1] <= _FILL:
            spans[-1] = (spans[-1][0], max(spans[-1][1], t0 + p1 - p0))
        else:
            spans.append((t0, t0 + p1 - p0))
    return spans, sum(p1 - p0 for p0, p1, _ in kept)
