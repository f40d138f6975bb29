"""``inferbench ui``: a local page to plan and evaluate from forms and to explore sweep stores.

One process serves the page and answers its queries: it keeps JAX and every program it
compiled, so a query after the first of its kind answers in a fraction of a second (the
resident engine of ``inferbench daemon``, with a page in front). Queries run the command
line's own ``plan`` and ``evaluate`` (``--json``), so the page shows what the commands print
and refuses what they refuse, in their words. The page and its script are one file of the
package (``ui.html``): nothing is fetched from elsewhere.

Only this machine can reach it (127.0.0.1), only with the token in the URL it prints (a page
of another site cannot post to it), and only stores it was given or finds under ``results/``
are read.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import secrets
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from dse import analysis, cli, sweep
from dse.specs import SpecError, hardware_ids, model_ids, use_cases

PAGE = Path(__file__).with_name("ui.html")
RESULTS = Path("results")

# Form fields → command-line flags (the only arguments a query can pass).
PLAN_FIELDS = {
    "model": "--model", "hardware": "--hardware", "max_chips": "--max-chips", "use_case": "--use-case",
    "prompt_tokens": "--prompt-tokens", "output_tokens": "--output-tokens", "ttft_ms": "--ttft-ms",
    "tpot_ms": "--tpot-ms", "objective": "--objective", "dtype": "--dtype", "framework": "--framework",
}  # fmt: skip
EVALUATE_FIELDS = {
    "model": "--model", "hardware": "--hardware", "tp": "--tp", "pp": "--pp", "batch": "--batch",
    "phase": "--phase", "prompt_tokens": "--prompt-tokens", "output_tokens": "--output-tokens",
    "context": "--context", "dtype": "--dtype", "batching": "--batching", "chunk_tokens": "--chunk-tokens",
}  # fmt: skip
COMMANDS = {"plan": PLAN_FIELDS, "evaluate": EVALUATE_FIELDS}


class Explorer:
    """What the page asks, answered in this process (one query at a time: the engine's)."""

    def __init__(self, stores: list[Path]):
        self.stores = stores
        self.lock = threading.Lock()

    def catalog(self) -> dict[str, Any]:
        return {
            "models": model_ids(),
            "hardware": hardware_ids(),
            "use_cases": list(use_cases()),
            "objectives": list(analysis.OBJECTIVES),
            "stores": [str(p) for p in self.known_stores()],
        }

    def known_stores(self) -> list[Path]:
        found = sorted(RESULTS.glob("*.zarr")) if RESULTS.is_dir() else []
        out = []
        for p in [*self.stores, *found]:
            if p not in out and sweep.store_state(p)[0] == "complete":
                out.append(p)
        return out

    def store(self, path: str) -> Path:
        p = Path(path)
        if p not in self.known_stores():
            raise SpecError(f"store '{path}': expected one of {', '.join(map(str, self.known_stores())) or 'none'}")
        return p

    def command(self, name: str, fields: dict[str, Any]) -> Any:
        """``inferbench NAME --json`` with the form's fields: its JSON, or its one-line error."""
        flags = COMMANDS[name]
        argv = [name, "--json"]
        for key, value in fields.items():
            if key not in flags:
                raise SpecError(f"{name}: unknown field '{key}': expected one of {', '.join(flags)}")
            if str(value).strip():
                argv += [flags[key], str(value).strip()]
        out, err = io.StringIO(), io.StringIO()
        with self.lock, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
        if code != 0:
            lines = [ln for ln in err.getvalue().splitlines() if ln.startswith("inferbench: error:")]
            raise SpecError((lines[-1] if lines else err.getvalue().strip()).removeprefix("inferbench: error: "))
        return {"result": json.loads(out.getvalue()), "warnings": err.getvalue().strip()}

    def answer(self, path: str, query: dict[str, str], body: dict[str, Any]) -> Any:
        if path == "/api/catalog":
            return self.catalog()
        if path in ("/api/plan", "/api/evaluate"):
            return self.command(path.rsplit("/", 1)[1], body)
        if path == "/api/store":
            with self.lock:
                return analysis.store_summary(self.store(query["path"]))
        if path == "/api/points":
            cons = [c for c in query.get("constraints", "").split(",") if c.strip()]
            with self.lock:
                return analysis.store_points(self.store(query["path"]), query["x"], query["y"], cons or None)
        if path == "/api/design":
            with self.lock:
                return analysis.design_levels(self.store(query["path"]), int(query["index"]))
        raise SpecError(f"{path}: no such query")


def make_server(explorer: Explorer, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """A server on 127.0.0.1 (``port`` 0: any free one) and the URL of its page (with its token)."""
    token = secrets.token_urlsafe(16)
    page = PAGE.read_text(encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass  # quiet: the terminal shows the URL and errors only

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _handle(self, body: dict[str, Any]) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            host = (self.headers.get("Host") or "").split(":")[0]
            if host not in ("127.0.0.1", "localhost"):  # a rebound name is not this machine's page
                return self._send(403, b"forbidden", "text/plain")
            if url.path == "/":
                if query.get("token") != token:
                    return self._send(403, b"open the URL inferbench ui printed (it carries a token)", "text/plain")
                return self._send(200, page.replace("__TOKEN__", token).encode(), "text/html; charset=utf-8")
            if self.headers.get("X-InferBench-Token") != token:
                return self._send(403, b"forbidden", "text/plain")
            try:
                reply = {"ok": explorer.answer(url.path, query, body)}
            except (SpecError, KeyError, ValueError) as e:
                text = str(e) if isinstance(e, SpecError) else f"missing or bad parameter: {e}"
                reply = {"error": text.splitlines()[0] if text else type(e).__name__}
            self._send(200, json.dumps(reply, default=float).encode(), "application/json")

        def do_GET(self) -> None:
            self._handle({})

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(min(size, 1 << 16)) or b"{}")
            except ValueError:
                body = {}
            self._handle(body if isinstance(body, dict) else {})

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server, f"http://127.0.0.1:{server.server_address[1]}/?token={token}"


def cmd_ui(args: argparse.Namespace) -> int:
    stores = [Path(s) for s in args.store or []]
    for s in stores:
        if sweep.store_state(s)[0] != "complete":
            raise SpecError(f"--store {s}: not a finished sweep store: expected a folder written by inferbench sweep")
    explorer = Explorer(stores)
    try:
        server, url = make_server(explorer, int(args.port))
    except OSError as e:
        raise SpecError(f"--port {args.port}: cannot listen on it ({e.strerror}): expected a free port or 0") from None
    print(f"InferBench explorer at {url}  (Ctrl-C stops it)", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "ui",
        help="a local page: plan and evaluate from forms, explore sweep stores",
        description="Serve a page on 127.0.0.1 (no network access, nothing fetched from elsewhere) that runs plan "
        "and evaluate from forms, draws the throughput-per-chip vs tokens/s-per-user curve, and explores a sweep "
        "store: filter by constraints, the Pareto front of two metrics, a hovered design at the three levels. "
        "Example: inferbench ui --store results/decode_batch.zarr --open",
    )
    s.add_argument("--port", default="8765", help="port on 127.0.0.1 (default 8765; 0: any free port)")
    s.add_argument("--store", action="append", help="a sweep store to explore (repeatable; results/*.zarr are found)")
    s.add_argument("--open", action="store_true", help="open the page in the default browser")
    s.set_defaults(func=cmd_ui)
