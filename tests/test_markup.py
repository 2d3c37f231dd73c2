"""Markdown with HTML, MDX and template markup in it becomes plain text (real and small files)."""

from __future__ import annotations

import re

import pytest

from rag.loading import iter_files, load, markdown_sections
from rag.markup import heading_line, html_text
from tests.helpers import MILVUS_DOCS

# Tags the Milvus docs use outside code; none may survive in the text.
_TAGS = re.compile(
    r"</?(?:table|thead|tbody|tr|td|th|div|span|br|p|a|img|li|ul|ol|strong|em|h[1-6]|details"
    r"|summary|font|sup|sub)\b[^<>]*>|<!--"
)


def _text(markdown: str) -> str:
    return "\n\n".join(s.text for s in markdown_sections(markdown))


def test_html_table_is_one_row_per_line() -> None:
    text = _text(
        "# T\n\n<table class=\"language-python\">\n  <thead>\n    <tr>\n      <th>Parameter</th>"
        "\n      <th>Description</th>\n    </tr>\n  </thead>\n  <tbody>\n    <tr>\n"
        "      <td><code>auto_id</code></td>\n      <td>Determines it.<br/>Set <strong>True"
        "</strong>, see <a href=\"https://x/DataType.md\">DataType</a>.</td>\n    </tr>\n"
        "    <tr><td></td><td></td></tr>\n  </tbody>\n</table>\n\nAfter the table.\n"
    )
    assert text == ("Parameter | Description\nauto_id | Determines it. Set True, see DataType.\n\n"
                    "After the table.")


def test_pipe_table_keeps_rows_and_drops_the_rule() -> None:
    text = _text("# T\n\n| key | value |\n|:---|---:|\n| `nlist` | 128 |\n| nprobe | [8](x.md) |\n")
    assert text == "key | value\nnlist | 128\nnprobe | 8"


def test_inline_and_block_markup_becomes_text() -> None:
    text = _text(
        "# T\n\n<div class=\"alert note\">\n\nRestart the **runtime** <span style='c'>now</span>."
        "\n\n</div>\n\n<p>Para <a href=\"u\">link text</a> and ![alt words](p.png) and "
        "![](q.png) end.</p>\n\n<img src=\"i.png\" alt=\"A diagram\"/>\n\n<img src=\"j.png\"/>\n\n"
        "See [the guide](https://milvus.io/docs/x.md) or <https://milvus.io>.\n"
        "<!-- an editor's note -->\n"
    )
    assert "Restart the runtime now." in text
    assert "Para link text and alt words and end." in text
    assert "A diagram" in text
    assert "See the guide or https://milvus.io." in text
    assert not re.search(r"[<>]|\]\(|!\[|editor|\.png|milvus\.io/docs", text), text


def test_mdx_components_and_templates_disappear() -> None:
    text = _text(
        "# T\n\n<Tabs>\n<TabItem value=\"py\" label=\"Python\">\n\nIn a tab.\n\n</TabItem>\n"
        "</Tabs>\n\n<Admonition type=\"note\">\n\nA note.\n\n</Admonition>\n\n"
        "Text <Badge text=\"beta\"/> here, v{{var.milvus_release_version}} {% if x %}shown"
        "{% endif %} {# hidden #}.\n\n<Chart data={points} />\n\n{{fragments/multiple_code.md}}\n"
    )
    assert text == "In a tab.\n\nA note.\n\nText here, v shown .", text


def test_code_blocks_keep_their_content_without_fences() -> None:
    text = _text(
        "# T\n\n```python\nprint(\"<td>{{ x }}</td>\")  # <!-- kept -->\n\n\nx = 1\n```\n\n"
        "Run `pip install \"pymilvus>=2.4\"` first.\n\n    indented <b>code</b>\n"
    )
    assert text == ("print(\"<td>{{ x }}</td>\")  # <!-- kept -->\n\n\nx = 1\n\n"
                    "Run pip install \"pymilvus>=2.4\" first.\n\nindented <b>code</b>")
    assert "```" not in text


def test_lists_keep_their_items_on_lines() -> None:
    text = _text("# T\n\n- one\n- two\n  1. sub a\n  2. sub b\n\n3. three\n4. four\n")
    assert text == "- one\n- two\n  1. sub a\n  2. sub b\n\n3. three\n4. four"


def test_tab_switcher_links_are_dropped_but_prose_links_stay() -> None:
    plain = html_text('<div class="multipleCode">\n <a href="#python">Python</a>\n'
                      ' <a href="#java">Java</a>\n</div><p>See <a href="#below">below</a>.</p>')
    assert plain.text == "See below."


def test_navigation_section_joins_the_section_before() -> None:
    sections = markdown_sections(
        "# Guide\n\nIntro text of the guide.\n\n## Build an index\n\nSteps to build it.\n\n"
        "## What's next\n\n- [Search](search.md)\n- [Query](query.md)\n"
    )
    assert [s.heading for s in sections] == [("Guide",), ("Guide", "Build an index")]
    assert sections[1].text == "Steps to build it.\n\nWhat's next\n- Search\n- Query"


def test_heading_line() -> None:
    assert heading_line(("A", "B"), ("A", "C")) == "C"
    assert heading_line(("A",), ("A", "B", "C")) == "B > C"
    assert heading_line(("A", "B"), ("A",)) == "A"
    assert heading_line(("A",), ("A",)) == ""
    assert heading_line((), ("X",)) == "X"


def test_real_html_table_and_alert() -> None:
    sections = list(load(MILVUS_DOCS / "userGuide" / "manage-collections.md").sections)
    text = "\n".join(s.text for s in sections)
    assert "Parameter | Description\nauto_id | Determines if the primary field automatically" \
        " increments. Setting this to True makes" in text
    assert "\nPython Java Node.js cURL\n" not in text  # the language tab switcher
    tutorial = MILVUS_DOCS / "tutorials" / "build-rag-with-milvus.md"
    rag = "\n".join(s.text for s in load(tutorial).sections)
    assert "If you are using Google Colab, to enable dependencies just installed, you may need" \
        " to restart the runtime." in rag


def test_real_details_and_fragments() -> None:
    sections = list(load(MILVUS_DOCS / "reference" / "metric.md").sections)
    text = "\n".join(s.text for s in sections)
    assert "Why is the top1 result of a vector search not the search vector itself" in text
    assert "{{" not in text and "fragments/" not in text
    assert sections[-1].text == "- Learn more about the supported index types in Milvus."


@pytest.mark.parametrize("folder", ["userGuide", "tutorials", "reference", "integrations"])
def test_no_tags_outside_code_in_real_docs(folder: str) -> None:
    """Tags may stay only inside code (code is content): check the text without code lines."""
    for path, source in iter_files([MILVUS_DOCS / folder]):
        raw = path.read_text(encoding="utf-8")
        for section in load(path, source).sections:
            for line in section.text.split("\n"):
                if _TAGS.search(line):
                    assert _in_code(raw, line), (source, line)


def _in_code(raw: str, line: str) -> bool:
    """Whether a line of text is a line of a code block or code span of the raw Markdown."""
    blocks = re.findall(r"```.*?```|`[^`\n]+`|^(?: {4}|\t).*$", raw, re.DOTALL | re.MULTILINE)
    return any(line.strip() in block for block in blocks)
