"""API keys: the SQLite store and the `imageapi keys` commands."""
