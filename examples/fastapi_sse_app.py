"""A small FastAPI app that streams Haufe Copilot's answers to a browser as Server-Sent Events,
with the sources as numbered footnotes.

- `GET /` serves one HTML page (no external assets). Its script posts the question to `/ask`
  and reads the SSE answer with `fetch` and a stream reader, appending the text as it arrives and
  then the footnotes; it sends the thread id back with the next question, so a follow-up
  continues the conversation on the server.
- `POST /ask` (`{"question": ..., "thread_id": ...}`) answers `text/event-stream`: `token`
  events (`{"text"}`), one `sources` event (`[{"n", "title", "section", "content"}]`), then `done`
  (`{"thread_id", "thread_action"}`), or `error` (`{"message"}`).

    python examples/fastapi_sse_app.py [--port 8000]     # then open http://127.0.0.1:8000

One `ChatHaufeCopilot` serves every request: it holds no conversation; the thread id is the
browser's. Talks to HAUFE_COPILOT_BASE_URL with HAUFE_COPILOT_API_KEY (and
HAUFE_COPILOT_ASSISTANT_ID) when the key is set; otherwise it starts the local emulator
in-process (EmulatorServer).
"""

from __future__ import annotations

import argparse
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, Field

from haufe_copilot import HaufeCopilotError
from langchain_haufe import ChatHaufeCopilot


class Question(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    thread_id: str | None = None


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event; JSON data is a single line, so one `data:` field suffices."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(model: ChatHaufeCopilot) -> FastAPI:
    app = FastAPI(title="Haufe Copilot SSE example")

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.post("/ask")
    async def ask(question: Question) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            final: dict[str, Any] = {}
            try:
                # thread_id names the server thread to continue (None: a new one).
                async for chunk in model.astream(
                    [HumanMessage(question.question)], thread_id=question.thread_id
                ):
                    if chunk.content:
                        yield sse("token", {"text": chunk.content})
                    if chunk.response_metadata.get("thread_id"):  # the last chunk: metadata, sources
                        final = chunk.response_metadata
            except HaufeCopilotError as exc:
                yield sse("error", {"message": f"{type(exc).__name__}: {exc}"})
                return
            footnotes = [
                {
                    "n": n,
                    "title": source["meta_data"].get("document_title") or "Quelle",
                    "section": source["meta_data"].get("section") or "",
                    "content": source.get("content", ""),
                }
                for n, source in enumerate(final.get("sources") or [], start=1)
            ]
            yield sse("sources", footnotes)
            yield sse(
                "done", {"thread_id": final.get("thread_id"), "thread_action": final.get("thread_action")}
            )

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    return app


PAGE = """<!doctype html>
<html lang="de">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Haufe Copilot</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
  form { display: flex; gap: .5rem; }
  input { flex: 1; padding: .5rem; font: inherit; }
  button { padding: .5rem 1rem; font: inherit; }
  #answer { white-space: pre-wrap; margin-top: 1.5rem; min-height: 1.5em; }
  #footnotes { font-size: .9em; color: #555; }
  #footnotes li { margin: .2rem 0; }
  #status { font-size: .8em; color: #888; }
</style>
</head>
<body>
<h1>Haufe Copilot</h1>
<form id="ask">
  <input id="question" name="question" autocomplete="off" required
         placeholder="Welche Kündigungsfristen gelten während der Probezeit?">
  <button id="send" type="submit">Fragen</button>
  <button id="new" type="button" title="Eine neue Unterhaltung beginnen">Neu</button>
</form>
<div id="answer" aria-live="polite"></div>
<ol id="footnotes"></ol>
<p id="status"></p>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let threadId = null;

$("new").addEventListener("click", () => {
  threadId = null;
  $("answer").textContent = "";
  $("footnotes").replaceChildren();
  $("status").textContent = "Neue Unterhaltung";
});

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("answer").textContent = "";
  $("footnotes").replaceChildren();
  $("status").textContent = "…";
  $("send").disabled = true;
  try {
    const response = await fetch("/ask", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Accept": "text/event-stream"},
      body: JSON.stringify({question, thread_id: threadId}),
    });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\\n\\n")) >= 0) {
        handle(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (error) {
    $("status").textContent = "Fehler: " + error.message;
  } finally {
    $("send").disabled = false;
  }
});

function handle(frame) {
  let name = "message", data = "";
  for (const line of frame.split("\\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trimStart();
  }
  const payload = JSON.parse(data);
  if (name === "token") {
    $("answer").append(payload.text);            // text nodes: nothing from the server is HTML
  } else if (name === "sources") {
    for (const source of payload) {
      const item = document.createElement("li");
      item.id = "fn" + source.n;
      item.value = source.n;
      item.textContent = source.title + (source.section ? ", " + source.section : "");
      item.title = source.content;
      $("footnotes").append(item);
      const mark = document.createElement("sup");
      mark.textContent = "[" + source.n + "]";
      $("answer").append(mark);
    }
  } else if (name === "done") {
    threadId = payload.thread_id;
    $("status").textContent = "Thread " + payload.thread_id + " (" + payload.thread_action + ")";
    document.body.dataset.state = "done";
  } else if (name === "error") {
    $("status").textContent = "Fehler: " + payload.message;
    document.body.dataset.state = "error";
  }
}
</script>
</body>
</html>
"""


def main() -> None:
    from _haufe import haufe_copilot  # the examples' helper: the configured service or an emulator

    parser = argparse.ArgumentParser(description="Serve the SSE example app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    with haufe_copilot() as conn:
        app = create_app(ChatHaufeCopilot(**conn.settings()))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        # Listening before the URL is printed: a browser (or a test) that connects at once waits in
        # the backlog until uvicorn has started, instead of being refused.
        sock.listen(128)
        host, port = sock.getsockname()[:2]
        print(f"Open http://{host}:{port} in a browser (Ctrl-C stops)", flush=True)
        try:
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
        finally:
            sock.close()


if __name__ == "__main__":
    main()
