"""Persistence: conversations and messages, on SQLite by default and Postgres with the same code."""
