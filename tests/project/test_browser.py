"""The FastAPI example in a real browser: Debian's chromium, headless, driven over the DevTools
protocol, loads the page, types a question, submits it, and sees the streamed answer and its
footnotes appear in the DOM; a follow-up continues the same server thread.

The emulator and the app (`examples/fastapi_sse_app.py`, uvicorn in a thread) run on free
loopback ports. Chromium is required: `make test` installs it (scripts/system-packages); where
it is missing this test fails and says so, it does not skip. `CHROMIUM=/path/to/chrome` picks
another binary.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.sync.client import ClientConnection, connect

from haufe_emulator import EmulatorServer
from langchain_haufe import ChatHaufeCopilot
from tests.conftest import ASSISTANT_ID, SESSION_API_KEY

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_sse_app.py"
QUESTION = "Wie viele Urlaubstage stehen mir zu?"
FOLLOW_UP = "Gilt das auch für Minijobber?"


def chromium_binary() -> str:
    candidates = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    for candidate in candidates:
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.fail(
        "No chromium found: this test drives a real headless browser. Install Debian's chromium "
        "(apt-get install -y chromium; make test does it as root) or set CHROMIUM=/path/to/chrome."
    )


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_sse_app_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app_url(emulator: EmulatorServer) -> Iterator[str]:
    """The example app on a free loopback port, in a thread, asking the session's emulator."""
    model = ChatHaufeCopilot(api_key=SESSION_API_KEY, base_url=emulator.url, assistant_id=ASSISTANT_ID)
    app = load_example().create_app(model)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class DevTools:
    """Just enough of the Chrome DevTools protocol: commands on one page, in order."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.last_id = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        self.websocket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.websocket.recv(timeout=30))
            if message.get("id") == self.last_id:  # anything else is an event: not needed here
                assert "error" not in message, f"{method}: {message['error']}"
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(
            f"not in the page within {timeout} s: {expression}\n{self.evaluate('document.body.innerText')}"
        )

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre."""
        x, y = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        self.send("Input.insertText", text=text)  # as typed: input events, no script setting .value


@pytest.fixture
def page(tmp_path: Path) -> Iterator[DevTools]:
    """A headless chromium with one blank page, driven over the DevTools protocol."""
    profile = tmp_path / "profile"
    log = (tmp_path / "chromium.log").open("w")
    process = subprocess.Popen(
        [
            chromium_binary(),
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group: renderers and all end with it
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert process.poll() is None, "chromium exited:\n" + (tmp_path / "chromium.log").read_text()
            assert time.monotonic() < deadline, "chromium did not open its DevTools port in 30 s"
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        (target,) = [t for t in targets if t["type"] == "page"]
        with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as websocket:
            devtools = DevTools(websocket)
            devtools.send("Runtime.enable")
            yield devtools
            devtools.send("Browser.close")
    finally:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def ask(page: DevTools, question: str) -> dict[str, Any]:
    """Type the question, click the button, wait until the page says the answer is complete."""
    page.evaluate("document.body.dataset.state = ''")
    page.type_into("#question", question)
    page.click("#send")
    page.wait_for("document.body.dataset.state === 'done' || document.body.dataset.state === 'error'")
    state: dict[str, Any] = page.evaluate(
        """({
          state: document.body.dataset.state,
          answer: document.getElementById("answer").textContent,
          appended: window.appended,
          marks: [...document.querySelectorAll("#answer sup")].map(s => s.textContent),
          footnotes: [...document.querySelectorAll("#footnotes li")]
            .map(li => [li.value, li.textContent, li.title]),
          status: document.getElementById("status").textContent,
        })"""
    )
    return state


def test_the_browser_shows_the_streamed_answer_and_its_footnotes(page: DevTools, app_url: str) -> None:
    page.send("Page.navigate", url=app_url + "/")
    page.wait_for("document.readyState === 'complete' && !!document.getElementById('question')")
    assert page.evaluate("document.title") == "Haufe Copilot"
    # count the pieces appended to the answer: each streamed token arrives as its own text node
    page.evaluate(
        """window.appended = 0;
        new MutationObserver(records => { for (const r of records) window.appended += r.addedNodes.length; })
          .observe(document.getElementById("answer"), {childList: true});"""
    )

    first = ask(page, QUESTION)
    assert first["state"] == "done", first
    assert first["answer"].startswith(
        "Nach § 3 BUrlG beträgt der gesetzliche Mindesturlaub jährlich 24 Werktage"
    ), first
    assert first["appended"] > 20  # token by token, not one block
    numbers = [n for n, _, _ in first["footnotes"]]
    assert numbers == list(range(1, len(numbers) + 1)) and 3 <= len(numbers) <= 5
    assert first["footnotes"][0][1] == "Bundesurlaubsgesetz (BUrlG), § 3"
    assert first["footnotes"][0][2].startswith(
        "§ 3 BUrlG: (1) Der Urlaub beträgt jährlich mindestens 24 Werktage"
    )
    assert first["marks"] == [f"[{n}]" for n in numbers]
    assert first["answer"].endswith("".join(first["marks"]))
    assert first["status"].startswith("Thread ") and first["status"].endswith("(new)")
    thread = first["status"].split()[1]

    # a follow-up in the same page continues the same server thread
    second = ask(page, FOLLOW_UP)
    assert second["state"] == "done" and second["footnotes"], second
    assert second["status"] == f"Thread {thread} (named)"
    assert page.evaluate("document.getElementById('question').value") == FOLLOW_UP


def test_a_missing_chromium_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium_binary()
