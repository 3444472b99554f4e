"""Secrets and hostile input.

One scanner test gathers every place a credential could leak to into one list of texts and
searches it for the session's API key, a platform bearer token and the tokens of a token provider
(a fresh random value each, per test session): DEBUG logs of every logger, exceptions (message,
repr, args, the whole chain of causes and the formatted traceback), reprs, `model_dump`,
LangChain `dumpd`/`dumps`, LangSmith run parameters (the runs a tracer receives), LlamaIndex
`to_dict`/`to_json` and its instrumentation events, the URLs requested, a VCR cassette recorded
with the project's filters, and the emulator's own record. A second test plants a key and shows
the scanner finds it, in each encoding it looks for and through a real surface.

The rest: no credentials over plain http to a host that is not loopback, none sent after a
redirect to another host; control characters refused with a clear error before anything is sent;
path and query values encoded; answers larger than the configured bounds refused clearly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from haufe_copilot import AsyncHaufeCopilotClient, HaufeCopilotClient, errors
from haufe_copilot.transport.base_client import MAX_ERROR_BODY_BYTES
from haufe_emulator import EmulatorConfig, EmulatorServer
from tests.conftest import (
    ASSISTANT_ID,
    QUESTION,
    SESSION_API_KEY,
    _before_record_request,
    _before_record_response,
    user,
)
from tests.reliability import probes
from tests.reliability.servers import RawServer, refused_port

#: Fresh per test session, like SESSION_API_KEY: a platform key and the tokens a provider hands out.
PLATFORM_TOKEN = "pt-test-" + secrets.token_hex(16)
PROVIDER_TOKEN = "eyJhbGciOiJIUzI1NiJ9." + secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(16)
EXPIRED_TOKEN = "eyJleHBpcmVkIjp0cnVlfQ." + secrets.token_urlsafe(24)
#: Credentials a caller puts in `default_headers` (a gateway's subscription key, a session token).
HEADER_KEY = "hk-test-" + secrets.token_hex(16)
HEADER_TOKEN = "ht-test-" + secrets.token_hex(16)
CREDENTIAL_HEADERS = {
    "Ocp-Apim-Subscription-Key": HEADER_KEY,
    "X-Session-Token": HEADER_TOKEN,
    "x-trace": "1",
}
SECRETS = {
    "api key": SESSION_API_KEY,
    "platform token": PLATFORM_TOKEN,
    "provider token": PROVIDER_TOKEN,
    "expired provider token": EXPIRED_TOKEN,
    "default_headers key": HEADER_KEY,
    "default_headers token": HEADER_TOKEN,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Das Wetter",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def secret_emulator() -> Iterator[EmulatorServer]:
    """An emulator that accepts each credential (not the expired token)."""
    keys = frozenset({SESSION_API_KEY, PLATFORM_TOKEN, PROVIDER_TOKEN})
    with EmulatorServer(EmulatorConfig(api_keys=keys)) as server:
        yield server


# -- the scanner -------------------------------------------------------------------------------


def forms(secret: str) -> dict[str, str]:
    """The ways a secret could appear: as it is, URL- or JSON-encoded, base64, or a piece of it."""
    middle = len(secret) // 2
    return {
        "as is": secret,
        "percent-encoded": quote(secret, safe=""),
        "json-escaped": json.dumps(secret)[1:-1],
        "base64": base64.b64encode(secret.encode()).decode().rstrip("="),
        "base64 of 'Bearer <it>'": base64.b64encode(f"Bearer {secret}".encode()).decode()[8:].rstrip("="),
        "a 16-character piece": secret[middle - 8 : middle + 8],
    }


def scan(surfaces: list[tuple[str, str]], secrets_: dict[str, str] = SECRETS) -> list[str]:
    """Every (surface, secret, form) where a secret shows."""
    found = []
    for label, text in surfaces:
        for name, secret in secrets_.items():
            for form, needle in forms(secret).items():
                if needle and needle in text:
                    found.append(f"{label}: the {name} ({form})")
    return found


class Surfaces:
    """The texts a credential could leak to, gathered as the calls run."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, label: str, value: Any) -> None:
        if isinstance(value, BaseException):
            self.add_error(label, value)
            return
        self.texts.append((label, value if isinstance(value, str) else f"{value!s}\n{value!r}"))

    def add_error(self, label: str, error: BaseException) -> None:
        chain: BaseException | None = error
        while chain is not None:
            self.texts.append((f"{label} (exception)", f"{chain!s}\n{chain!r}\n{chain.args!r}"))
            self.texts.append((f"{label} (exception vars)", repr(vars(chain))))
            # An httpx exception's repr shows only the URL of its request; the headers are there too.
            for value in vars(chain).values():
                if isinstance(value, (httpx.Request, httpx.Response)):
                    self.texts.append(
                        (f"{label} (request on the exception)", repr(value.headers.multi_items()))
                    )
            chain = chain.__cause__ or chain.__context__
        formatted = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.texts.append((f"{label} (traceback)", formatted))

    def expect_error(self, label: str, call: Any) -> BaseException:
        try:
            call()
        except Exception as exc:
            self.add_error(label, exc)
            return exc
        raise AssertionError(f"{label}: no error")

    async def aexpect_error(self, label: str, call: Any) -> BaseException:
        try:
            await call()
        except Exception as exc:
            self.add_error(label, exc)
            return exc
        raise AssertionError(f"{label}: no error")


