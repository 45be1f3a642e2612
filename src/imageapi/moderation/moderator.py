"""The Moderator: rules, then the optional text classifier, on prompts before any GPU work; the optional
image classifier on results before anything is stored or sent. A refusal is OpenAI's 400
`moderation_blocked` (type image_generation_user_error) naming the categories."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imageapi.errors import ModerationBlocked
from imageapi.moderation.classifiers import ImageClassifier, TextClassifier
from imageapi.moderation.policy import ALL_LEVELS, Level, ModerationPolicy, RuleEngine, load_policy


def blocked(categories: Sequence[str], trace_id: str) -> ModerationBlocked:
    request_id = "req_" + trace_id.replace("-", "")
    return ModerationBlocked("Your request was rejected by the safety system. If you believe this is an error, "
                             f"contact the operator of this server and include the request ID {request_id}. "
                             f"safety_violations=[{', '.join(categories)}].")


def level_of(moderation: str | None) -> Level:
    return "low" if moderation == "low" else "auto"  # other values are refused by request validation


class Moderator:
    def __init__(self, policy: ModerationPolicy) -> None:
        self.policy = policy
        self._rules = RuleEngine(policy)
        self._text: TextClassifier | None = None
        self._image: ImageClassifier | None = None

    @classmethod
    def from_file(cls, path: Path) -> Moderator:
        return cls(load_policy(path))

    def load_classifiers(self) -> None:
        """Blocking (model loading): call from a thread at start-up."""
        if self.policy.text_classifier is not None and self._text is None:
            self._text = TextClassifier(self.policy.text_classifier)
        if self.policy.image_classifier is not None and self._image is None:
            self._image = ImageClassifier(self.policy.image_classifier)

    def prompt_violations(self, prompt: str, level: Level) -> list[str]:
        """Blocking when a text classifier is configured."""
        found = self._rules.violations(prompt, level)
        if not found and self._text is not None:
            found = self._text.check(prompt, level)
        return found

    async def check_prompt(self, prompt: str | None, moderation: str | None, trace_id: str) -> None:
        if not prompt:
            return
        level = level_of(moderation)
        found = (await asyncio.to_thread(self.prompt_violations, prompt, level) if self._text is not None
                 else self._rules.violations(prompt, level))
        if found:
            raise blocked(found, trace_id)

    async def check_images(self, pixels: Sequence[np.ndarray], moderation: str | None, trace_id: str) -> None:
        if self._image is None or not pixels:
            return
        found = await asyncio.to_thread(self._image.check, list(pixels), level_of(moderation))
        if found:
            raise blocked(found, trace_id)


__all__ = ["ALL_LEVELS", "Moderator", "blocked", "level_of"]
