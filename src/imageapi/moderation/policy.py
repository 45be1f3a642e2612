"""The moderation policy file (TOML or JSON) and its rules engine. Torch-free.

    [categories.violence]
    words = ["behead"]                 # whole words, any case
    phrases = ["blow up the"]          # word sequences, any case and spacing
    patterns = ["\\\\bk+i+l+l+\\\\b"]     # Python regular expressions, any case
    levels = ["auto"]                  # moderation levels that check it (default: both "low" and "auto")

    [text_classifier]                  # optional: any transformers text-classification model id or folder
    model = "unitary/toxic-bert"
    labels = { toxic = { category = "harassment", threshold = 0.9 } }

    [image_classifier]                 # optional: checks result images before they are stored or sent
    model = "Falconsai/nsfw_image_detection"
    labels = { nsfw = { category = "sexual", threshold = 0.8, levels = ["low", "auto"] } }

A request's `moderation` picks the level: "auto" (the default) checks every category; "low" checks only the
categories whose `levels` include "low".
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Level = Literal["low", "auto"]
ALL_LEVELS: tuple[Level, ...] = ("low", "auto")


class CategoryRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    levels: tuple[Level, ...] = ALL_LEVELS

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"invalid regular expression {pattern!r}: {error}") from None
        return patterns

    def regex(self) -> re.Pattern[str] | None:
        parts = [rf"\b{re.escape(word)}\b" for word in self.words]
        parts += [r"\b" + r"\s+".join(map(re.escape, phrase.split())) + r"\b" for phrase in self.phrases]
        parts += [f"(?:{pattern})" for pattern in self.patterns]
        return re.compile("|".join(parts), re.IGNORECASE) if parts else None


class LabelRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    threshold: float = Field(ge=0, le=1)
    levels: tuple[Level, ...] = ALL_LEVELS


class ClassifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="A Hugging Face model id or a local folder.")
    labels: dict[str, LabelRule] = Field(description="Model label -> category and score threshold.")
    device: str = "cpu"


class ModerationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: dict[str, CategoryRules] = Field(default_factory=dict)
    text_classifier: ClassifierConfig | None = None
    image_classifier: ClassifierConfig | None = None


def load_policy(path: Path) -> ModerationPolicy:
    text = path.read_text()
    raw = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    return ModerationPolicy.model_validate(raw)


class RuleEngine:
    """Compiled once; `violations` is pure and fast (a regex per category)."""

    def __init__(self, policy: ModerationPolicy) -> None:
        self._rules = [(name, rules.levels, pattern) for name, rules in policy.categories.items()
                       if (pattern := rules.regex()) is not None]

    def violations(self, text: str, level: Level) -> list[str]:
        return [name for name, levels, pattern in self._rules if level in levels and pattern.search(text)]
