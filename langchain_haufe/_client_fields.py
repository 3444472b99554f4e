"""The client configuration a LangChain component holds, and its lazily built core clients.

The clients (`LazyClients`) are private and never part of the component's state, so a used
model still pickles and deep-copies (the copy builds its own clients on first use). One async
core client serves every event loop: it keeps a connection pool per loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot._component import LazyClients, share_by_reference


class HaufeClientFields(BaseModel):
    """Connection settings shared by `ChatHaufeCopilot` and `HaufeCopilotRetriever`."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    api_key: SecretStr | None = Field(default_factory=secret_from_env("HAUFE_COPILOT_API_KEY", default=None))
    """The `api-key` of the Assistant API; default from `HAUFE_COPILOT_API_KEY`."""
    base_url: str | None = Field(default_factory=from_env("HAUFE_COPILOT_BASE_URL", default=None))
    """The Assistant API's base URL; default `HAUFE_COPILOT_BASE_URL`, else https://api.haufe.ai."""
    platform_api_key: SecretStr | None = Field(
        default_factory=secret_from_env("HAUFE_COPILOT_PLATFORM_API_KEY", default=None)
    )
    """Bearer key of the completions and async-streams APIs; default `api_key`."""
    platform_base_url: str | None = None
    """Base URL of the completions and async-streams APIs; default `base_url`."""
    token_provider: Callable[[], Any] | None = Field(default=None, exclude=True)
    """A sync or async callable giving OAuth2/JWT access tokens for the platform APIs."""
    timeout: float | httpx.Timeout | None = None
    """Seconds, or an `httpx.Timeout`; default connect 5 s, read 60 s."""
    max_retries: int = 2
    """Attempts after the first; never once the server answered 2xx (docs/contract.md, Retries)."""
    default_headers: dict[str, str] | None = None
    http_client: httpx.Client | None = Field(default=None, exclude=True)
    """An `httpx.Client` you own, for the sync calls."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)
    """An `httpx.AsyncClient` you own, for the async calls (it belongs to one event loop)."""
    allow_insecure_http: bool = False
    """Allow sending the key over plain http to a host other than loopback."""

    _clients: LazyClients = PrivateAttr(default_factory=LazyClients)

    @property
    def client(self) -> HaufeCopilotClient:
        """The sync core client, built on first use."""
        return self._clients.sync(self)

    @property
    def async_client(self) -> AsyncHaufeCopilotClient:
        """The async core client, built on first use; it serves any event loop."""
        return self._clients.async_(self)

    def __copy__(self) -> Any:
        # `model_copy(update=...)` may change what the clients are built from: never share them.
        clone = super().__copy__()
        clone._clients = LazyClients()
        return clone

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Any:
        memo = share_by_reference(self, memo)
        clone = type(self).__new__(type(self))
        clone.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return clone
