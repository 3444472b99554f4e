"""What the adapters' components share: a LangChain model or retriever, a LlamaIndex LLM each
hold the client options as fields of the same names, and build their core clients from them on
first use (`LazyClients`). The clients are never part of a component's state: a pickled,
unpickled or deep-copied component builds clients of its own, and never shares a connection
pool with the original.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from haufe_copilot.rate_limit import core_limiter_of
from haufe_copilot.transport.options import ADAPTER_OPTIONS, DEFAULT_MAX_RETRIES

if TYPE_CHECKING:
    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient
    from haufe_copilot.transport.client import HaufeCopilotClient

__all__ = ["ADAPTER_OPTION_FIELDS", "LazyClients", "options_from_fields", "share_by_reference"]

#: The client options the components hold as fields of the same names (`Option.adapter`).
ADAPTER_OPTION_FIELDS = ADAPTER_OPTIONS


def options_from_fields(fields: object) -> dict[str, Any]:
    """Client options from a component's fields of the same names, with secrets (`SecretStr`)
    unwrapped."""
    options = {name: getattr(fields, name, None) for name in ADAPTER_OPTION_FIELDS}
    for name in ("api_key", "platform_api_key"):
        secret = options[name]
        if secret is not None and hasattr(secret, "get_secret_value"):
            options[name] = secret.get_secret_value() or None
    if options["max_retries"] is None:
        options["max_retries"] = DEFAULT_MAX_RETRIES
    options["allow_insecure_http"] = bool(options["allow_insecure_http"])
    return options


# Connections, callables and the rate limiter (a copy with a limiter of its own would double
# the quota): a deep copy of a component shares them, it does not copy them.
SHARED_BY_REFERENCE = ("token_provider", "http_client", "http_async_client", "rate_limiter")


def share_by_reference(component: object, memo: dict[int, Any] | None) -> dict[int, Any]:
    """`memo` for `copy.deepcopy` of a component, so the copy keeps the very `http_client`,
    `http_async_client` and `token_provider` objects of the original."""
    memo = {} if memo is None else memo
    for name in SHARED_BY_REFERENCE:
        value = getattr(component, name, None)
        if value is not None:
            memo[id(value)] = value
    return memo


_Client = TypeVar("_Client", "HaufeCopilotClient", "AsyncHaufeCopilotClient")


def _client_arguments(fields: Any, http_client_field: str) -> dict[str, Any]:
    """A client's arguments from a component's fields: its options, its own httpx client, the limiter."""
    return {
        **options_from_fields(fields),
        "http_client": getattr(fields, http_client_field, None),
        "rate_limiter": core_limiter_of(fields),
    }


class LazyClients:
    """A component's sync and async core clients, each built from its fields on first use: a
    field set after construction counts until then, not after (make a copy with
    `model_copy(update=...)`, which builds clients of its own). One async client serves every
    event loop: it keeps a connection pool per loop and closes each as its loop shuts down."""

    def __init__(self) -> None:
        self._start_empty()

    def _start_empty(self) -> None:
        self._lock = threading.Lock()  # one model may be shared by threads: one client, not two
        self._sync: HaufeCopilotClient | None = None
        self._async: AsyncHaufeCopilotClient | None = None

    def sync(self, fields: Any) -> HaufeCopilotClient:
        client = self._sync
        if client is not None:
            return client
        from haufe_copilot.transport.client import HaufeCopilotClient

        return self._once("_sync", lambda: HaufeCopilotClient(**_client_arguments(fields, "http_client")))

    def async_(self, fields: Any) -> AsyncHaufeCopilotClient:
        client = self._async
        if client is not None:
            return client
        from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient

        return self._once(
            "_async", lambda: AsyncHaufeCopilotClient(**_client_arguments(fields, "http_async_client"))
        )

    def _once(self, slot: str, build: Callable[[], _Client]) -> _Client:
        with self._lock:  # the check again under the lock: two threads build one client, not two
            client: _Client | None = getattr(self, slot)
            if client is None:
                client = build()
                setattr(self, slot, client)
            return client

    def close(self) -> None:
        """Close the sync client's connections; the next call builds a new client."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async client's pool of the running event loop (other loops close theirs)."""
        if self._async is not None:
            await self._async.aclose()

    # A copy or an unpickled twin of the component starts with no clients of its own.

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._start_empty()

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyClients:
        return LazyClients()

    @property
    def built(self) -> frozenset[str]:
        """Which clients exist so far: "sync", "async"."""
        return frozenset(name for name, client in (("sync", self._sync), ("async", self._async)) if client)

    def __repr__(self) -> str:
        return f"LazyClients(built={sorted(self.built)})"