FAULTS = [
    {"x-emulator-fault": "unauthorized"},
    {"x-emulator-fault": "rate_limit_gateway", "x-emulator-retry-after-ms": "1"},
    {"x-emulator-fault": "proxy_html", "x-emulator-retry-after-ms": "1"},
    {"x-emulator-cut-after": "2"},
    {"x-emulator-malformed-after": "1"},
    {"x-emulator-stream-error": "internal_server_error", "x-emulator-stream-error-after": "1"},
    {"x-emulator-delay": "0.5"},
]


def _drain(stream: Any) -> None:
    for _ in stream:
        pass


def gather_core(emulator: EmulatorServer, out: Surfaces, servers: dict[str, RawServer]) -> None:
    url = emulator.url
    tokens = iter([EXPIRED_TOKEN] + [PROVIDER_TOKEN] * 1000)  # the first one is refused: a refresh
    clients = {
        "key": HaufeCopilotClient(api_key=SESSION_API_KEY, platform_api_key=PLATFORM_TOKEN, base_url=url),
        "provider": HaufeCopilotClient(
            api_key=SESSION_API_KEY, token_provider=lambda: next(tokens), base_url=url, max_retries=1
        ),
    }
    for name, client in clients.items():
        out.add(f"core {name} client", client)
        out.add(f"core {name} client vars", vars(client))
        out.add(f"core {name} config", client._config)
        out.add(
            f"core {name} answer",
            client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user()).model_dump(),
        )
        out.add(f"core {name} completion", client.completions.create(messages=user()).model_dump_json())
        chunks = list(
            client.completions.create(messages=user("get_weather für Köln"), tools=[WEATHER], stream=True)
        )
        out.add(f"core {name} chunks", [c.model_dump() for c in chunks])
        handle = client.streams.start(messages=user())
        out.add(f"core {name} events", [e.model_dump() for e in client.streams.events(handle.stream_id)])
        out.add(f"core {name} status", client.streams.status(handle.stream_id))
        slow = client.with_options(timeout=0.2, max_retries=1)
        for headers in FAULTS:
            out.expect_error(
                f"core {name} assistant {headers}",
                lambda h=headers, c=slow: _drain(  # type: ignore[misc]
                    c.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(), extra_headers=h)
                ),
            )
            out.expect_error(
                f"core {name} completion {headers}",
                lambda h=headers, c=slow: _drain(  # type: ignore[misc]
                    c.completions.create(messages=user(), stream=True, extra_headers=h)
                ),
            )
    for label, base in [
        ("refused", f"http://127.0.0.1:{refused_port()}"),
        *((k, s.url) for k, s in servers.items()),
    ]:
        client = HaufeCopilotClient(
            api_key=SESSION_API_KEY, platform_api_key=PLATFORM_TOKEN, base_url=base, max_retries=0
        )
        out.expect_error(
            f"core {label}", lambda c=client: c.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
        )  # type: ignore[misc]
        out.expect_error(f"core {label} platform", lambda c=client: c.completions.create(messages=user()))  # type: ignore[misc]
    # A credential of the caller's own in default_headers: redacted by the same rule (DEBUG log).
    custom = HaufeCopilotClient(
        api_key="sk-other",
        base_url=url,
        max_retries=0,
        default_headers={"X-Upstream-Credential": SESSION_API_KEY, "X-Gateway-Token": PLATFORM_TOKEN},
    )
    out.expect_error(
        "core custom credential header",
        lambda: custom.assistant.chat(assistant_id=ASSISTANT_ID, messages=user()),
    )
    wrong = HaufeCopilotClient(
        api_key=PLATFORM_TOKEN, platform_api_key="sk-wrong", base_url=url, max_retries=0
    )
    out.expect_error("core wrong key", lambda: wrong.completions.create(messages=user()))
    # Credentials that cannot be sent are refused without being shown.
    out.expect_error("core key with a newline", lambda: HaufeCopilotClient(api_key=SESSION_API_KEY + "\n"))
    out.expect_error("core key with spaces", lambda: HaufeCopilotClient(api_key=f" {SESSION_API_KEY} "))
    out.expect_error("core key not ASCII", lambda: HaufeCopilotClient(api_key=SESSION_API_KEY + "ä"))
    out.expect_error(
        "core platform key with CRLF",
        lambda: HaufeCopilotClient(api_key="k", platform_api_key=PLATFORM_TOKEN + "\r\nX-Evil: 1"),
    )
    bad_tokens = HaufeCopilotClient(token_provider=lambda: PROVIDER_TOKEN + "\r\n", base_url=url)
    out.expect_error("core token with CRLF", lambda: bad_tokens.completions.create(messages=user()))
    out.expect_error(
        "core credentials in the URL",
        lambda: HaufeCopilotClient(api_key="k", base_url=f"https://user:{SESSION_API_KEY}@api.example.com"),
    )
    for client in clients.values():
        client.close()


