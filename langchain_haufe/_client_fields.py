"""The client configuration a LangChain component holds, and its lazily built core clients.

The clients (`LazyClients`) are private and never part of the component's state, so a used
model still pickles and deep-copies (the copy builds its own clients on first use). One async
core client serves every event loop: it keeps a connection pool per loop.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_serializer, field_validator

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient
from haufe_copilot.conversation.holder import LazyClients, share_by_reference
from haufe_copilot.conversation.pickling import connections_from_pickle, connections_to_pickle
from haufe_copilot.log import is_secret_header
from haufe_copilot.protocol.settings import (
    check_proxy,
    check_timeout,
    guarded_headers,
    headers_for_display,
    headers_from_serialised,
    timeout_from_json,
    timeout_to_json,
)


def header_secret_id(name: str) -> str:
    """The LangChain secret a credential header is dumped as: `HAUFE_COPILOT_HEADER_<NAME>`."""
    return "HAUFE_COPILOT_HEADER_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


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
    """Seconds, an `httpx.Timeout` (or a dict of its arguments); default connect 5 s, read 60 s.
    Per call: `invoke(..., timeout=...)`."""
    deadline: float | None = None
    """The most a whole call may take, in seconds (retries and a stream's reading included);
    None: no limit. A stream also ends once it has sent no content for the read timeout."""
    max_retries: int = 2
    """Attempts after the first; never once the server answered 2xx (docs/contract.md, Retries)."""
    default_headers: dict[str, str] | None = None
    """Headers sent with every request. Credentials among them (`Authorization`, `api-key`,
    cookies, any name saying key, token or secret) are redacted in `repr`, `model_dump` and
    tracers; `dumpd`/`dumps` keep them as LangChain secrets named
    `HAUFE_COPILOT_HEADER_<NAME>`, which `load(..., secrets_map=...)` or
    `secrets_from_env=True` fill in again."""
    proxy: str | None = None
    """A forward proxy (`http://host:port`, `socks5://...`) for every request; default the
    environment's (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, as httpx reads them)."""
    http_client: httpx.Client | None = Field(default=None, exclude=True)
    """An `httpx.Client` you own, for the sync calls. Unpickled in the same process, a model
    gets this very client back; in another process it opens its own connections (a warning)."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)
    """An `httpx.AsyncClient` you own, for the async calls (it belongs to one event loop)."""
    allow_insecure_http: bool = False
    """Allow sending the key over plain http to a host other than loopback."""

    _clients: LazyClients = PrivateAttr(default_factory=LazyClients)

    def __init__(self, **data: Any) -> None:
        # Checked before pydantic sees them, so a bad value is our typed error (a
        # ConfigurationError naming the setting and its accepted forms), not a ValidationError.
        if "timeout" in data:
            data["timeout"] = check_timeout(data["timeout"])
        if "proxy" in data:
            data["proxy"] = check_proxy(data["proxy"])
        super().__init__(**data)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_from_json(cls, value: Any) -> Any:
        return timeout_from_json(value)

    @field_validator("default_headers", mode="before")
    @classmethod
    def _headers_from_dump(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return headers_from_serialised(value, cls.__name__)
        return value

    @field_validator("default_headers", mode="after")
    @classmethod
    def _guard_credentials(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return guarded_headers(value)

    @field_serializer("default_headers")
    def _redact_headers(self, value: dict[str, str] | None) -> dict[str, str] | None:
        return headers_for_display(value)

    @field_serializer("timeout")
    def _timeout_as_json(self, value: float | httpx.Timeout | None) -> Any:
        return timeout_to_json(value)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, headers_for_display(value) if name == "default_headers" else value

    @property
    def _header_secrets(self) -> dict[str, str]:
        """For `lc_secrets`: with a credential among `default_headers`, the field is a secret, so
        LangChain's dump neither escapes nor shows it; `to_json` then writes each credential
        header as a secret reference of its own and the others as they are."""
        if any(is_secret_header(name) for name in self.default_headers or {}):
            return {"default_headers": "HAUFE_COPILOT_DEFAULT_HEADERS"}
        return {}

    def to_json(self) -> Any:
        serialised = super().to_json()  # type: ignore[misc]
        kwargs = serialised.get("kwargs")
        if isinstance(kwargs, dict):
            if isinstance(kwargs.get("timeout"), httpx.Timeout):
                kwargs["timeout"] = timeout_to_json(kwargs["timeout"])
            if "default_headers" in kwargs and self.default_headers is not None:
                kwargs["default_headers"] = {
                    name: {"lc": 1, "type": "secret", "id": [header_secret_id(name)]}
                    if is_secret_header(name)
                    else value
                    for name, value in self.default_headers.items()
                }
        return serialised

    def __getstate__(self) -> dict[Any, Any]:
        state: dict[Any, Any] = super().__getstate__()
        state["__dict__"] = connections_to_pickle(state["__dict__"], type(self).__name__)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state = dict(state)
        state["__dict__"] = connections_from_pickle(dict(state["__dict__"]), type(self).__name__)
        super().__setstate__(state)

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
        # pydantic's own state, not the pickle's: a copy shares the clients and the token
        # provider by reference, whether or not they could be pickled.
        memo = share_by_reference(self, memo)
        clone = type(self).__new__(type(self))
        BaseModel.__setstate__(clone, copy.deepcopy(BaseModel.__getstate__(self), memo))
        return clone
