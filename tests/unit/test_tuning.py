"""Batch policies from settings, batch buckets, the warm-up plan, and the engine's warm-up bookkeeping."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from imageapi.cli import main
from imageapi.config import ModelSpec, Settings, load_settings
from imageapi.engine.job import Task
from imageapi.engine.models import describe_model
from imageapi.engine.queue import BatchPolicy
from imageapi.engine.tuning import batch_buckets, batch_policy, warmup_plan
from imageapi.engine.worker import Engine, EngineState


def settings(**values) -> Settings:
    return Settings(models=(ModelSpec(name="m", source="random:tiny"),), **values)


def test_server_wide_batch_defaults_apply_where_the_model_sets_none():
    spec = ModelSpec(name="m", source="random:tiny")
    assert batch_policy(spec, settings()) == BatchPolicy(8, 0.005)
    assert batch_policy(spec, settings(max_batch_images=32, max_batch_wait_ms=20)) == BatchPolicy(32, 0.02)
    own = ModelSpec(name="m", source="random:tiny", max_batch_images=4, max_batch_wait_ms=1)
    assert batch_policy(own, settings(max_batch_images=32, max_batch_wait_ms=20)) == BatchPolicy(4, 0.001)


def test_cli_flags_reach_the_settings(tmp_path: Path):
    config = tmp_path / "c.toml"
    config.write_text('[models.m]\nsource = "random:tiny"\nmax_batch_images = 2\n')
    loaded = load_settings({"max_batch_images": 16, "max_batch_wait_ms": 3.0, "compile": True,
                            "compile_sizes": ["512x512"]}, environ={}, config_file=config)
    assert batch_policy(loaded.models[0], loaded) == BatchPolicy(2, 0.003)  # the file's per-model value wins
    assert loaded.compile and loaded.compile_sizes == ("512x512",)
    with pytest.raises(ValidationError):
        settings(compile_sizes=("big",))
    assert main(["serve", "--model", "random:tiny", "--compile-size", "nope"]) == 2


def test_buckets_are_powers_of_two_and_the_max():
    assert batch_buckets(1) == (1,)
    assert batch_buckets(8) == (1, 2, 4, 8)
    assert batch_buckets(12) == (1, 2, 4, 8, 12)


def test_warmup_plan_only_with_compile_and_covers_sizes_times_buckets():
    model = describe_model(ModelSpec(name="m", source="random:tiny"))
    assert warmup_plan(settings(), model, BatchPolicy(4)) == []
    plan = warmup_plan(settings(compile=True, compile_sizes=("256x256", "512x256")), model, BatchPolicy(4))
    assert [(b.key.width, b.key.height, b.images) for b in plan] == [
        (256, 256, 1), (256, 256, 2), (256, 256, 4), (512, 256, 1), (512, 256, 2), (512, 256, 4)]
    assert all(b.key.task is Task.TEXT_TO_IMAGE and b.key.guidance_scale == model.guidance_scale for b in plan)


class GatedBackend:
    """Records the batch sizes it runs; its first run waits for a gate, so the test sees the engine mid-warm-up."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[int] = []

    def load(self) -> None:
        pass

    def run(self, jobs):
        self.gate.wait(10)
        self.batches.append(len(jobs))
        return [np.zeros((jobs[0].key.height, jobs[0].key.width, 3), np.uint8) for _ in jobs]


def test_engine_is_ready_only_after_every_warmup_batch():
    model = describe_model(ModelSpec(name="m", source="random:tiny"))
    plan = warmup_plan(settings(compile=True), model, BatchPolicy(4))
    backend = GatedBackend()
    engine = Engine([model], lambda name: backend, {"m": BatchPolicy(4)}, 8, plan)
    engine.start()
    try:
        time.sleep(0.2)
        assert engine.state is EngineState.LOADING and engine.warmed_up == 0
        backend.gate.set()
        deadline = time.monotonic() + 10
        while engine.state is not EngineState.READY and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.state is EngineState.READY
        assert backend.batches == [1, 2, 4] and engine.warmed_up == 3
    finally:
        engine.stop()


def test_pad_to_bucket():
    pytest.importorskip("torch")
    from imageapi.backends.diffusers_pipeline import pad_to_bucket

    assert len(pad_to_bucket([1, 2, 3], (1, 2, 4, 8))) == 4
    assert pad_to_bucket([1, 2, 3], (1, 2, 4))[-1] == 3
    assert len(pad_to_bucket([1] * 9, (1, 2, 4, 8))) == 9  # past the largest bucket: as it is
    assert len(pad_to_bucket([1, 2, 3], ())) == 3


def test_the_diffusers_factory_passes_compile_mode_and_buckets_only_with_compile():
    pytest.importorskip("torch")
    from imageapi.app import diffusers_backend_factory

    plain = diffusers_backend_factory(settings(max_batch_images=4))("m")
    assert plain.compile_mode is None and plain.batch_buckets == ()
    compiled = diffusers_backend_factory(settings(max_batch_images=4, compile=True,
                                                  compile_mode="max-autotune-no-cudagraphs"))("m")
    assert compiled.compile_mode == "max-autotune-no-cudagraphs" and compiled.batch_buckets == (1, 2, 4)
