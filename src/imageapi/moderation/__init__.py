"""Moderation: the operator's policy (rules, and optional transformers classifiers) checked before GPU work."""
