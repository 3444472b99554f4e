"""The client options: the one list of what a client can be configured with.

`ClientOptions` is the keyword arguments of `HaufeCopilotClient(...)` and
`AsyncHaufeCopilotClient(...)` (besides `http_client`, whose type differs between them); each
field carries its default and meaning (`Option`), from which everything else that lists options
is derived: the resolved `ClientConfig`, `with_options()`'s changeable set, and the adapters'
fields (`ADAPTER_OPTIONS`).
"""

# No `from __future__ import annotations`: the `Annotated` metadata is read at import time.
# httpx's types are named as strings and its default objects made on first use, so that this
# list (which the adapters' fields are made from) loads without the HTTP stack.
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from haufe_copilot.protocol.ndjson import DEFAULT_MAX_LINE_BYTES
from haufe_copilot.rate_limit import RateLimiter

__all__ = [
    "ADAPTER_OPTIONS",
    "ASYNC_DEFAULT_LIMITS",
    "CLIENT_OPTIONS",
    "COPY_OPTIONS",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_PARTIAL_CHARS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "ClientOptions",
    "Option",
    "TokenProvider",
]

DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# An interrupted stream's error carries the text delivered before it; keeping it costs memory
# the size of the answer, so it is kept up to this bound (the caller saw every delta anyway).
DEFAULT_MAX_PARTIAL_CHARS = 1024 * 1024

if TYPE_CHECKING:
    import httpx

    DEFAULT_TIMEOUT: httpx.Timeout
    #: The sync client's pool: httpx's own default. The async client's is `ASYNC_DEFAULT_LIMITS`.
    DEFAULT_LIMITS: httpx.Limits
    #: Per event loop: every connection kept alive, as 1,000 concurrent streams want them.
    ASYNC_DEFAULT_LIMITS: httpx.Limits


def __getattr__(name: str) -> Any:
    # httpx's objects, made when a client (which has imported httpx anyway) first asks.
    if name not in ("DEFAULT_TIMEOUT", "DEFAULT_LIMITS", "ASYNC_DEFAULT_LIMITS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import httpx

    value: httpx.Timeout | httpx.Limits
    if name == "DEFAULT_TIMEOUT":
        value = httpx.Timeout(60.0, connect=5.0)
    elif name == "DEFAULT_LIMITS":
        value = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    else:
        value = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    globals()[name] = value  # made once
    return value


TokenProvider = Callable[[], str | Awaitable[str]]


@dataclass(frozen=True)
class Option:
    """What one client option means: its default, a sentence for the docs, and where it counts.

    `copy`: `with_options()` may change it (what a copy shares with its original, such as the
    connection pools and what they were built with, it may not). `adapter`: the LangChain and
    LlamaIndex components expose it as a field of the same name."""

    default: Any
    meaning: str
    copy: bool = False
    adapter: bool = False


class ClientOptions(TypedDict, total=False):
    """The options of both clients, all keyword-only and optional (`**options: Unpack[ClientOptions]`).

    Each field's `Option` gives its default and meaning; the list below is generated from them.
    """

    api_key: Annotated[
        str | None,
        Option(None, "The assistant API's key; default the HAUFE_COPILOT_API_KEY variable.", adapter=True),
    ]
    base_url: Annotated[
        str | None,
        Option(
            None,
            "The service's root; default HAUFE_COPILOT_BASE_URL, else https://api.haufe.ai.",
            adapter=True,
        ),
    ]
    platform_api_key: Annotated[
        str | None,
        Option(
            None,
            "The Bearer key of the completions and async-streams APIs; default "
            "HAUFE_COPILOT_PLATFORM_API_KEY, else api_key.",
            adapter=True,
        ),
    ]
    platform_base_url: Annotated[
        str | None,
        Option(
            None,
            "The platform APIs' root; default HAUFE_COPILOT_PLATFORM_BASE_URL, else base_url.",
            adapter=True,
        ),
    ]
    token_provider: Annotated[
        TokenProvider | None,
        Option(
            None,
            "A function returning the platform APIs' Bearer token (async allowed on the async client), "
            "asked before each attempt and once more after a 401.",
            adapter=True,
        ),
    ]
    timeout: Annotated[
        "float | httpx.Timeout | None",
        Option(
            None,
            "Each network operation's limit: seconds or an httpx.Timeout; default connect 5 s, read 60 s. "
            "The read timeout is also a stream's stall guard (keep-alives do not count).",
            copy=True,
            adapter=True,
        ),
    ]
    deadline: Annotated[
        float | None,
        Option(
            None,
            "The most a whole call may take, in seconds, retries and a stream's reading included; "
            "None: no limit. Also per call.",
            copy=True,
            adapter=True,
        ),
    ]
    max_retries: Annotated[
        int,
        Option(
            DEFAULT_MAX_RETRIES,
            "Retries after a retryable error, only before a 2xx status arrived (docs/reliability.md).",
            copy=True,
            adapter=True,
        ),
    ]
    default_headers: Annotated[
        Mapping[str, str] | None,
        Option(
            None,
            "Headers sent with every request (not those the client sets itself); a copy's are merged.",
            copy=True,
            adapter=True,
        ),
    ]
    allow_insecure_http: Annotated[
        bool,
        Option(False, "Send credentials over plain http beyond loopback addresses.", adapter=True),
    ]
    max_line_bytes: Annotated[
        int, Option(DEFAULT_MAX_LINE_BYTES, "The longest stream line or event accepted, in bytes.", copy=True)
    ]
    max_response_bytes: Annotated[
        int,
        Option(DEFAULT_MAX_RESPONSE_BYTES, "Every answer's bound in bytes, streamed or not.", copy=True),
    ]
    max_partial_chars: Annotated[
        int,
        Option(
            DEFAULT_MAX_PARTIAL_CHARS,
            "How much of the text delivered before an error its `.partial` keeps.",
            copy=True,
        ),
    ]
    proxy: Annotated[
        str | None,
        Option(
            None,
            "A forward proxy URL for every request; default the environment's HTTPS_PROXY, HTTP_PROXY, "
            "ALL_PROXY, NO_PROXY, as httpx reads them. Not with http_client=.",
            adapter=True,
        ),
    ]
    limits: Annotated[
        "httpx.Limits | None",
        Option(
            None,
            "The connection pool's limits (httpx.Limits): the most connections open at once and kept "
            "alive; default 100 and 20 (sync, httpx's), 100 and 100 (async, per event loop). "
            "Not with http_client=.",
        ),
    ]
    rate_limiter: Annotated[
        RateLimiter | None,
        Option(
            None,
            "A haufe_copilot.rate_limit limiter, asked before every attempt and told of every 429 "
            "(docs/scaling.md); a copy shares it.",
        ),
    ]


def _options() -> dict[str, Option]:
    # The annotations as written (not `get_type_hints`, which would resolve httpx's names).
    hints = ClientOptions.__annotations__
    return {name: next(m for m in hint.__metadata__ if isinstance(m, Option)) for name, hint in hints.items()}


#: Every option by name, in the order of `ClientOptions`.
CLIENT_OPTIONS: Mapping[str, Option] = _options()
#: What `with_options()` may change.
COPY_OPTIONS = frozenset(name for name, option in CLIENT_OPTIONS.items() if option.copy)
#: What the adapters' components expose as fields of the same names.
ADAPTER_OPTIONS = tuple(name for name, option in CLIENT_OPTIONS.items() if option.adapter)

ClientOptions.__doc__ = (ClientOptions.__doc__ or "") + "".join(
    f"\n    - `{name}` (default {o.default!r}): {o.meaning}" for name, o in CLIENT_OPTIONS.items()
)
