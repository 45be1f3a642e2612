"""What the service needs from a prompt policy (the `moderation/` package implements it): a check that raises
(`errors.ModerationBlocked`) to refuse. Defined here so the service never imports the classifiers' stack."""

from __future__ import annotations

from typing import Protocol


class PromptChecker(Protocol):
    async def check_prompt(self, prompt: str | None, moderation: str | None, trace_id: str) -> None:
        """Raises to refuse `prompt` at the request's moderation level ('auto' or 'low'; None: 'auto')."""
