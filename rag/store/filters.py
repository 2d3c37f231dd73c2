"""Filter expressions: every value goes in through `literal`, which escapes it for the grammar.

Filter templates (`filter_params`) would keep values out of the expression, but Milvus Lite 3.2,
embedded or as `milvus-lite server`, does not implement them (it rejects `{name}`) for query,
search or delete alike. So values are escaped here instead, and only here.
"""

from __future__ import annotations

from collections.abc import Sequence

# Inside a double-quoted string Milvus (its Plan.g4 grammar) and Milvus Lite 3 both need a
# backslash, the quote, CR and LF escaped, and Lite knows only these escapes (no \uXXXX).
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def literal(value: str) -> str:
    """`value` as a filter string literal that reads back as exactly `value`.

    Every character but the escaped ones, any Unicode one or a control character, stands for
    itself (json.dumps wrote \\uXXXX escapes, which Lite rejects, and that made a name like
    `résumé.md` unusable).
    """
    if not isinstance(value, str):
        raise TypeError(f"filter values are strings, not {type(value).__name__}")
    return '"' + value.translate(_ESCAPES) + '"'


def in_list(field: str, values: Sequence[str]) -> str:
    """`field` is one of `values`."""
    return f"{field} in [{', '.join(literal(v) for v in values)}]"


def equals(field: str, value: str) -> str:
    """`field` is `value`."""
    return f"{field} == {literal(value)}"
