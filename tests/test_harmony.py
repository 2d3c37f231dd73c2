"""The harmony / <think> parser on its own: chunks in, reasoning and answer deltas out."""

from __future__ import annotations

import itertools

import pytest

from rag.llm.events import ContentDelta, ReasoningDelta
from rag.llm.harmony import HarmonyParser, split_reasoning

HARMONY_TAGS = ("<|channel|>", "<|message|>", "<|start|>", "<|end|>", "<|return|>",
                "<|call|>", "<|constrain|>", "<think>", "</think>")

HARMONY = ("<|channel|>analysis<|message|>Need sky.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>Blue [1].<|return|>")
THINK = "<think>Sky?</think>\n\nBlue."
COMMENTARY = ("<|channel|>analysis<|message|>Plan.<|end|><|start|>assistant<|channel|>commentary"
              "<|message|>Let me check.<|end|><|start|>assistant<|channel|>final <|constrain|>"
              "text<|message|>Answer.<|return|>")
CASES = [(HARMONY, ("Need sky.", "Blue [1].")),
         (THINK, ("Sky?", "Blue.")),
         (COMMENTARY, ("Plan.Let me check.", "Answer."))]


def parse(chunks: list[str]) -> tuple[str, str, list[ReasoningDelta | ContentDelta]]:
    """(reasoning, answer, every delta) of the chunks fed one by one, then closed."""
    parser = HarmonyParser()
    items = [item for chunk in chunks for item in parser.feed(chunk)] + parser.close()
    reasoning = "".join(i.text for i in items if isinstance(i, ReasoningDelta))
    answer = "".join(i.text for i in items if isinstance(i, ContentDelta))
    return reasoning, answer, items


def tag_offsets(text: str) -> list[int]:
    """Every position strictly inside a tag of text."""
    offsets = set()
    for tag in HARMONY_TAGS:
        start = text.find(tag)
        while start != -1:
            offsets.update(range(start + 1, start + len(tag)))
            start = text.find(tag, start + 1)
    return sorted(offsets)


def assert_no_markup(items: list[ReasoningDelta | ContentDelta]) -> None:
    for item in items:
        assert item.text, "no empty deltas"
        for fragment in ("<|", "|>", "<think", "think>"):
            assert fragment not in item.text, (fragment, item)


# --- chunk boundaries ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), CASES, ids=["harmony", "think", "commentary"])
def test_split_inside_every_tag_at_every_offset(text: str, expected: tuple[str, str]) -> None:
    offsets = tag_offsets(text)
    assert len(offsets) >= 13  # the cases really have tags to cut
    for cut in offsets:
        reasoning, answer, items = parse([text[:cut], text[cut:]])
        assert (reasoning, answer) == expected, cut
        assert_no_markup(items)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=["harmony", "think", "commentary"])
def test_split_at_every_pair_of_offsets(text: str, expected: tuple[str, str]) -> None:
    for a, b in itertools.combinations(range(1, len(text)), 2):
        reasoning, answer, _ = parse([text[:a], text[a:b], text[b:]])
        assert (reasoning, answer) == expected, (a, b)


@pytest.mark.parametrize(("text", "expected"), CASES, ids=["harmony", "think", "commentary"])
def test_one_character_per_chunk(text: str, expected: tuple[str, str]) -> None:
    reasoning, answer, items = parse(list(text))
    assert (reasoning, answer) == expected
    assert_no_markup(items)
    assert split_reasoning(text) == expected


def test_parser_holds_back_only_partial_tags() -> None:
    parser = HarmonyParser()
    assert parser.feed("Plain answer <") == [ContentDelta("Plain answer ")]
    assert parser.feed("b>bold</b> a<|") == [ContentDelta("<b>bold</b> a")]
    assert parser.close() == [ContentDelta("<|")]


def test_certain_text_is_emitted_before_the_message_ends() -> None:
    parser = HarmonyParser()
    assert parser.feed("<|channel|>analysis<|message|>Need") == [ReasoningDelta("Need")]
    assert parser.feed(" sky.<|end|><|start|>assistant<|chan") == [ReasoningDelta(" sky.")]
    assert parser.feed("nel|>final<|message|>Blue") == [ContentDelta("Blue")]
    assert parser.feed(" [1].<|ret") == [ContentDelta(" [1].")]
    assert parser.feed("urn|>") == []
    assert parser.close() == []


