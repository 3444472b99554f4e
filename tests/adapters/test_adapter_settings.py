"""What a user of langchain-openai or llama-index-llms-openai expects of both adapters, alike:
no setting dropped without a word, a per-call timeout honoured, a proxy used (a real forward
proxy on loopback), usage and finish reasons on every path that has them, a model profile, token
counts without `transformers`, serialisation and copies that keep every value, and one
behaviour for one mistake. Everything over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import copy
import logging
import pickle
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.load import dumpd, dumps, loads
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, trim_messages
from langchain_core.tools import tool
from llama_index.core.llms import ChatMessage
from pydantic import BaseModel

from haufe_copilot import errors
from haufe_copilot.conversation.routing import CAPABILITIES, estimate_tokens, tool_choice_for_api
from haufe_emulator import EmulatorServer
from langchain_haufe import ChatHaufeCopilot
from llama_index_haufe import HaufeCopilot
from tests.conftest import ASSISTANT_ID, QUESTION, SESSION_API_KEY

COMPLETIONS = "/api/v1/chat/completions"
STREAMS = "/api/v1/messages/async"
WEATHER_QUESTION = "Wie ist das Wetter in Berlin? Nutze get_weather."
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Das Wetter einer Stadt",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "Frist",
        "schema": {"type": "object", "properties": {"wochen": {"type": "integer"}}, "required": ["wochen"]},
    },
}


@tool
def get_weather(city: str) -> str:
    """Das aktuelle Wetter einer Stadt."""
    return f"In {city} ist es sonnig."


class Frist(BaseModel):
    """Eine Kündigungsfrist."""

    frist: str
    wochen: int


def chat_model(emulator: EmulatorServer, **fields: Any) -> ChatHaufeCopilot:
    return ChatHaufeCopilot(
        **{"api_key": SESSION_API_KEY, "base_url": emulator.url, "assistant_id": ASSISTANT_ID, **fields}
    )


def llama(emulator: EmulatorServer, **fields: Any) -> HaufeCopilot:
    return HaufeCopilot(
        **{"api_key": SESSION_API_KEY, "base_url": emulator.url, "assistant_id": ASSISTANT_ID, **fields}
    )


def user(text: str = QUESTION) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


# -- a forward proxy on loopback ---------------------------------------------------------------


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1: absolute-URI requests are forwarded (one request per
    connection), CONNECT is tunnelled. It counts what it forwarded."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._server = server
        self._ready.set()
        self._loop.run_forever()
        server.close()
        # Connections still piped are cancelled and finished while the loop lives (as asyncio.run
        # does): left pending, they were closed by the garbage collector on a closed loop.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode("latin-1")
        headers: list[str] = []
        while (line := (await reader.readline()).decode("latin-1")) not in ("\r\n", "\n", ""):
            headers.append(line)
        method, target, version = request_line.split()
        self.requests.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = httpx.URL(target)
            upstream_reader, upstream_writer = await asyncio.open_connection(url.host, url.port or 80)
            kept = [h for h in headers if not h.lower().startswith(("proxy-", "connection:"))]
            head = f"{method} {url.raw_path.decode()} {version}\r\n{''.join(kept)}Connection: close\r\n\r\n"
            upstream_writer.write(head.encode("latin-1"))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as server:
        yield server


# -- 4. no setting dropped silently -------------------------------------------------------------


def test_an_unknown_keyword_warns_and_goes_out_in_the_body_in_both_adapters(emulator: EmulatorServer) -> None:
    with pytest.warns(UserWarning, match="'temprature' is not a setting"):
        model = chat_model(emulator, temprature=0.2)
    assert model.model_kwargs == {"temprature": 0.2}
    # sent as is, so the server names the typo (the emulator, like the API, takes no extra fields)
    with pytest.raises(errors.UnprocessableEntityError, match="temprature"):
        model.bind_tools([get_weather]).invoke(WEATHER_QUESTION)
    with pytest.raises(errors.UnprocessableEntityError, match="temprature"):
        model.invoke(QUESTION)
    with pytest.warns(UserWarning, match="'temprature' is not a setting"):
        llm = llama(emulator, temprature=0.3)
    assert llm.additional_kwargs == {"temprature": 0.3}
    with pytest.raises(errors.UnprocessableEntityError, match="temprature"):
        llm.chat(user(WEATHER_QUESTION), tools=[WEATHER])
    # a body field the API takes and no setting names (n) goes out with its value
    with pytest.warns(UserWarning, match="'n' is not a setting"):
        model = chat_model(emulator, n=1)
    model.bind_tools([get_weather]).invoke(WEATHER_QUESTION)
    assert emulator.state.bodies(COMPLETIONS)[-1]["n"] == 1


def test_a_setting_inside_model_kwargs_is_an_error(emulator: EmulatorServer) -> None:
    with pytest.raises(errors.ConfigurationError, match=r"temperature=\.\.\.\), not inside model_kwargs"):
        chat_model(emulator, model_kwargs={"temperature": 0.2})
    with pytest.raises(
        errors.ConfigurationError, match=r"temperature=\.\.\.\), not inside additional_kwargs"
    ):
        llama(emulator, additional_kwargs={"temperature": 0.2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a field given as itself warns about nothing
        chat_model(emulator, temperature=0.2, model="m", stop_sequences=["x"])
        llama(emulator, temperature=0.2, model="m")


SLOW = {"x-emulator-delay": "2"}


def _langchain_calls(model: ChatHaufeCopilot) -> dict[str, Any]:
    return {
        "invoke": lambda: model.invoke(QUESTION, timeout=0.3, extra_headers=SLOW),
        "stream": lambda: list(model.stream(QUESTION, timeout=0.3, extra_headers=SLOW)),
        "tools": lambda: model.bind_tools([get_weather]).invoke(
            WEATHER_QUESTION, timeout=0.3, extra_headers=SLOW
        ),
        "json_schema": lambda: model.bind(response_format=FORMAT).invoke(
            QUESTION, timeout=0.3, extra_headers=SLOW
        ),
        "ainvoke": lambda: asyncio.run(model.ainvoke(QUESTION, timeout=0.3, extra_headers=SLOW)),
    }


def _llama_calls(llm: HaufeCopilot) -> dict[str, Any]:
    async def astream() -> None:
        async for _ in await llm.astream_chat(user(), timeout=0.3, extra_headers=SLOW):
            pass

    return {
        "chat": lambda: llm.chat(user(), timeout=0.3, extra_headers=SLOW),
        "stream_chat": lambda: list(llm.stream_chat(user(), timeout=0.3, extra_headers=SLOW)),
        "tools": lambda: llm.chat(user(WEATHER_QUESTION), tools=[WEATHER], timeout=0.3, extra_headers=SLOW),
        "json_schema": lambda: llm.chat(user(), response_format=FORMAT, timeout=0.3, extra_headers=SLOW),
        "astream_chat": lambda: asyncio.run(astream()),
    }


@pytest.mark.parametrize("adapter", ["langchain", "llama_index"])
def test_a_per_call_timeout_is_honoured_on_every_path(emulator: EmulatorServer, adapter: str) -> None:
    if adapter == "langchain":
        calls = _langchain_calls(chat_model(emulator, max_retries=0))
    else:
        calls = _llama_calls(llama(emulator, max_retries=0))
    for path, call in calls.items():
        started = time.monotonic()
        with pytest.raises(errors.APITimeoutError):
            call()
        elapsed = time.monotonic() - started
        assert elapsed < 1.5, f"{adapter} {path}: waited {elapsed:.2f} s for a 0.3 s timeout"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout": "fast"}, r"timeout must be a positive number of seconds .* httpx\.Timeout"),
        ({"timeout": -1}, r"timeout must be a positive number of seconds"),
        ({"timeout": {"timeout": 10, "read": 0}}, r"httpx.Timeout whose read=0 is not a positive"),
        ({"timeout": {"conect": 5}}, r"timeout has unknown parts \['conect'\]"),
        ({"base_url": "http://127.0.0.1:99999"}, r"base_url has a port out of range .* 1 to 65535"),
        ({"platform_base_url": "https://h:0"}, r"platform_base_url has a port out of range"),
        ({"proxy": "ftp://proxy"}, r"proxy must be a URL such as http://proxy\.example\.com:3128"),
        ({"proxy": "http://proxy:70000"}, r"proxy has a port out of range"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_accepted_forms(
    emulator: EmulatorServer, fields: dict[str, Any], message: str
) -> None:
    for build in (chat_model, llama):
        with pytest.raises(errors.ConfigurationError, match=message):
            model = build(emulator, **fields)
            # base URLs are checked where the client is built: on first use
            model.client  # type: ignore[union-attr]  # noqa: B018


def test_a_bad_per_call_timeout_is_refused_before_anything_is_sent(emulator: EmulatorServer) -> None:
    before = len(emulator.state.requests)
    with pytest.raises(errors.InvalidRequestError, match=r"timeout \(per call\) must be a positive number"):
        chat_model(emulator).invoke(QUESTION, timeout="fast")
    with pytest.raises(errors.InvalidRequestError, match=r"timeout \(per call\) must be a positive number"):
        llama(emulator).chat(user(), timeout=-2)
    assert len(emulator.state.requests) == before


@pytest.mark.parametrize("adapter", ["langchain", "llama_index"])
def test_the_proxy_field_sends_every_path_through_the_proxy(
    emulator: EmulatorServer, proxy: ForwardProxy, adapter: str
) -> None:
    if adapter == "langchain":
        model = chat_model(emulator, proxy=proxy.url)
        assert model.invoke(QUESTION).content
        assert "".join(str(c.content) for c in model.stream(QUESTION))
        assert model.bind_tools([get_weather]).invoke(WEATHER_QUESTION).tool_calls
        assert asyncio.run(model.ainvoke(QUESTION)).content
    else:
        llm = llama(emulator, proxy=proxy.url)
        assert llm.chat(user()).message.content
        assert list(llm.stream_chat(user()))[-1].message.content
        assert llm.chat(user(WEATHER_QUESTION), tools=[WEATHER]).message.additional_kwargs["usage"]
        assert asyncio.run(llm.achat(user())).message.content
    paths = [request.split()[1] for request in proxy.requests]
    assert len(paths) == 4, proxy.requests
    assert all(path.startswith(emulator.url) for path in paths)
    assert any(path.startswith(emulator.url + COMPLETIONS) for path in paths)


def test_the_proxy_environment_variables_are_honoured_as_httpx_reads_them(
    emulator: EmulatorServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert chat_model(emulator).invoke(QUESTION).content
    assert asyncio.run(llama(emulator).achat(user())).message.content
    assert len(proxy.requests) == 2
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert chat_model(emulator).invoke(QUESTION).content
    assert len(proxy.requests) == 2  # NO_PROXY excluded the emulator's host


def test_proxy_with_an_http_client_of_your_own_is_refused(emulator: EmulatorServer) -> None:
    with httpx.Client() as http, pytest.raises(errors.ConfigurationError, match="set the proxy on your"):
        chat_model(emulator, proxy="http://127.0.0.1:3128", http_client=http).invoke(QUESTION)


# -- 3. usage, model name, finish reasons ----------------------------------------------------


def test_usage_model_name_and_finish_reasons_on_every_langchain_path(emulator: EmulatorServer) -> None:
    model = chat_model(emulator)
    call = model.bind_tools([get_weather]).invoke(WEATHER_QUESTION)
    assert call.usage_metadata and call.usage_metadata["total_tokens"] > 0
    assert call.response_metadata["finish_reason"] == "tool_calls"
    assert call.response_metadata["raw_finish_reason"] == "tool_calls"
    assert call.response_metadata["model_name"]
    structured = model.with_structured_output(Frist, method="json_schema", include_raw=True).invoke(QUESTION)
    raw = structured["raw"]  # type: ignore[index]
    assert isinstance(raw, AIMessage) and raw.usage_metadata and raw.usage_metadata["output_tokens"] > 0
    assert raw.response_metadata["finish_reason"] == "stop"
    assert raw.response_metadata["raw_finish_reason"] == "completed"
    assert raw.response_metadata["model_name"] == "haufe-copilot"
    # the last streamed chunk carries the usage, on the async paths too
    chunks = asyncio.run(_achunks(model.bind(response_format=FORMAT)))
    assert chunks[-1].usage_metadata and chunks[-1].chunk_position == "last"
    tool_chunks = asyncio.run(_achunks(model.bind_tools([get_weather]), WEATHER_QUESTION))
    assert (
        tool_chunks[-1].usage_metadata and tool_chunks[-1].response_metadata["finish_reason"] == "tool_calls"
    )
    # the assistant API reports no usage: none is invented
    answer = model.invoke(QUESTION)
    assert answer.usage_metadata is None and answer.response_metadata["finish_reason"] == "stop"


async def _achunks(runnable: Any, question: str = QUESTION) -> list[Any]:
    return [chunk async for chunk in runnable.astream(question)]


def test_get_usage_metadata_callback_counts_the_json_schema_path(emulator: EmulatorServer) -> None:
    model = chat_model(emulator)
    with get_usage_metadata_callback() as callback:
        model.with_structured_output(Frist, method="json_schema").invoke(QUESTION)
        model.bind_tools([get_weather]).invoke(WEATHER_QUESTION)
    assert set(callback.usage_metadata) >= {"haufe-copilot"}
    assert sum(u["total_tokens"] for u in callback.usage_metadata.values()) > 0


def test_llm_output_is_filled_as_chat_openai_fills_it(emulator: EmulatorServer) -> None:
    model = chat_model(emulator)
    generated = model.generate([[HumanMessage(WEATHER_QUESTION)]], tools=[WEATHER])
    output = generated.llm_output
    assert output is not None and output["model_name"]
    assert output["token_usage"]["total_tokens"] > 0 and set(output["token_usage"]) == {
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
    }
    assistant = model.generate([[HumanMessage(QUESTION)]]).llm_output
    assert assistant is not None and assistant["model_name"] == "haufe-copilot"


def test_llama_index_reports_usage_and_finish_reasons_where_the_api_does(emulator: EmulatorServer) -> None:
    llm = llama(emulator)
    with_tools = llm.chat(user(WEATHER_QUESTION), tools=[WEATHER])
    assert with_tools.additional_kwargs["total_tokens"] > 0  # as llama-index-llms-openai puts them
    assert with_tools.message.additional_kwargs["finish_reason"] == "tool_calls"
    assert with_tools.message.additional_kwargs["model"]
    structured = llm.chat(user(), response_format=FORMAT)
    assert structured.additional_kwargs["total_tokens"] > 0
    kwargs = structured.message.additional_kwargs
    assert (kwargs["finish_reason"], kwargs["raw_finish_reason"], kwargs["model"]) == (
        "stop",
        "completed",
        "haufe-copilot",
    )
    last = list(llm.stream_chat(user(), response_format=FORMAT))[-1]
    assert last.additional_kwargs["total_tokens"] > 0
    assert llm.chat(user()).additional_kwargs.get("total_tokens") is None  # the assistant API: no usage


# -- 1. profile and metadata --------------------------------------------------------------------


def test_the_profile_and_the_llama_index_metadata_say_the_same(emulator: EmulatorServer) -> None:
    profile = chat_model(emulator).profile
    assert profile is not None
    assert profile["tool_calling"] and profile["tool_choice"] and profile["structured_output"]
    assert not any(profile[k] for k in ("image_inputs", "audio_inputs", "pdf_inputs", "video_inputs"))
    assert "max_input_tokens" not in profile and "max_output_tokens" not in profile  # not published
    assert dict(profile) == dict(CAPABILITIES)
    metadata = llama(emulator).metadata
    assert metadata.is_function_calling_model is profile["tool_calling"] and metadata.is_chat_model


def test_create_agent_chooses_native_structured_output_from_the_profile(emulator: EmulatorServer) -> None:
    from langchain.agents import create_agent

    before = len(emulator.state.requests)
    agent = create_agent(chat_model(emulator), tools=[], response_format=Frist)
    result = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]})
    assert isinstance(result["structured_response"], Frist)
    # the provider strategy (the profile says structured_output): the async-streams API, no tool call
    paths = [r.path for r in list(emulator.state.requests)[before:]]
    assert paths[0] == STREAMS and COMPLETIONS not in paths


# -- 2. token counting ----------------------------------------------------------------------------


def test_token_counting_works_without_transformers(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # an import of it fails, as uninstalled
    model = chat_model(emulator)
    assert model.get_num_tokens(QUESTION) == estimate_tokens(QUESTION) > 5
    history = [SystemMessage("Du bist ein Assistent."), HumanMessage(QUESTION), AIMessage("Zwei Wochen.")]
    total = model.get_num_tokens_from_messages(history)
    assert total > sum(model.get_num_tokens(str(m.content)) for m in history)
    assert model.get_num_tokens_from_messages(history, tools=[get_weather]) > total
    trimmed = trim_messages(history, max_tokens=total - 3, token_counter=model, strategy="last")
    assert 0 < len(trimmed) < len(history)
    exact = chat_model(emulator, custom_get_token_ids=lambda text: list(range(len(text.split()))))
    assert exact.get_num_tokens("eins zwei drei") == 3
    llm = llama(emulator)
    assert llm.count_tokens(QUESTION) == estimate_tokens(QUESTION)
    assert len(llm.tokenizer_fn(QUESTION)) == llm.count_tokens(QUESTION)
    assert llama(emulator, tokenizer=str.split).count_tokens("eins zwei drei") == 3
    from llama_index.core.memory import ChatMemoryBuffer

    memory = ChatMemoryBuffer.from_defaults(token_limit=20, tokenizer_fn=llm.tokenizer_fn)
    for text in ("eins " * 30, QUESTION):
        memory.put(ChatMessage(role="user", content=text))
    assert [m.content for m in memory.get()] == [QUESTION]


# -- 5. serialisation and copies -------------------------------------------------------------------

HEADER_SECRET = "hs-" + "9f2c41d0e8b7"


def test_dumps_and_loads_round_trip_every_constructor_value(
    emulator: EmulatorServer, proxy: ForwardProxy
) -> None:
    fields: dict[str, Any] = {
        "timeout": httpx.Timeout(3.0, read=7.0),
        "proxy": proxy.url,
        "default_headers": {"Ocp-Apim-Subscription-Key": HEADER_SECRET, "x-trace": "1"},
        "model_kwargs": {"n": 1},
        "temperature": 0.1,
        "max_tokens": 50,
        "stop_sequences": ["ENDE"],
        "model": "haufe-copilot-large",
        "user_id": "u-1",
        "max_retries": 4,
        "stateless": True,
    }
    model = chat_model(emulator, **fields)
    text = dumps(model)
    assert HEADER_SECRET not in text and SESSION_API_KEY not in text
    loaded = loads(
        text,
        secrets_map={
            "HAUFE_COPILOT_API_KEY": SESSION_API_KEY,
            "HAUFE_COPILOT_HEADER_OCP_APIM_SUBSCRIPTION_KEY": HEADER_SECRET,
        },
        valid_namespaces=["langchain_haufe"],
        allowed_objects=[ChatHaufeCopilot],
    )
    assert isinstance(loaded, ChatHaufeCopilot)
    for name in ("timeout", "proxy", "default_headers", "model_kwargs", "temperature", "max_tokens"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert (loaded.stop, loaded.model_name, loaded.user_id, loaded.max_retries) == (
        ["ENDE"],
        "haufe-copilot-large",
        "u-1",
        4,
    )
    # through the proxy, with the header and every body field, to the emulator
    assert loaded.bind_tools([get_weather]).invoke(WEATHER_QUESTION).tool_calls
    body = emulator.state.bodies(COMPLETIONS)[-1]
    assert (body["n"], body["temperature"], body["stop"], body["model"]) == (
        1,
        0.1,
        ["ENDE"],
        "haufe-copilot-large",
    )
    assert proxy.requests and emulator.state.requests[-1].headers["ocp-apim-subscription-key"] == "<redacted>"
    # LlamaIndex: to_json / from_json keep every value but the credentials (those are redacted)
    llm = llama(emulator, timeout=httpx.Timeout(3.0, read=7.0), proxy="http://127.0.0.1:3128", top_p=0.5)
    restored = HaufeCopilot.from_json(llm.to_json())
    assert (restored.timeout, restored.proxy, restored.top_p) == (llm.timeout, llm.proxy, 0.5)


def test_credential_headers_are_redacted_wherever_the_model_is_shown(
    emulator: EmulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    # (Authorization and api-key are the client's own: default_headers may not set them)
    headers = {"Cookie": "session=" + HEADER_SECRET, "x-session-token": HEADER_SECRET, "x-trace": "1"}
    model = chat_model(emulator, default_headers=headers)
    seen: list[Any] = []

    class Serialized(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            seen.append(serialized)
            seen.append(kwargs.get("invocation_params"))

    caplog.set_level(logging.DEBUG)
    model.invoke(QUESTION, config={"callbacks": [Serialized()]})
    llm = llama(emulator, default_headers=headers)
    llm.chat(user())
    shown = [repr(model), model.model_dump(), dumpd(model), dumps(model), seen, caplog.text]
    shown += [repr(llm), llm.to_dict(), llm.to_json()]
    for text in map(str, shown):
        assert HEADER_SECRET not in text
    assert (
        model.model_dump()["default_headers"]
        == llm.to_dict()["default_headers"]
        == {
            "Cookie": "<redacted>",
            "x-session-token": "<redacted>",
            "x-trace": "1",
        }
    )
    assert "x-trace" in repr(model) and "x-trace" in repr(llm)
    # the headers were sent, in clear, to the server (the emulator records them redacted)
    assert emulator.state.requests[-1].headers.get("x-session-token") == "<redacted>"


@pytest.mark.parametrize("adapter", ["langchain", "llama_index"])
def test_a_model_with_its_own_http_clients_pickles_and_deep_copies(
    emulator: EmulatorServer, adapter: str, caplog: pytest.LogCaptureFixture
) -> None:
    build = chat_model if adapter == "langchain" else llama
    with httpx.Client() as http:
        http_async = httpx.AsyncClient()
        model: Any = build(emulator, http_client=http, http_async_client=http_async)
        for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert twin.http_client is http and twin.http_async_client is http_async

        # a token provider that cannot be pickled is still shared by a deep copy
        def provider() -> str:
            return SESSION_API_KEY

        with_provider = model.model_copy(update={"token_provider": provider})
        assert copy.deepcopy(with_provider).token_provider is provider
        assert "cannot be pickled" not in caplog.text
        twin = pickle.loads(pickle.dumps(model))
        if adapter == "langchain":
            assert twin.invoke(QUESTION).content
        else:
            assert twin.chat(user()).message.content
        assert "not in this process" not in caplog.text
        # In another process the client cannot exist: the twin opens its own, and says so.
        script = (
            "import logging, pickle, sys; logging.basicConfig(level=logging.WARNING); "
            "m = pickle.loads(sys.stdin.buffer.read()); "
            "print(m.http_client is None, m.http_async_client is None, m.max_retries)"
        )
        done = subprocess.run(
            [sys.executable, "-c", script], input=pickle.dumps(model), capture_output=True, check=True
        )
        assert done.stdout.split() == [b"True", b"True", b"2"]
        assert b"is not in this process" in done.stderr
        asyncio.run(http_async.aclose())


# -- 6. one behaviour for one mistake ------------------------------------------------------------


def test_a_missing_assistant_is_the_same_error_in_both_adapters(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAUFE_COPILOT_ASSISTANT_ID", raising=False)
    raised = []
    for call in (
        lambda: chat_model(emulator, assistant_id=None).invoke(QUESTION),
        lambda: llama(emulator, assistant_id=None).chat(user()),
    ):
        with pytest.raises(errors.ConfigurationError, match="HAUFE_COPILOT_ASSISTANT_ID") as info:
            call()
        raised.append(type(info.value))
    assert raised[0] is raised[1] and issubclass(raised[0], errors.InvalidRequestError)


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        (None, "auto"),
        ("auto", "auto"),
        ("none", "none"),
        ("any", "required"),
        ("required", "required"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_goes_out_the_same_from_both_adapters(
    emulator: EmulatorServer, given: Any, sent: Any
) -> None:
    assert tool_choice_for_api(given, ["get_weather"]) == sent
    chat_model(emulator).bind_tools([WEATHER], tool_choice=given).invoke(WEATHER_QUESTION)
    from_langchain = emulator.state.bodies(COMPLETIONS)[-1].get("tool_choice", "auto")
    llm = llama(emulator)
    prepared = llm._prepare_chat_with_tools([WEATHER], user_msg=WEATHER_QUESTION, tool_choice=given)
    llm.chat(**prepared)
    from_llama_index = emulator.state.bodies(COMPLETIONS)[-1]["tool_choice"]
    assert from_langchain == from_llama_index == sent


def test_an_unknown_tool_choice_is_the_same_error_in_both_adapters(emulator: EmulatorServer) -> None:
    with pytest.raises(errors.InvalidRequestError, match=r"one of the bound tools \['get_weather'\]"):
        chat_model(emulator).bind_tools([WEATHER], tool_choice="get_wether")
    with pytest.raises(errors.InvalidRequestError, match=r"one of the bound tools \['get_weather'\]"):
        llama(emulator).chat(user(WEATHER_QUESTION), tools=[WEATHER], tool_choice="get_wether")