async def gather_core_async(emulator: EmulatorServer, out: Surfaces) -> None:
    async def provider() -> str:
        await asyncio.sleep(0)
        return PROVIDER_TOKEN

    async with (
        AsyncHaufeCopilotClient(
            api_key=SESSION_API_KEY, platform_api_key=PLATFORM_TOKEN, base_url=emulator.url
        ) as a,
        AsyncHaufeCopilotClient(api_key=SESSION_API_KEY, token_provider=provider, base_url=emulator.url) as b,
    ):
        for name, client in (("key", a), ("provider", b)):
            out.add(f"core async {name} client", client)
            out.add(f"core async {name} client vars", vars(client))
            out.add(
                f"core async {name} completion",
                (await client.completions.create(messages=user())).model_dump(),
            )
            slow = client.with_options(timeout=0.2, max_retries=0)
            for headers in FAULTS:

                async def call(h: dict[str, str] = headers, c: AsyncHaufeCopilotClient = slow) -> None:
                    async for _ in await c.completions.create(messages=user(), stream=True, extra_headers=h):
                        pass

                await out.aexpect_error(f"core async {name} {headers}", call)


def gather_langchain(emulator: EmulatorServer, out: Surfaces) -> None:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.load import dumpd, dumps
    from langchain_core.tracers.base import BaseTracer

    from langchain_haufe import ChatHaufeCopilot, HaufeCopilotRetriever

    class Runs(BaseTracer):
        def __init__(self) -> None:
            super().__init__()
            self.runs: list[Any] = []

        def _persist_run(self, run: Any) -> None:
            self.runs.append(run)

    class Serialized(BaseCallbackHandler):
        """What every callback handler receives: the `serialized` model and its parameters."""

        def __init__(self) -> None:
            self.seen: list[Any] = []

        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            self.seen.append((serialized, kwargs.get("invocation_params"), kwargs.get("metadata")))

        def on_retriever_start(self, serialized: Any, query: str, **kwargs: Any) -> None:
            self.seen.append((serialized, kwargs.get("metadata")))

    tracer = Runs()
    handler = Serialized()
    config: Any = {"callbacks": [tracer, handler], "metadata": {"purpose": "secrets"}}
    models = {
        "key": ChatHaufeCopilot(
            api_key=SESSION_API_KEY,
            platform_api_key=PLATFORM_TOKEN,
            base_url=emulator.url,
            assistant_id=ASSISTANT_ID,
            max_retries=0,
        ),
        "provider": ChatHaufeCopilot(
            api_key=SESSION_API_KEY,
            token_provider=lambda: PROVIDER_TOKEN,
            base_url=emulator.url,
            assistant_id=ASSISTANT_ID,
            max_retries=0,
        ),
        "headers": ChatHaufeCopilot(
            api_key=SESSION_API_KEY,
            base_url=emulator.url,
            assistant_id=ASSISTANT_ID,
            max_retries=0,
            default_headers=CREDENTIAL_HEADERS,
        ),
    }
    for name, model in models.items():
        model.invoke(QUESTION, config=config)
        list(model.stream(QUESTION, config=config))
        model.bind_tools([WEATHER]).invoke("get_weather für Bonn", config=config)
        schema = {"title": "Frist", "type": "object", "properties": {"wochen": {"type": "integer"}}}
        model.with_structured_output(schema, method="json_schema").invoke(QUESTION, config=config)
        out.expect_error(
            f"langchain {name} error",
            lambda m=model: m.invoke(
                QUESTION, config=config, extra_headers={"x-emulator-fault": "unauthorized"}
            ),  # type: ignore[misc]
        )
        out.expect_error(
            f"langchain {name} cut",
            lambda m=model: list(
                m.stream(QUESTION, config=config, extra_headers={"x-emulator-cut-after": "2"})
            ),  # type: ignore[misc]
        )
        out.add(f"langchain {name} repr", model)
        out.add(f"langchain {name} dumps", dumps(model))
        out.add(f"langchain {name} dumpd", dumpd(model))
        out.add(f"langchain {name} model_dump", model.model_dump())
        out.add(f"langchain {name} model_dump_json", model.model_dump_json())
        out.add(f"langchain {name} ls params", model._get_ls_params())
        out.add(f"langchain {name} invocation params", model._get_invocation_params())
        out.add(f"langchain {name} identifying params", model._identifying_params)
        out.add(f"langchain {name} vars", vars(model))
    retriever = HaufeCopilotRetriever(
        api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID
    )
    retriever.invoke(QUESTION, config=config)
    out.add("langchain retriever", retriever)
    out.add(
        "langchain retriever dumps",
        dumpd(retriever) if retriever.is_lc_serializable() else retriever.model_dump(),
    )
    assert tracer.runs, "the tracer saw no runs"
    assert handler.seen, "the callback handler saw nothing"
    for seen in handler.seen:
        out.add("langchain callback serialized", seen)
    for (
        run
    ) in tracer.runs:  # what LangSmith would be sent: serialized model, invocation params, metadata, errors
        out.add("langsmith run", run.model_dump() if hasattr(run, "model_dump") else run.dict())


