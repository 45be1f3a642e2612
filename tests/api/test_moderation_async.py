"""The prompt policy lives in the service: an async submission with a refused prompt is answered 400
`moderation_blocked` synchronously (before a task is stored or its inputs saved), like the sync call."""

from __future__ import annotations

from support import assert_error, png_bytes

POLICY = '[categories.violence]\nwords = ["behead"]\n'
GEN = {"size": "256x256", "response_format": "b64_json", "async": True}


def task_count(client) -> int:
    return client.post("/openai/tasks", json={"action": "retrieve_batch"}).json()["count"]


def test_async_submission_with_a_blocked_prompt_is_refused_synchronously(make_client, tmp_path):
    (tmp_path / "policy.toml").write_text(POLICY)
    client = make_client(moderation_policy=tmp_path / "policy.toml")
    error = assert_error(client.post("/v1/images/generations", json={**GEN, "prompt": "behead the dragon"}),
                         400, "moderation_blocked")
    assert error["type"] == "image_generation_user_error" and "safety_violations=[violence]." in error["message"]
    edit = client.post("/v1/images/edits", data={"prompt": "behead it", "async": "true", "size": "256x256"},
                       files=[("image", ("a.png", png_bytes(), "image/png"))])
    assert_error(edit, 400, "moderation_blocked")
    assert task_count(client) == 0
    inputs = client.app.state.settings.data_dir / "task-inputs"
    assert not inputs.exists() or not any(inputs.iterdir())
    accepted = client.post("/v1/images/generations", json={**GEN, "prompt": "a dragon"})
    assert accepted.status_code == 200 and accepted.json()["task_id"]
    assert task_count(client) == 1
