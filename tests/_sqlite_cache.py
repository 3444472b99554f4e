"""A LangChain cache in an SQLite file, as langchain-community's `SQLiteCache` keeps one (the
generations serialised with `langchain_core.load.dumps`), without that package: what two
processes sharing one cache file see."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import dumps, loads


class SQLiteFileCache(BaseCache):
    def __init__(self, database_path: str) -> None:
        self._path = database_path
        with sqlite3.connect(self._path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS cache (prompt TEXT, llm TEXT, idx INT, response TEXT)")

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        with sqlite3.connect(self._path) as db:
            rows = db.execute(
                "SELECT response FROM cache WHERE prompt = ? AND llm = ? ORDER BY idx", (prompt, llm_string)
            ).fetchall()
        return [loads(row[0]) for row in rows] or None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        generations: Sequence[Any] = return_val
        with sqlite3.connect(self._path) as db:
            db.executemany(
                "INSERT INTO cache VALUES (?, ?, ?, ?)",
                [(prompt, llm_string, i, dumps(g)) for i, g in enumerate(generations)],
            )

    def clear(self, **kwargs: Any) -> None:
        with sqlite3.connect(self._path) as db:
            db.execute("DELETE FROM cache")
