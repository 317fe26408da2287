"""Durable storage of collections."""

from simsearch.store.sqlite import DB_FILENAME, Changes, SQLiteStore, StoredRow

__all__ = ["DB_FILENAME", "Changes", "SQLiteStore", "StoredRow"]
