"""Whether a LangChain cache may hand a model's answers to more than one conversation."""

from __future__ import annotations

from langchain_core.caches import BaseCache
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel

__all__ = ["answers_may_be_replayed"]


def answers_may_be_replayed(model: BaseChatModel) -> bool:
    """True when LangChain caches the model's answers: `cache=` set to a cache, or (the default,
    `cache=None`, and `cache=True`) a global cache from `set_llm_cache`. A cached answer is
    given, thread id and digests included, to every conversation that asks the same; it may
    even come from another process (SQLiteCache, RedisCache)."""
    if isinstance(model.cache, BaseCache):
        return True
    if model.cache is False:
        return False
    return get_llm_cache() is not None