def gather_llama_index(emulator: EmulatorServer, out: Surfaces) -> None:
    from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.llms import ChatMessage

    from llama_index_haufe import (
        HaufeCopilot,
        HaufeCopilotChatEngine,
        HaufeCopilotQueryEngine,
        HaufeCopilotRetriever,
    )

    class Events(BaseEventHandler):
        events: list[Any] = []  # noqa: RUF012 - a pydantic field (BaseEventHandler is a model)

        @classmethod
        def class_name(cls) -> str:
            return "SecretScanEvents"

        def handle(self, event: Any, **kwargs: Any) -> None:
            self.events.append(event)

    handler = Events()
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        llms = {
            "key": HaufeCopilot(
                api_key=SESSION_API_KEY,
                platform_api_key=PLATFORM_TOKEN,
                base_url=emulator.url,
                assistant_id=ASSISTANT_ID,
                max_retries=0,
                default_headers=CREDENTIAL_HEADERS,
            ),
            "provider": HaufeCopilot(
                api_key=SESSION_API_KEY,
                token_provider=lambda: PROVIDER_TOKEN,
                base_url=emulator.url,
                assistant_id=ASSISTANT_ID,
                max_retries=0,
            ),
        }
        messages = [ChatMessage(role="user", content=QUESTION)]
        for name, llm in llms.items():
            llm.chat(messages)
            list(llm.stream_chat(messages))
            llm.chat([ChatMessage(role="user", content="get_weather für Bonn")], tools=[WEATHER])
            out.expect_error(
                f"llama_index {name} error",
                lambda m=llm: m.chat(messages, extra_headers={"x-emulator-fault": "unauthorized"}),  # type: ignore[misc]
            )
            out.expect_error(
                f"llama_index {name} cut",
                lambda m=llm: list(m.stream_chat(messages, extra_headers={"x-emulator-cut-after": "2"})),  # type: ignore[misc]
            )
            out.add(f"llama_index {name} repr", llm)
            out.add(f"llama_index {name} to_dict", llm.to_dict())
            out.add(f"llama_index {name} to_json", llm.to_json())
            out.add(f"llama_index {name} model_dump", llm.model_dump())
            out.add(f"llama_index {name} model_dump_json", llm.model_dump_json())
            out.add(f"llama_index {name} metadata", llm.metadata)
            out.add(f"llama_index {name} vars", vars(llm))
        llm = llms["key"]
        for component in (
            HaufeCopilotRetriever(llm=llm),
            HaufeCopilotQueryEngine(llm=llm),
            HaufeCopilotChatEngine(llm=llm),
        ):
            out.add(f"llama_index {type(component).__name__}", component)
        out.add("llama_index query", HaufeCopilotQueryEngine(llm=llm).query(QUESTION))
    finally:
        dispatcher.event_handlers.remove(handler)
    assert handler.events, "the dispatcher saw no events"
    for event in handler.events:
        out.add(
            f"llama_index event {type(event).__name__}",
            event.model_dump() if hasattr(event, "model_dump") else event,
        )


