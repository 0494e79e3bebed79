"""`python -m newsrec bench load`: many readers at once against the dashboard, through gradio_client.

Each of `--concurrency` workers is one browser session (its own gradio_client Client): it opens the page
(the load event fills the session's reader picker and runs a first feed), picks a reader, then runs
recommendations (half "For you" feeds, half queries) until `--requests` calls have been made in all.
Reported: errors (with the first few messages), latency p50/p95/p99 of those calls, throughput, and the
app's memory (resident set of the app process and its children) at the start, the peak and the end, plus
the growth over the second half of the run (levelling off shows as ~0). Without `--url` the command starts
`python app.py` on a free port, waits for it, and stops it afterwards.

With `--writers N` the run has two phases of the same load, measured one after the other: without writers,
then while N concurrent `ingest` runs (`--writer-items` synthetic items each, distinct ids) and one
`index --rebuild` write to the served corpus from other processes (newsrec/bench/writers.py), started at the app's
CPU priority unless `--writer-nice` lowers theirs (the commands lower their own to NEWSREC_BATCH_NICE). Both phases'
figures are reported, with p95 under writers / p95 without, and the corpus and index are compared with the union
of all writes afterwards. Without `--url` the started app serves `--corpus` (created with 200 items if missing).
The started app notes each switch to the writers' state (NEWSREC_SWITCH_LOG, newsrec/follow.py): the figures say
how many, what they cost, and p95 of the requests that overlapped one against the rest; with `--json` also the
timeline (every request's start and end, every switch with its phases).

Endpoints are found by name in the app's API (`/on_load`, `/on_user`, `/on_run` by default), and their
arguments are filled from the API's own parameter defaults, so the benchmark follows the page as it changes.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from newsrec.config import REPO_ROOT
from newsrec.errors import InputError

log = logging.getLogger(__name__)

SWITCH_LOG = "switches.jsonl"
QUERIES = ["", "solid-state battery", "", "NBA最新战况", "", "apple harvest", "", "central bank rates"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("load", help="concurrent dashboard sessions: errors, latency, app memory")
    parser.add_argument("--concurrency", type=int, default=30, help="simultaneous sessions (default 30)")
    parser.add_argument("--requests", type=int, default=500, help="recommend calls in all (default 500)")
    parser.add_argument("--url", help="a running app (default: start `python app.py` on a free port)")
    parser.add_argument("--pid", type=int, help="with --url: the app's process id, to sample its memory")
    parser.add_argument("--load-api", default="/on_load", help="endpoint of the page's load event")
    parser.add_argument("--user-api", default="/on_user", help="endpoint that picks the reader")
    parser.add_argument("--run-api", default="/on_run", help="endpoint that runs a recommendation")
    parser.add_argument("--startup-timeout", type=float, default=600, help="seconds to wait for a started app")
    parser.add_argument(
        "--writers", type=int, default=0, help="a second phase under N concurrent ingests + one index --rebuild"
    )
    parser.add_argument("--writer-items", type=int, default=150, help="synthetic items per writer ingest")
    parser.add_argument(
        "--writer-nice",
        type=int,
        default=0,
        help="start the writers at this CPU niceness (0-19; default 0, the app's); `ingest` and `index` then lower "
        "their own to NEWSREC_BATCH_NICE (default 10; set it to 0 for writers at the app's priority)",
    )
    parser.add_argument("--corpus", default="loadbench", help="with --writers: the served corpus (default loadbench)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_load)


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    started_at: list[float] = field(default_factory=list)  # when each timed call began, on the run's clock
    # every timed call: (start, end) on the run's clock, ok; errors included, in the order they ended
    timeline: list[tuple[float, float, bool]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    memory: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_load(args: argparse.Namespace) -> int:
    if args.concurrency < 1 or args.requests < 1:
        raise InputError("--concurrency and --requests must be at least 1")
    if args.writers < 0 or args.writer_items < 1:
        raise InputError("--writers must be 0 or more and --writer-items at least 1")
    if not 0 <= args.writer_nice <= 19:
        raise InputError("--writer-nice must be between 0 and 19")
    app = None
    url, pid = args.url, args.pid
    workdir = tempfile.TemporaryDirectory(prefix="newsrec-load-")
    seeded: set[str] = set()
    env = {}
    if args.writers:
        from newsrec.bench import writers
        from newsrec.config import Settings

        seeded = writers.seed_corpus(Settings.from_env(), args.corpus, Path(workdir.name))
        env["NEWSREC_CORPUS"] = args.corpus
        # the started app notes each switch to another writer's state here (newsrec/follow.py)
        env["NEWSREC_SWITCH_LOG"] = str(Path(workdir.name) / SWITCH_LOG)
    if not url:
        app, url = _start_app(args.startup_timeout, env)
        pid = app.pid
    try:
        figures = measure(url, pid, args) if not args.writers else measure_with_writers(url, pid, args, seeded, workdir)
    finally:
        workdir.cleanup()
        if app is not None:
            app.terminate()
            try:
                app.wait(timeout=30)
            except subprocess.TimeoutExpired:
                app.kill()
    if args.json:
        from newsrec.bench import print_json

        print_json(figures)
    else:
        from rich.console import Console

        Console().print(figures)
    if args.writers:
        failed = figures["errors"] or figures["writers_failed"] or not figures["counts"]["nothing_lost"]
        return 1 if failed else 0
    return 0 if not figures["errors"] else 1


def _endpoints(url: str, args: argparse.Namespace) -> tuple[dict, list[str]]:
    """The app's named endpoints and its readers (after an untimed warm-up visit, which waits for the app's first
    index build and model load, like a first visitor would)."""
    from gradio_client import Client

    probe = Client(url, verbose=False, httpx_kwargs=_client_timeouts())
    api = probe.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in (args.load_api, args.user_api, args.run_api):
        if name not in api:
            raise InputError(f"the app has no endpoint {name}; it has: {', '.join(sorted(api))}")
    return api, _open_page(probe, api, args) or ["guest"]


def measure(url: str, pid: int | None, args: argparse.Namespace) -> dict:
    api, users = _endpoints(url, args)
    result = LoadResult()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_memory, args=(pid, result, stop), daemon=True)
    started = time.perf_counter()
    sampler.start()
    _phase(url, api, users, args, result, started)
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join(timeout=5)
    return _figures(result, seconds, args)


def measure_with_writers(url: str, pid: int | None, args: argparse.Namespace, seeded: set[str], workdir) -> dict:
    """Phase 1: the load alone. Phase 2: the same load while the writers run. Then the nothing-lost check."""
    from newsrec.bench import writers
    from newsrec.config import Settings

    folder = Path(workdir.name)
    api, users = _endpoints(url, args)
    quiet = LoadResult()
    clock = time.perf_counter()
    _phase(url, api, users, args, quiet, clock)
    quiet_seconds = time.perf_counter() - clock

    busy = LoadResult()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_memory, args=(pid, busy, stop), daemon=True)
    plan = writers.plan(args.corpus, args.writers, args.writer_items, folder)
    switch_log = folder / SWITCH_LOG
    switch_log.unlink(missing_ok=True)  # the quiet phase's switches (none expected) are not the writers'
    clock, wall_zero = time.perf_counter(), time.time()
    sampler.start()
    watchers: list[threading.Thread] = []

    # The writers start once every session has opened its page, with the first timed request, so they overlap
    # the timed requests and not only the (untimed) page openings.
    def start_writers() -> None:
        watchers.extend(writers.start(plan, folder, clock, nice=args.writer_nice))

    _phase(url, api, users, args, busy, clock, on_ready=start_writers)
    busy_seconds = time.perf_counter() - clock
    writers.wait(watchers)
    stop.set()
    sampler.join(timeout=5)

    first, last = writers.running_span(plan)
    during = [lat for lat, at in zip(busy.latencies, busy.started_at, strict=True) if first <= at <= last]
    without = _figures(quiet, quiet_seconds, args)
    under = _figures(busy, busy_seconds, args)
    expected = seeded | set().union(*(writer.ids for writer in plan))
    figures = {
        "without_writers": without,
        "with_writers": under,
        "p95_ratio": _ratio(_p95(busy.latencies), _p95(quiet.latencies)),
        "requests_while_writing": len(during),
        "p95_while_writing_s": round(_p95(during), 3) if during else None,
        "writers": writers.report(plan),
        "writer_nice": args.writer_nice,
        "writers_failed": sum(1 for writer in plan if writer.returncode),
        "counts": writers.counts(Settings.from_env(), args.corpus, expected),
        "errors": without["errors"] + under["errors"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if during and quiet.latencies:
        figures["p95_while_writing_ratio"] = _ratio(_p95(during), _p95(quiet.latencies))
    switches = read_switches(switch_log, wall_zero)
    figures["switches"] = switch_summary(busy.timeline, switches)
    if args.json:  # the raw timeline: every request of both phases and every switch, on each phase's clock
        figures["timeline"] = {
            "without_writers": [_row(row) for row in quiet.timeline],
            "with_writers": [_row(row) for row in busy.timeline],
            "switches": switches,
        }
    return figures


def read_switches(path: Path, wall_zero: float) -> list[dict]:
    """The app's switches (NEWSREC_SWITCH_LOG lines), their start and end moved onto the phase's clock."""
    import json

    if not path.exists():
        return []
    switches = []
    for line in path.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        event["started"] = round(event["started"] - wall_zero, 3)
        event["ended"] = round(event["ended"] - wall_zero, 3)
        switches.append(event)
    return sorted(switches, key=lambda event: event["started"])


def switch_summary(timeline: list[tuple[float, float, bool]], switches: list[dict]) -> dict:
    """How many switches, what they cost, and p95 of the requests that overlapped one against those that did not."""
    spans = [(event["started"], event["ended"]) for event in switches]
    overlapping, clear = [], []
    for start, end, ok in timeline:
        if ok:
            hit = any(start < s_end and s_start < end for s_start, s_end in spans)
            (overlapping if hit else clear).append(end - start)

    def p95(values: list[float]) -> float | None:
        return round(float(np.percentile(values, 95)), 3) if values else None

    return {
        "count": len(switches),
        "by_kind": {kind: sum(e["kind"] == kind for e in switches) for kind in sorted({e["kind"] for e in switches})},
        "seconds": round(sum(end - start for start, end in spans), 2),
        "cpu_s": round(sum(event.get("cpu_s", 0.0) for event in switches), 2),
        "requests_overlapping": len(overlapping),
        "p95_overlapping_s": p95(overlapping),
        "requests_not_overlapping": len(clear),
        "p95_not_overlapping_s": p95(clear),
    }


def _row(row: tuple[float, float, bool]) -> dict:
    start, end, ok = row
    return {"start": round(start, 3), "end": round(end, 3), "ok": ok}


def _p95(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 95)) if latencies else 0.0


def _ratio(numerator: float, denominator: float) -> float | None:
    """Of the measured (unrounded) values: a quick machine's p95 may round to 0.0 s."""
    return round(numerator / denominator, 2) if denominator > 0 else None


