"""Retrieval evaluation through the product's own ingest and search code.

`beir`: nDCG and recall on a BEIR-format benchmark. `qa`: evidence-based hit@1 / hit@5 / MRR on
questions whose answering passage is known.
"""

from __future__ import annotations

from rag.evaluation.beir import BeirDataset, evaluate, ingest_corpus
from rag.evaluation.metrics import letters_and_digits, ndcg_at, recall_at
from rag.evaluation.modes import eval_modes, searcher
from rag.evaluation.qa import Question, load_questions, qa_report, run_mode

__all__ = [
    "BeirDataset", "Question", "eval_modes", "evaluate", "ingest_corpus", "letters_and_digits",
    "load_questions", "ndcg_at", "qa_report", "recall_at", "run_mode", "searcher",
]