def gather_cassette(emulator: EmulatorServer, out: Surfaces, tmp_path: Path) -> None:
    """A cassette recorded with the project's VCR filters (conftest's vcr_config)."""
    import vcr

    recorder = vcr.VCR(
        before_record_request=_before_record_request,
        before_record_response=_before_record_response,
        match_on=["method", "path", "query", "body"],
        decode_compressed_response=True,
        record_mode="all",
    )
    path = tmp_path / "secrets.yaml"
    with recorder.use_cassette(str(path)):
        with HaufeCopilotClient(
            api_key=SESSION_API_KEY, platform_api_key=PLATFORM_TOKEN, base_url=emulator.url
        ) as c:
            c.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
            c.completions.create(messages=user())
        with HaufeCopilotClient(
            api_key=SESSION_API_KEY, token_provider=lambda: PROVIDER_TOKEN, base_url=emulator.url
        ) as c:
            list(c.completions.create(messages=user(), stream=True))
    text = path.read_text(encoding="utf-8")
    assert "<redacted>" in text and "/api/v1/chat/completions" in text
    out.add("cassette", text)


def gather_urls(emulator: EmulatorServer, out: Surfaces, servers: dict[str, RawServer]) -> None:
    for request in list(emulator.state.requests):
        out.add("url", f"{request.path}?{request.query}")
        out.add("emulator record", request)
    for server in servers.values():
        out.add("raw server targets", [r.target for r in server.requests])


def servers_for_scan() -> dict[str, RawServer]:
    return {
        "reset": RawServer("reset"),
        "malformed": RawServer("malformed"),
        "huge_error": RawServer("huge_error", size=2 << 20),
    }