def test_consecutive_pieces_of_one_kind_are_merged() -> None:
    parser = HarmonyParser()
    assert parser.feed("<think>a</think>b<|end|>c") == [ReasoningDelta("a"), ContentDelta("bc")]


# --- <think> ---------------------------------------------------------------------------------

def test_unterminated_think_is_all_reasoning() -> None:
    assert split_reasoning("<think>still thinking") == ("still thinking", "")
    # a close tag cut off by the end of the stream is flushed as reasoning text
    assert split_reasoning("<think>abc</thi") == ("abc</thi", "")


def test_think_after_answer_text_is_literal() -> None:
    assert split_reasoning("Use <think> tags.") == ("", "Use <think> tags.")
    assert split_reasoning("</think>Hi") == ("", "</think>Hi")


def test_think_blocks_do_not_nest() -> None:
    # the first </think> closes the block; an inner <think> is reasoning text
    assert split_reasoning("<think>a<think>b</think>c") == ("a<think>b", "c")
    assert split_reasoning("<think>outer <think>inner</think> rest</think>answer") == (
        "outer <think>inner", "rest</think>answer")


def test_think_inside_a_harmony_analysis_is_text() -> None:
    assert split_reasoning("<|channel|>analysis<|message|>A <think>x</think><|end|>") == (
        "A <think>x</think>", "")


# --- harmony channels ------------------------------------------------------------------------

def test_commentary_and_constrain_never_reach_the_answer() -> None:
    assert split_reasoning(COMMENTARY) == ("Plan.Let me check.", "Answer.")


def test_unterminated_analysis_is_reasoning_without_answer() -> None:
    assert split_reasoning("<|channel|>analysis<|message|>Still thinking") == (
        "Still thinking", "")
    # a tag cut off by the end of the stream is flushed as text of the open message
    assert split_reasoning("<|channel|>analysis<|message|>Plan<|mess") == ("Plan<|mess", "")


def test_stream_ending_inside_a_header_emits_nothing() -> None:
    assert split_reasoning("<|start|>assistant") == ("", "")
    assert split_reasoning("<|channel|>analysis<|mess") == ("", "")


def test_final_answer_leading_whitespace_is_dropped() -> None:
    assert split_reasoning("<|channel|>final<|message|>\n\nBlue") == ("", "Blue")
    assert split_reasoning(THINK) == ("Sky?", "Blue.")


def test_message_without_header_and_stray_text_are_answer() -> None:
    assert split_reasoning("<|message|>Hi") == ("", "Hi")
    assert split_reasoning("<|channel|>analysis<|message|>Plan.<|end|>Stray answer") == (
        "Plan.", "Stray answer")
    assert split_reasoning("Hi<|end|>") == ("", "Hi")


def test_two_final_messages_are_one_answer() -> None:
    text = ("<|channel|>final<|message|>A<|end|>"
            "<|start|>assistant<|channel|>final<|message|>B<|return|>")
    assert split_reasoning(text) == ("", "AB")


@pytest.mark.parametrize("call_end", ["<|call|>", ""])
def test_raw_tool_call_is_kept_apart(call_end: str) -> None:
    parser = HarmonyParser()
    text = ("<|channel|>analysis<|message|>Search.<|end|><|start|>assistant<|channel|>"
            "commentary to=functions.search_knowledge_base <|constrain|>json<|message|>"
            '{"query":"sky"}' + call_end)
    assert parser.feed(text) + parser.close() == [ReasoningDelta("Search.")]
    assert parser.tool_call_text == [("functions.search_knowledge_base", '{"query":"sky"}')]


# --- text without markup ---------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "The sky is blue.",
    "a < b and c | d, x<|y",
    "<b>bold</b> and a<|foo|>b",
    "Ends with a lone <",
    "",
])
def test_text_without_tags_is_all_answer(text: str) -> None:
    assert split_reasoning(text) == ("", text)
    reasoning, answer, _ = parse(list(text))
    assert (reasoning, answer) == ("", text)
