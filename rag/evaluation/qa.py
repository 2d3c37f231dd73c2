"""Evidence-based retrieval evaluation: is the exact passage, from the right file and page, first?

A question file is JSON Lines, one question per line:

    {"id": "q1", "question": "...", "evidence": "the passage that answers it",
     "source": "handbook.pdf", "page": 12, "kind": "paraphrase"}

Only `question` and `evidence` are required. A retrieved chunk is a hit when its text contains the
evidence, compared on letters and digits only (case-folded), and, where given, it comes from
`source` and its page range covers `page`. Matching the heading or another file does not count.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import ConfigError
from rag.evaluation.metrics import letters_and_digits
from rag.schema import Hit

Search = Callable[[str, int], list[Hit]]  # (query, k) -> ranked hits


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation question with the passage that answers it."""

    id: str
    question: str
    evidence: str
    source: str | None = None
    page: int | None = None
    kind: str = "unspecified"

    def matches(self, hit: Hit) -> bool:
        """True when the hit holds the evidence, from the right source and page."""
        if self.source is not None and hit.source != self.source:
            return False
        if self.page is not None:
            if hit.page is None:
                return False
            last = hit.page_end if hit.page_end is not None else hit.page
            if not hit.page <= self.page <= last:
                return False
        return letters_and_digits(self.evidence) in letters_and_digits(hit.text)


def load_questions(path: Path) -> list[Question]:
    """Read a JSON Lines question file; raises ConfigError naming the bad line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"Cannot read the question file {path}: {exc.strerror or exc}") from exc
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        question = _parse_line(line, number, path)
        if question.id in seen:
            raise ConfigError(f"{path}, line {number}: the id {question.id!r} is used twice")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise ConfigError(f"The question file {path} holds no questions")
    return questions


def _parse_line(line: str, number: int, path: Path) -> Question:
    where = f"{path}, line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    for name in ("question", "evidence"):
        if not isinstance(row.get(name), str) or not letters_and_digits(row[name]):
            raise ConfigError(f"{where}: '{name}' must be a non-empty text")
    page = row.get("page")
    if page is not None and (not isinstance(page, int) or isinstance(page, bool) or page < 1):
        raise ConfigError(f"{where}: 'page' must be a page number from 1")
    source = row.get("source")
    if source is not None and not isinstance(source, str):
        raise ConfigError(f"{where}: 'source' must be a document name")
    return Question(id=str(row.get("id", number)), question=row["question"],
                    evidence=row["evidence"], source=source, page=page,
                    kind=str(row.get("kind") or "unspecified"))


@dataclass(slots=True)
class ModeReport:
    """How one retrieval mode did on the question set."""

    ranks: dict[str, int | None] = field(default_factory=dict)  # question id -> rank or None
    seconds: float = 0.0

    def summary(self, questions: Sequence[Question]) -> dict[str, float | int]:
        """hit@1, hit@5 and MRR@10 over these questions."""
        ranks = [self.ranks[q.id] for q in questions]
        n = max(len(ranks), 1)
        return {
            "hit@1": round(sum(r == 1 for r in ranks) / n, 4),
            "hit@5": round(sum(r is not None and r <= 5 for r in ranks) / n, 4),
            "mrr@10": round(sum(1 / r for r in ranks if r is not None and r <= 10) / n, 4),
            "questions": len(ranks),
        }


def first_match(question: Question, hits: Sequence[Hit]) -> int | None:
    """The 1-based rank of the first hit holding the evidence, or None."""
    for rank, hit in enumerate(hits, start=1):
        if question.matches(hit):
            return rank
    return None


def run_mode(search: Search, questions: Sequence[Question], depth: int = 50) -> ModeReport:
    """Search every question once, to `depth` hits, and record where its evidence was found."""
    report = ModeReport()
    started = time.perf_counter()
    for question in questions:
        report.ranks[question.id] = first_match(question, search(question.question, depth))
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def qa_report(questions: Sequence[Question], runs: dict[str, ModeReport],
              depth: int) -> dict[str, Any]:
    """JSON-ready results: per mode overall, per kind, and the misses (rank > 1)."""
    kinds = sorted({q.kind for q in questions})
    modes: dict[str, Any] = {}
    for mode, run in runs.items():
        misses = [asdict(q) | {"rank": run.ranks[q.id]} for q in questions
                  if run.ranks[q.id] != 1]
        modes[mode] = {
            **run.summary(questions),
            "seconds": run.seconds,
            "kinds": {kind: run.summary([q for q in questions if q.kind == kind])
                      for kind in kinds},
            "misses": misses,
        }
    return {"questions": len(questions), "depth": depth, "modes": modes}