def test_no_secret_on_any_surface(
    secret_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, langchain, llama_index, ...
    out = Surfaces()
    servers = servers_for_scan()
    with servers["reset"], servers["malformed"], servers["huge_error"]:
        gather_core(secret_emulator, out, servers)
        asyncio.run(gather_core_async(secret_emulator, out))
        gather_langchain(secret_emulator, out)
        gather_llama_index(secret_emulator, out)
        gather_cassette(secret_emulator, out, tmp_path)
        gather_urls(secret_emulator, out, servers)
    out.add("DEBUG log", caplog.text)
    out.add("DEBUG log records", [(r.name, r.msg, r.args) for r in caplog.records])
    # The credentials were really in use (so their absence above means something).
    sent = [r.headers for r in list(secret_emulator.state.requests)]
    assert any(h.get("api-key") == "<redacted>" for h in sent)
    assert sum(1 for h in sent if h.get("ocp-apim-subscription-key") == "<redacted>") > 10
    assert sum(1 for h in sent if h.get("x-session-token") == "<redacted>") > 10
    assert sum(1 for h in sent if h.get("authorization") == "<redacted>") > 20
    assert "api-key': '<redacted>'" in caplog.text and "authorization': '<redacted>'" in caplog.text
    assert len(out.texts) > 300, len(out.texts)
    findings = scan(out.texts)
    assert findings == [], "\n".join(findings[:50])


def test_the_scanner_catches_a_planted_secret(
    secret_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, secret in SECRETS.items():
        for form, needle in forms(secret).items():
            planted = [("somewhere", f"before {needle} after")]
            assert f"somewhere: the {name} ({form})" in scan(planted)

    # Through a real surface: a client that logged headers unredacted would be caught.
    import haufe_copilot.transport.base_client as base

    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(base, "redacted_headers", lambda headers: dict(headers))
    with HaufeCopilotClient(
        api_key=SESSION_API_KEY, platform_api_key=PLATFORM_TOKEN, base_url=secret_emulator.url
    ) as c:
        c.completions.create(messages=user())
    findings = scan([("DEBUG log", caplog.text)])
    assert "DEBUG log: the platform token (as is)" in findings
    assert scan([("clean", "nothing to see " * 100)]) == []

    # A client that left the credentials on the request its httpx cause carries would be caught.
    monkeypatch.setattr(base, "redacted_request", lambda request: request)
    planted = Surfaces()
    refused = HaufeCopilotClient(
        api_key=SESSION_API_KEY, base_url=f"http://127.0.0.1:{refused_port()}", max_retries=0
    )
    planted.expect_error(
        "refused", lambda: refused.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
    )
    assert "refused (request on the exception): the api key (as is)" in scan(planted.texts)


# -- transport security ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://10.0.0.1:8765",
        "http://0.0.0.0:8765",
        "http://127.0.0.1.nip.io",
        "http://localhost.example.com",
        "http://[::ffff:7f00:1]",
        "http://2130706433",
    ],
)
def test_no_credentials_over_plain_http_to_a_host_that_is_not_loopback(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_haufe import ChatHaufeCopilot
    from llama_index_haufe import HaufeCopilot

    attempts = [
        lambda: HaufeCopilotClient(api_key="k", base_url=url),
        lambda: AsyncHaufeCopilotClient(api_key="k", base_url=url),
        lambda: HaufeCopilotClient(api_key="k", base_url="https://api.haufe.ai", platform_base_url=url),
        lambda: ChatHaufeCopilot(api_key="k", base_url=url, assistant_id="a").client,
        lambda: HaufeCopilot(api_key="k", base_url=url, assistant_id="a").client,
    ]
    for attempt in attempts:
        with pytest.raises(errors.ConfigurationError, match="plain http"):
            attempt()
    monkeypatch.setenv("HAUFE_COPILOT_BASE_URL", url)
    with pytest.raises(errors.ConfigurationError, match="allow_insecure_http"):
        HaufeCopilotClient(api_key="k")
    assert HaufeCopilotClient(api_key="k", base_url=url, allow_insecure_http=True).base_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765",
        "http://127.1.2.3",
        "http://localhost:1",
        "http://[::1]:8765",
        "http://a.localhost",
    ],
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    assert HaufeCopilotClient(api_key="k", base_url=url).base_url == url


@pytest.mark.parametrize("given_client", ["own", "follows-redirects"])
@pytest.mark.parametrize("api", ["assistant", "platform"])
@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_no_credentials_after_a_redirect_to_another_host(given_client: str, api: str, flavor: str) -> None:
    with RawServer("malformed", host="127.0.0.2") as elsewhere:
        with RawServer("redirect", location=elsewhere.url) as redirecting:
            options: dict[str, Any] = {
                "api_key": SESSION_API_KEY,
                "base_url": redirecting.url,
                "max_retries": 0,
            }

            def call_sync() -> Any:
                http = httpx.Client(follow_redirects=True) if given_client == "follows-redirects" else None
                with HaufeCopilotClient(**options, http_client=http) as client:
                    try:
                        if api == "assistant":
                            return client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
                        return client.completions.create(messages=user())
                    finally:
                        if http is not None:
                            http.close()

            async def call_async() -> Any:
                http = (
                    httpx.AsyncClient(follow_redirects=True) if given_client == "follows-redirects" else None
                )
                async with AsyncHaufeCopilotClient(**options, http_client=http) as client:
                    try:
                        if api == "assistant":
                            return await client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
                        return await client.completions.create(messages=user())
                    finally:
                        if http is not None:
                            await http.aclose()

            with pytest.raises(errors.APIStatusError) as info:
                call_sync() if flavor == "sync" else asyncio.run(call_async())
            assert info.value.status_code == 307
            assert redirecting.request_count() == 1
            assert elsewhere.request_count() == 0, elsewhere.requests  # nothing reached the other host
            first = redirecting.requests[0].headers
            assert ("api-key" in first) if api == "assistant" else ("authorization" in first)


