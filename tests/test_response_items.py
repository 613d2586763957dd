"""Responses API items and Ember's turns and answers (`ember.serving.response_items`): input items to turns
(calls on the assistant turn, outputs answering earlier calls, transcripts stored for audio), answers to
output items, and the stream events saying so, each read by the installed `openai` package's own types."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from ember.errors import InvalidRequest
from ember.intake.chat import ImageRef, Spoken, Turn
from ember.serving.response_items import Output, output_items, turns_of, url_citations, with_transcripts
from ember.types import Answer, Citation, Delta, ToolCall, ToolCallPiece, Usage

EVENTS = TypeAdapter[Any](ResponseStreamEvent)
PNG = "data:image/png;base64,iVBORw0KGgo="


# -- items → turns ------------------------------------------------------------------------------------------


def test_input_items_become_turns_with_calls_on_the_assistant_turn() -> None:
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": PNG, "detail": "auto"},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
        },
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "not replayed"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "I will check"}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
        {"type": "function_call", "call_id": "c3", "name": "time", "arguments": "{}"},
    ]
    turns, sources = turns_of(items)
    assert turns == [
        Turn("system", ("be brief",)),
        Turn("user", ("look", ImageRef(PNG), Spoken("UklGRg==", "wav"))),
        Turn(
            "assistant",
            ("I will check",),
            (ToolCall("c1", "weather", '{"city": "Paris"}'), ToolCall("c2", "time", "{}")),
        ),
        Turn("tool", ("sunny",), tool_call_id="c1"),
        Turn("tool", ("noon",), tool_call_id="c2"),
        Turn("assistant", (), (ToolCall("c3", "time", "{}"),)),  # a call after a tool turn starts a new turn
    ]
    assert sources == [0, 1, 3, 6, 7, 8]


def test_an_output_without_its_call_is_refused_where_the_request_put_it() -> None:
    earlier = [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]
    mine = [
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},  # answers the earlier response's call
        {"type": "function_call_output", "call_id": "nope", "output": "?"},
    ]
    with pytest.raises(InvalidRequest) as refused:
        turns_of([*earlier, *mine], first=len(earlier))
    assert refused.value.param == "input.1.call_id" and "'nope'" in refused.value.message


def test_heard_audio_is_stored_as_its_transcript() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}, audio]}]
    heard = [{"message": 1, "part": 1, "text": "what time is it", "language": "en", "duration": 1.0}]
    stored = with_transcripts(items, heard, [None, 0])  # turn 0 is the instructions
    assert stored[0]["content"] == [
        {"type": "input_text", "text": "hi"},
        {"type": "input_text", "text": "what time is it"},
    ]
    assert items[0]["content"][1] is audio  # the request's own items are left as they were


# -- answers → output items and events ---------------------------------------------------------------------


def answer_of(*deltas: Delta) -> Answer:
    answer = Answer()
    for delta in deltas:
        answer.add(delta)
    return answer


def test_an_answer_with_calls_becomes_reasoning_message_and_function_call_items() -> None:
    answer = answer_of(
        Delta(reasoning="think"),
        Delta(content="Let me call"),
        Delta(tool_calls=(ToolCallPiece(0, "call_a", "weather", '{"city":'), ToolCallPiece(1, "call_b", "time"))),
        Delta(tool_calls=(ToolCallPiece(0, arguments=' "Oslo"}'),)),
        Delta(finish_reason="tool_calls", usage=Usage(10, 5)),
    )
    items = output_items(answer)
    assert [i["type"] for i in items] == ["reasoning", "message", "function_call", "function_call"]
    assert items[0]["summary"] == [{"type": "summary_text", "text": "think"}]
    assert items[1]["content"] == [{"type": "output_text", "text": "Let me call", "annotations": []}]
    calls = [(i["call_id"], i["name"], i["arguments"], i["status"]) for i in items[2:]]
    assert calls == [("call_a", "weather", '{"city": "Oslo"}', "completed"), ("call_b", "time", "", "completed")]
    assert len({i["id"] for i in items}) == 4 and items[2]["id"].startswith("fc_")
    assert output_items(answer_of(Delta(content="cut"), Delta(finish_reason="length")))[0]["status"] == "incomplete"


def test_streamed_items_are_the_whole_answers_and_the_events_follow_openai() -> None:
    deltas = [
        Delta(reasoning="hm"),
        Delta(reasoning=" ok"),
        Delta(content="Hi"),
        Delta(content=" there"),
        Delta(tool_calls=(ToolCallPiece(0, "call_1", "f", '{"a"'),)),
        Delta(tool_calls=(ToolCallPiece(0, arguments=": 1}"),)),
        Delta(finish_reason="tool_calls", usage=Usage(3, 4)),
    ]
    output, events = Output(), []
    for delta in deltas:
        events += output.add(delta)
    answer = answer_of(*deltas)
    events += output.finish(answer)
    assert [e["type"].removeprefix("response.") for e in events] == [
        "output_item.added",
        "reasoning_summary_part.added",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.done",
        "reasoning_summary_part.done",
        "output_item.done",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
    ]
    for n, event in enumerate(events):  # each as the client's own types read it
        EVENTS.validate_python({**event, "sequence_number": n})
    without_ids = [{k: v for k, v in item.items() if k != "id"} for item in output.items]
    assert without_ids == [{k: v for k, v in item.items() if k != "id"} for item in output_items(answer)]
    assert events[0]["item"]["summary"] == [] and events[-1]["item"]["arguments"] == '{"a": 1}'


def test_citations_mark_their_numbers_in_the_text() -> None:
    cited = (
        Citation(1, "ICD-10-CM:I21.9", "Heart attack", "https://icd.example/I21.9", "ICD-10-CM"),
        Citation(2, "p1", "A tent", "", "catalogue", kind="product"),  # no URL: no url_citation
    )
    text = "Call an ambulance [1]. A tent [2]. Again [1]."
    assert [(a["start_index"], a["end_index"], a["title"]) for a in url_citations(text, cited)] == [
        (18, 21, "Heart attack"),
        (41, 44, "Heart attack"),
    ]
