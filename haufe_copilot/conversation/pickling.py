"""What of a component's state goes into a pickle, the same for both adapters.

An `http_client` / `http_async_client` holds sockets and locks and cannot be pickled. The
pickle carries a token for it instead: unpickled in the same process (a cache, a copy through
pickle, a thread pool) the component gets the very same client back; in another process the
client cannot exist, so the component builds its own pools from its other settings, with a
warning at that moment saying so. A `token_provider` that cannot be pickled (a lambda, a bound
method of an unpicklable object) is left out the same way.
"""

from __future__ import annotations

import logging
import pickle
import uuid
import weakref
from collections.abc import Mapping
from typing import Any

__all__ = ["CONNECTION_FIELDS", "connections_from_pickle", "connections_to_pickle"]

logger = logging.getLogger("haufe_copilot")

CONNECTION_FIELDS = ("http_client", "http_async_client")

_TOKEN_KEY = "__haufe_connection__"  # noqa: S105 - a dict key, not a credential
_tokens: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
_clients: weakref.WeakValueDictionary[str, object] = weakref.WeakValueDictionary()


def _token(client: object) -> dict[str, str]:
    token = _tokens.get(client)
    if token is None:
        token = uuid.uuid4().hex
        _tokens[client] = token
        _clients[token] = client
    return {_TOKEN_KEY: token}


def connections_to_pickle(fields: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """A copy of a component's field values fit for a pickle."""
    state = dict(fields)
    for name in CONNECTION_FIELDS:
        if state.get(name) is not None:
            state[name] = _token(state[name])
    for name in ("token_provider", "rate_limiter"):
        value = state.get(name)
        if value is not None:
            try:
                pickle.dumps(value)
            except Exception:
                logger.warning("%s: %s cannot be pickled and is left out of the pickle.", owner, name)
                state[name] = None
    return state


def connections_from_pickle(state: dict[str, Any], owner: str) -> dict[str, Any]:
    """The field values of `connections_to_pickle` with the connections found again (in place)."""
    for name in CONNECTION_FIELDS:
        value = state.get(name)
        if isinstance(value, dict) and _TOKEN_KEY in value:
            client = _clients.get(value[_TOKEN_KEY])
            if client is None:
                logger.warning(
                    "%s: the %s it was pickled with is not in this process; it opens connections "
                    "of its own with the same settings (pass %s= again to use one you own).",
                    owner,
                    name,
                    name,
                )
            state[name] = client
    return state