# -- hostile input ---------------------------------------------------------------------------

CONTROL = ["\r\n", "\n", "\r", "\x00", "\x1b", "\x7f", "\x85", "\u2028"]


def _refused(where: str, call: Any) -> errors.HaufeCopilotError:
    try:
        call()
    except (errors.InvalidRequestError, errors.ConfigurationError) as error:
        return error
    raise AssertionError(f"{where}: not refused")


@pytest.mark.parametrize("char", CONTROL, ids=repr)
def test_control_characters_are_refused_before_anything_is_sent(
    emulator: EmulatorServer, client: HaufeCopilotClient, char: str
) -> None:
    from llama_index.core.llms import ChatMessage

    from langchain_haufe import ChatHaufeCopilot
    from llama_index_haufe import HaufeCopilot

    before = len(emulator.state.requests)
    bad = f"abc{char}x-injected: 1"
    calls = {
        "thread_id": lambda: client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), thread_id=bad),
        "user_id": lambda: client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user(), user_id=bad),
        "assistant_id": lambda: client.assistant.chat(assistant_id=bad, messages=user()),
        "session_id": lambda: client.completions.create(messages=user(), session_id=bad),
        "stream_id (start)": lambda: client.streams.start(messages=user(), stream_id=bad),
        "stream_id (status)": lambda: client.streams.status(bad),
        "stream_id (events)": lambda: next(iter(client.streams.events(bad))),  # lazy: at first use
        "header value": lambda: client.assistant.chat(
            assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x-note": bad}
        ),
        "header name": lambda: client.completions.create(messages=user(), extra_headers={bad: "1"}),
        "default_headers": lambda: HaufeCopilotClient(api_key="k", default_headers={"x-note": bad}),
        "langchain thread_id": lambda: ChatHaufeCopilot(
            api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID
        ).invoke(QUESTION, thread_id=bad),
        "langchain user_id": lambda: ChatHaufeCopilot(
            api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID, user_id=bad
        ).invoke(QUESTION),
        "llama_index thread_id": lambda: HaufeCopilot(
            api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID
        ).chat([ChatMessage(role="user", content=QUESTION)], thread_id=bad),
        "llama_index default_headers": lambda: HaufeCopilot(
            api_key=SESSION_API_KEY,
            base_url=emulator.url,
            assistant_id=ASSISTANT_ID,
            default_headers={"x-n": bad},
        ).chat([ChatMessage(role="user", content=QUESTION)]),
    }
    for where, call in calls.items():
        error = _refused(where, call)
        assert "control character" in str(error) or "not an HTTP header name" in str(error), (
            where,
            str(error),
        )
    assert len(emulator.state.requests) == before  # nothing was sent


async def test_control_characters_are_refused_by_the_async_client(
    async_client: AsyncHaufeCopilotClient,
) -> None:
    for char in CONTROL:
        with pytest.raises(errors.InvalidRequestError, match="control character"):
            await async_client.assistant.chat(
                assistant_id=ASSISTANT_ID, messages=user(), thread_id=f"t{char}"
            )
        with pytest.raises(errors.InvalidRequestError, match="control character"):
            await async_client.completions.create(messages=user(), session_id=f"s{char}")
        with pytest.raises(errors.InvalidRequestError, match="control character"):
            async_client.assistant.stream(
                assistant_id=ASSISTANT_ID, messages=user(), extra_headers={"x": f"v{char}"}
            )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"x-note": "Grüße"}, "not ASCII"),
        ({"x-note": " padded "}, "whitespace"),
        ({"x note": "1"}, "not an HTTP header name"),
        ({"x:note": "1"}, "not an HTTP header name"),
        ({"": "1"}, "not an HTTP header name"),
    ],
)
def test_header_values_http_cannot_carry_are_refused_clearly(
    client: HaufeCopilotClient, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(errors.InvalidRequestError, match=message):
        client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user(), extra_headers=headers)


