"""The fault matrix: every error of SPEC §2 and every transport fault, crossed with the ways to call.

The matrix is data. `faults.FAULTS` says how each fault is produced (by the emulator's
`x-emulator-*` headers, or by a small raw-socket server for what the emulator cannot do: a reset
before the status line, a blocking answer that is not JSON; or a port where nothing listens) and
what the client must do about it (the exception class, `error_code`, status, whether it is
retried, what the server asks to wait). `faults.CELLS` crosses it:

- core: every fault x {blocking, streaming} x {sync, async} on the assistant API;
- adapters: for each error class, one propagation check per adapter (LangChain
  `ChatHaufeCopilot`, LlamaIndex `HaufeCopilot`) x {blocking, streaming} x {sync, async};
- the thread rule: a core request that continues a thread is retried only where the server
  cannot have taken it (a refused connection, 429); an adapter whose continuation fails opens a
  new thread with the whole history, once;
- the platform APIs: scripted raw answers where a replay would run a completion twice or start a
  second stream, and where a stream must reach its end.

`runner.run_cell(cell, env)` runs one cell against a running emulator and returns a `CellResult`:
what was observed (the exception's class, `error_code` and status, the attempts (counted on the
server; on the client where nothing listens), the waits between them (announced by the client and
measured with `time.monotonic()`), the text delivered before the error and the error's `partial`,
the connections left open (sockets and pool, see `probes`), and asyncio's complaints) and what
`judges` made of it: pass or fail, and the problems. `report` turns the results into tables;
`tests/reliability/test_reliability_matrix.py` parametrizes pytest over the cells, and
`python -m tests.reliability.matrix --write docs/reliability.md` (`__main__`) runs them all,
prints the table with its totals and writes it into the document.
"""
