"""The client options as a component's fields, once for both adapters.

A LangChain model or retriever and a LlamaIndex LLM hold the options of
`HaufeCopilotClient(...)` as fields of the same names (`ClientFields`), checked, shown and
serialised the same way, and build their core clients from them on first use
(`holder.LazyClients`). Each adapter adds only what its framework needs: LangChain reads the
keys from the environment at construction and dumps them as its secrets, LlamaIndex pickles its
own way.

The field types name httpx's classes without importing httpx: a value is checked against them
when one is given, so importing an adapter does not load the HTTP stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PrivateAttr,
    SecretStr,
    field_serializer,
    field_validator,
)
from pydantic_core import core_schema

from haufe_copilot.conversation.holder import LazyClients
from haufe_copilot.protocol.settings import (
    check_proxy,
    check_timeout,
    guarded_headers,
    headers_for_display,
    headers_from_serialised,
    timeout_from_json,
    timeout_to_json,
)
from haufe_copilot.transport.options import ADAPTER_OPTIONS, CLIENT_OPTIONS

if TYPE_CHECKING:
    import httpx

    from haufe_copilot.transport.async_client import AsyncHaufeCopilotClient
    from haufe_copilot.transport.client import HaufeCopilotClient

__all__ = ["ClientFields", "HttpAsyncClientField", "HttpClientField", "TimeoutField"]


@dataclass(frozen=True)
class _InstanceOf:
    """pydantic metadata: the value must be an instance of `module.name`, which is imported only
    when a value is checked."""

    module: str
    name: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self._check)

    def _check(self, value: Any) -> Any:
        cls = getattr(import_module(self.module), self.name)
        if not isinstance(value, cls):
            raise ValueError(f"Input should be an instance of {self.module}.{self.name}")
        return value


if TYPE_CHECKING:
    TimeoutField: TypeAlias = float | httpx.Timeout | None
    HttpClientField: TypeAlias = httpx.Client | None
    HttpAsyncClientField: TypeAlias = httpx.AsyncClient | None
else:
    # Seconds first, as pydantic's `float | httpx.Timeout` validated them (30 becomes 30.0).
    TimeoutField = Annotated[
        float | Annotated[Any, _InstanceOf("httpx", "Timeout")] | None, Field(union_mode="left_to_right")
    ]
    HttpClientField = Annotated[Any, _InstanceOf("httpx", "Client")] | None
    HttpAsyncClientField = Annotated[Any, _InstanceOf("httpx", "AsyncClient")] | None


def _option(name: str, **constraints: Any) -> Any:
    """A field for the client option `name`: its default and meaning as `ClientOptions` gives them."""
    option = CLIENT_OPTIONS[name]
    return Field(default=option.default, description=option.meaning, **constraints)


class ClientFields(BaseModel):
    """The client options of a component (`ChatHaufeCopilot`, `HaufeCopilotRetriever`,
    `HaufeCopilot`), and its core clients built from them on first use."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    # The options `ClientOptions` marks for the adapters, each with its default and meaning from
    # there; the types are the ones a component's field takes (keys as secrets).
    api_key: SecretStr | None = _option("api_key", exclude=True)
    base_url: str | None = _option("base_url")
    platform_api_key: SecretStr | None = _option("platform_api_key", exclude=True)
    platform_base_url: str | None = _option("platform_base_url")
    token_provider: Callable[[], Any] | None = _option("token_provider", exclude=True)
    timeout: TimeoutField = _option("timeout")
    deadline: float | None = _option("deadline", gt=0)
    max_retries: int = _option("max_retries", ge=0)
    default_headers: dict[str, str] | None = _option("default_headers")
    allow_insecure_http: bool = _option("allow_insecure_http")
    proxy: str | None = _option("proxy")

    # Beside the options: connections the caller owns.
    http_client: HttpClientField = Field(
        default=None,
        exclude=True,
        description="An httpx.Client you own, for the sync calls. Unpickled in the same process, a "
        "component gets this very client back; in another process it opens its own (a warning).",
    )
    http_async_client: HttpAsyncClientField = Field(
        default=None,
        exclude=True,
        description="An httpx.AsyncClient you own, for the async calls (it belongs to one event loop).",
    )

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
    def _timeout_as_json(self, value: TimeoutField) -> Any:
        return timeout_to_json(value)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, headers_for_display(value) if name == "default_headers" else value

    @property
    def client(self) -> HaufeCopilotClient:
        """The sync core client, built on first use (left out of pickles and copies)."""
        return self._clients.sync(self)

    @property
    def async_client(self) -> AsyncHaufeCopilotClient:
        """The async core client, built on first use; it serves every event loop."""
        return self._clients.async_(self)

    def __copy__(self) -> Any:
        # `model_copy(update=...)` may change what the clients are built from: never share them.
        clone = super().__copy__()
        clone._clients = LazyClients()
        return clone


# Every option `ClientOptions` marks for the adapters is a field here, and no other option.
_UNMATCHED = set(ADAPTER_OPTIONS) ^ (set(ClientFields.model_fields) - {"http_client", "http_async_client"})
if _UNMATCHED:  # pragma: no cover - a change to ClientOptions this module has not followed
    raise ImportError(f"ClientFields and ClientOptions' adapter options differ in {sorted(_UNMATCHED)}")
