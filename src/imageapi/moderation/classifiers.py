"""Optional transformers classifiers for prompts and result images. transformers (and torch) are imported
only when a policy names a classifier; calls are blocking: run them in a thread, never on the event loop.
They run on the CPU by default (`device` in the policy), beside the engine's worker that owns the GPU."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from imageapi.moderation.policy import ClassifierConfig, Level


class Classifier:
    def __init__(self, config: ClassifierConfig, task: str) -> None:
        from transformers import pipeline

        self._config = config
        self._pipeline = pipeline(task, model=config.model, device=config.device)
        self._lock = threading.Lock()  # one call at a time: pipelines are not thread-safe

    def _scores(self, inputs: list[Any]) -> list[dict[str, float]]:
        with self._lock:
            outputs = self._pipeline(inputs, top_k=None)
        return [{item["label"]: float(item["score"]) for item in output} for output in outputs]

    def violations(self, inputs: list[Any], level: Level) -> list[str]:
        found: list[str] = []
        for scores in self._scores(inputs):
            for label, rule in self._config.labels.items():
                if level in rule.levels and scores.get(label, 0.0) >= rule.threshold and rule.category not in found:
                    found.append(rule.category)
        return found


class TextClassifier(Classifier):
    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config, "text-classification")

    def check(self, text: str, level: Level) -> list[str]:
        return self.violations([text], level)


class ImageClassifier(Classifier):
    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__(config, "image-classification")

    def check(self, images: list[np.ndarray], level: Level) -> list[str]:
        from PIL import Image

        return self.violations([Image.fromarray(pixels) for pixels in images], level)
