"""Async task persistence (the SQLite task store and callback outbox) and webhook delivery."""
