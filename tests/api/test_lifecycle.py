"""Whatever starts stops: a start-up that fails half-way, and a data folder removed under a running server."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from fastapi.testclient import TestClient

from conftest import make_settings, wait_ready
from imageapi import app as app_module
from imageapi.app import build_app


def device_workers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "imageapi-device-worker"]


def test_a_failed_start_up_stops_what_it_started(tmp_path):
    (tmp_path / "tasks.sqlite3").mkdir(parents=True)  # the task store cannot open: start-up fails after the engine
    app = build_app(make_settings(tmp_path))
    with pytest.raises(Exception, match="unable to open database file"), TestClient(app):
        pass
    engine = app.state.engine
    assert str(engine.state) == "stopped"
    for thread in device_workers():
        thread.join(10)
    assert not device_workers()


def test_results_folder_removed_while_running(tmp_path, monkeypatch):
    monkeypatch.setattr(app_module, "SWEEP_INTERVAL_S", 0.05)
    with TestClient(build_app(make_settings(tmp_path)), headers={"Authorization": "Bearer sk-test"}) as client:
        wait_ready(client)
        shutil.rmtree(tmp_path / "results")
        time.sleep(0.3)  # several sweeps run against the missing folder
        response = client.post("/v1/images/generations", json={"prompt": "x", "size": "256x256"})
        assert response.status_code == 200, response.text
        path = response.json()["data"][0]["url"].split("/", 3)[3]
        assert client.get("/" + path).status_code == 200
