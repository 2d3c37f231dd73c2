"""An answer as a JSON record and back, so a saved conversation shows as it was answered.

The record keeps what `Answer.to_dict` leaves out for a faithful redraw: the order of the
steps (searches, thinking, drafts) and whether the answer completed (its done event).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from rag.answer import Answer, Draft, Search, Step, Thought
from rag.events import Claim, DoneEvent, Source
from rag.schema import Hit

_HIT_FIELDS = {f.name for f in fields(Hit)} - {"sentences"}


def answer_record(answer: Answer) -> dict[str, Any]:
    """JSON-ready record of an answer (stored with its conversation)."""
    return {"question": answer.question, "query": answer.query, "text": answer.text,
            "sources": [s.to_dict() for s in answer.listed],
            "steps": [_step_record(step) for step in answer.steps],
            "notices": list(answer.notices), "error": answer.error,
            "complete": answer.final is not None, "citations": answer.citations,
            "unknown_citations": answer.unknown_citations,
            "claims": [c.to_dict() for c in answer.claims],
            "timings": dict(answer.timings), "usage": answer.usage}


def answer_from_record(record: dict[str, Any]) -> Answer:
    """The answer a record was made from, ended (nothing pending)."""
    answer = Answer(record.get("question", ""), record.get("query", ""),
                    text=record.get("text", ""), notices=list(record.get("notices", [])),
                    error=record.get("error"), timings=dict(record.get("timings") or {}),
                    usage=record.get("usage"))
    for data in record.get("sources", []):
        source = source_from_dict(data)
        answer.sources[source.n] = source
    answer.steps = [_step_from_record(step) for step in record.get("steps", [])]
    if record.get("complete"):
        answer.final = DoneEvent(list(record.get("citations", [])),
                                 list(record.get("unknown_citations", [])), answer.timings,
                                 answer.usage, [claim_from_dict(c)
                                                for c in record.get("claims", [])])
    answer.done = True
    return answer


def claim_from_dict(data: dict[str, Any]) -> Claim:
    """A checked claim from its JSON form (`Claim.to_dict`)."""
    return Claim(str(data.get("text", "")), int(data.get("start", 0)), int(data.get("end", 0)),
                 [int(n) for n in data.get("cites", [])], data.get("support"),
                 bool(data.get("supported")), str(data.get("reason", "")))


def source_from_dict(data: dict[str, Any]) -> Source:
    """A source from its flat JSON form (`Source.to_dict`)."""
    return Source(int(data["n"]), Hit(**{k: v for k, v in data.items() if k in _HIT_FIELDS}))


def _step_record(step: Step) -> dict[str, Any]:
    if isinstance(step, Thought):
        return {"kind": "thought", "text": step.text, "seconds": step.seconds or 0.0}
    if isinstance(step, Draft):
        return {"kind": "draft", "text": step.text}
    return {"kind": "search", **step.to_dict()}


def _step_from_record(data: dict[str, Any]) -> Step:
    kind = data.get("kind")
    if kind == "thought":
        return Thought(data.get("text", ""), 0.0, float(data.get("seconds") or 0.0))
    if kind == "draft":
        return Draft(data.get("text", ""))
    return Search(data.get("query", ""), list(data.get("sources", [])), tool=data.get("name", ""),
                  arguments=dict(data.get("arguments") or {}), original=data.get("original", ""))