def test_text_that_is_not_valid_unicode_is_refused_clearly(client: HaufeCopilotClient) -> None:
    with pytest.raises(errors.InvalidRequestError, match="not valid Unicode"):
        client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user("Kündigung \udcfc"))


WEIRD = ["a&b=c", "a#b", "a?b", "a b+c", "a%20b", "ä/ö", "..", ".", "a/../b", "%2e%2e", "'\"<>"]


@pytest.mark.parametrize("value", WEIRD)
def test_path_and_query_values_arrive_exactly_as_given(
    emulator: EmulatorServer, client: HaufeCopilotClient, value: str
) -> None:
    marker = secrets.token_hex(6)
    with pytest.raises(errors.NotFoundError) as info:
        client.assistant.chat(
            assistant_id=ASSISTANT_ID,
            messages=user(),
            thread_id=value,
            extra_headers={"x-test-marker": marker},
        )
    assert info.value.error_code == "resource_not_found"  # the emulator looked up exactly this thread
    (request,) = [r for r in list(emulator.state.requests) if r.headers.get("x-test-marker") == marker]
    assert request.query == {"thread_id": value}
    client.completions.create(
        messages=user(), extra_query={"trace": value}, extra_headers={"x-test-marker": marker + "q"}
    )
    (request,) = [r for r in list(emulator.state.requests) if r.headers.get("x-test-marker") == marker + "q"]
    assert request.query == {"trace": value}
    if "/" not in value:  # a "/" cannot be a stream id: the server decodes %2F before routing
        with pytest.raises(errors.NotFoundError) as stream_info:
            client.streams.status(value)
        # the status route itself answered (a route miss would be FastAPI's bare 404, with no code)
        assert stream_info.value.error_code == "resource_not_found", stream_info.value


# -- answers beyond the bounds ------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["sync", "async"])
@pytest.mark.parametrize(
    ("behaviour", "call", "error", "message"),
    [
        ("big_body", "chat", errors.ResponseTooLargeError, "max_response_bytes=1048576"),
        ("endless_line", "stream", errors.ResponseTooLargeError, "65536"),
        ("endless_line", "completion-stream", errors.ResponseTooLargeError, "max_event_bytes=65536"),
        ("huge_error", "chat", errors.InternalServerError, "HTML page"),
    ],
)
def test_an_answer_beyond_the_bounds_is_refused_clearly(
    behaviour: str, call: str, error: type[Exception], message: str, flavor: str
) -> None:
    options: dict[str, Any] = {
        "api_key": SESSION_API_KEY,
        "max_retries": 0,
        "max_response_bytes": 1 << 20,
        "max_line_bytes": 1 << 16,
    }
    with RawServer(behaviour, size=32 << 20) as server:  # type: ignore[arg-type]
        options["base_url"] = server.url

        def sync() -> probes.Connections:
            with HaufeCopilotClient(**options) as client:
                with pytest.raises(error, match=message) as info:
                    if call == "chat":
                        client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
                    elif call == "stream":
                        list(client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()))
                    else:
                        list(client.completions.create(messages=user(), stream=True))
                check(info.value)
                return probes.connections(server.port, probes.sync_pool(client))

        async def asynchronous() -> probes.Connections:
            async with AsyncHaufeCopilotClient(**options) as client:
                with pytest.raises(error, match=message) as info:
                    if call == "chat":
                        await client.assistant.chat(assistant_id=ASSISTANT_ID, messages=user())
                    elif call == "stream":
                        async for _ in client.assistant.stream(assistant_id=ASSISTANT_ID, messages=user()):
                            pass
                    else:
                        async for _ in await client.completions.create(messages=user(), stream=True):
                            pass
                check(info.value)
                return probes.connections(server.port, probes.async_pool(client))

        def check(exc: BaseException) -> None:
            assert len(str(exc)) < 1000  # a clear message, not the body
            body = getattr(exc, "body", None)  # read up to the bound (plus the read that passed it)
            assert body is None or len(body) < MAX_ERROR_BODY_BYTES + (256 << 10)

        started = time.monotonic()
        state = sync() if flavor == "sync" else asyncio.run(asynchronous())
        assert time.monotonic() - started < 3  # refused as the bound passed, not after 32 MiB
        assert state.leaked == 0, state  # and the connection was not kept
