"""Pure pieces of streaming: which steps are previewed, the SSE framing, the error event."""

from __future__ import annotations

import json

import pytest

from imageapi.engine.job import preview_steps
from imageapi.errors import InternalError, ModerationBlocked
from imageapi.http.streaming import event_data, sse_frame
from imageapi.service.streaming import StreamEvent, error_event


@pytest.mark.parametrize("total, wanted, steps", [
    (4, 3, {0, 1, 2}), (4, 2, {1, 2}), (4, 1, {1}), (2, 3, {0}), (1, 3, set()), (4, 0, set()),
    (40, 3, {9, 19, 29}), (25, 1, {12}),
])
def test_preview_steps_are_evenly_spaced_and_never_the_last(total, wanted, steps):
    assert preview_steps(total, wanted) == steps


@pytest.mark.parametrize("total", range(1, 60))
@pytest.mark.parametrize("wanted", [1, 2, 3])
def test_preview_steps_count(total, wanted):
    chosen = preview_steps(total, wanted)
    assert len(chosen) == min(wanted, total - 1) and all(0 <= step < total - 1 for step in chosen)


def test_event_data_is_what_json_dumps_writes():
    data = {"type": "image_generation.completed", "b64_json": "iVBORw0KGgo+/==", "size": "auto",
            "usage": {"total_tokens": 3}, "note": 'quote " and é'}
    assert event_data(data) == json.dumps(data, separators=(",", ":")).encode()
    assert event_data({"type": "error", "error": {"message": "x"}}) == b'{"type":"error","error":{"message":"x"}}'


def test_sse_frame_has_the_event_line_and_one_data_line():
    frame = sse_frame(StreamEvent("image_edit.partial_image", {"type": "image_edit.partial_image", "b64_json": "QQ=="}))
    assert frame == (b'event: image_edit.partial_image\ndata: {"type":"image_edit.partial_image",'
                     b'"b64_json":"QQ=="}\n\n')


def test_error_event_hides_internal_failures_and_keeps_refusals():
    hidden = error_event(RuntimeError("CUDA error: secret")).data
    assert hidden["type"] == "error" and hidden["error"]["code"] == "image_generation_failed"
    assert set(hidden["error"]) == {"type", "code", "message", "param"} and "secret" not in json.dumps(hidden)
    assert error_event(InternalError()).data["error"]["type"] == "image_generation_server_error"
    refused = error_event(ModerationBlocked("rejected by the safety system")).data["error"]
    assert (refused["type"], refused["code"], refused["message"]) == ("image_generation_user_error",
                                                                     "moderation_blocked",
                                                                     "rejected by the safety system")