def _phase(
    url: str,
    api: dict,
    users: list[str],
    args: argparse.Namespace,
    result: LoadResult,
    clock: float,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """`args.requests` recommend calls from `args.concurrency` fresh sessions; timings and errors into `result`.
    Every session opens its page first; `on_ready` runs once all have, before the first timed call."""
    from gradio_client import Client

    counter = iter(range(args.requests))
    counter_lock = threading.Lock()
    ready = threading.Barrier(args.concurrency, action=on_ready)

    def worker(number: int) -> None:
        try:  # the client too: one that cannot connect must still reach the barrier, or the others wait forever
            client = Client(url, verbose=False, httpx_kwargs=_client_timeouts())
            _open_page(client, api, args)
            user = {"user_id": users[number % len(users)]}
            client.predict(*_arguments(api[args.user_api], user), api_name=args.user_api)
        except Exception as error:  # noqa: BLE001 - every failure is a finding of the benchmark
            with result.lock:
                result.errors.append(f"opening the page ({args.load_api}, {args.user_api}): {str(error)[:300]}")
            ready.wait()
            return
        ready.wait()
        while True:
            with counter_lock:
                index = next(counter, None)
            if index is None:
                return
            query = QUERIES[index % len(QUERIES)]
            tick = time.perf_counter()
            try:
                client.predict(*_arguments(api[args.run_api], {"query": query}), api_name=args.run_api)
            except Exception as error:  # noqa: BLE001
                with result.lock:
                    result.errors.append(f"{args.run_api}: {str(error)[:200]}")
                    result.timeline.append((tick - clock, time.perf_counter() - clock, False))
                continue
            tock = time.perf_counter()
            with result.lock:
                result.latencies.append(tock - tick)
                result.started_at.append(tick - clock)
                result.timeline.append((tick - clock, tock - clock, True))

    with ThreadPoolExecutor(args.concurrency) as pool:
        list(pool.map(worker, range(args.concurrency)))


def _client_timeouts() -> dict:
    """httpx's default 5 s is shorter than a page load of 30 sessions at once on a busy 2-core machine: the session's
    config request then failed as "timed out" though the app answered it later (9 of 30 sessions at load 13), which
    a browser would have waited for. Bounded, so a hung app still ends the run (the result stream's read too)."""
    import httpx

    return {"timeout": httpx.Timeout(60.0, read=600.0)}


def _open_page(client, api: dict, args: argparse.Namespace) -> list[str]:
    """Run the page's load event in this session (it fills the session's reader picker); returns the readers."""
    outputs = client.predict(*_arguments(api[args.load_api], {}), api_name=args.load_api)
    picker = outputs[0] if isinstance(outputs, (list, tuple)) and outputs else {}
    choices = picker.get("choices", []) if isinstance(picker, dict) else []
    return [choice[1] if isinstance(choice, (list, tuple)) else choice for choice in choices]


def _arguments(endpoint: dict, values: dict) -> list:
    """Positional arguments in the endpoint's order: ours where the name matches, else the API's default."""
    arguments = []
    for parameter in endpoint.get("parameters", []):
        name = parameter.get("parameter_name") or ""
        if name in values:
            arguments.append(values[name])
        elif name.startswith("lang"):
            arguments.append("English")
        else:
            arguments.append(parameter.get("parameter_default"))
    return arguments


def _sample_memory(pid: int | None, result: LoadResult, stop: threading.Event) -> None:
    if pid is None:
        return
    import psutil

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    started = time.perf_counter()
    while not stop.is_set():
        try:
            rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
        except psutil.Error:
            return
        result.memory.append((time.perf_counter() - started, rss))
        stop.wait(1.0)


def _figures(result: LoadResult, seconds: float, args: argparse.Namespace) -> dict:
    latencies = np.array(result.latencies) if result.latencies else np.zeros(1)
    memory = [rss for _, rss in result.memory]
    half = memory[len(memory) // 2 :] if memory else []
    figures = {
        "concurrency": args.concurrency,
        "requests": args.requests,
        "completed": len(result.latencies),
        "errors": len(result.errors),
        "first_errors": result.errors[:5],
        "seconds": round(seconds, 1),
        "requests_per_s": round(len(result.latencies) / seconds, 2) if seconds else None,
        # Millisecond resolution: a lite request on a quick machine can take under 5 ms, which 0.01 s rounded to 0.0.
        "p50_s": round(float(np.percentile(latencies, 50)), 3),
        "p95_s": round(float(np.percentile(latencies, 95)), 3),
        "p99_s": round(float(np.percentile(latencies, 99)), 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    if memory:
        mib = 2**20
        figures |= {
            "memory_start_mib": round(memory[0] / mib),
            "memory_peak_mib": round(max(memory) / mib),
            "memory_end_mib": round(memory[-1] / mib),
            "memory_growth_second_half_mib": round((half[-1] - half[0]) / mib) if len(half) > 1 else 0,
        }
    return figures


def _start_app(timeout: float, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "NEWSREC_HOST": "127.0.0.1", "NEWSREC_PORT": str(port), **(extra_env or {})}
    # its stdout (Gradio's "Running on local URL") to our stderr: `--json` prints nothing but the JSON
    app = subprocess.Popen([sys.executable, str(REPO_ROOT / "app.py")], env=env, cwd=REPO_ROOT, stdout=2)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    import httpx

    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise InputError(f"the app exited with code {app.returncode} before it served")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return app, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    app.terminate()
    raise InputError(f"the app did not serve within {timeout:.0f} s")
