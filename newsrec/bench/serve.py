"""`bench serve`: throughput of `newsrec serve`, sequential requests vs many concurrent clients.

The server runs as its own process (`python -m newsrec serve` on a free loopback port) with the
reranker under test (default: a tiny random-weight Qwen3-VL built from ../shared/models/qwen3-vl-2b).
The same list of rerank requests is sent twice: one at a time, then by N concurrent clients; the
ratio of pairs/s is what server-side batching buys. Two workloads:
- "shared": a few searches, each with its own pool of recalled stories, every request reranking part
  of its search's pool (popular searches, guest feeds, app replicas asking for the same page): the
  case where cross-request batching merges requests into one engine request and scores a repeated
  (query, story) pair once;
- "distinct": every request has its own query; a worker turn hands all queued requests to one
  `score_many` call, whose decoder batches mix documents of different queries.
Besides wall-clock pairs/s, each phase reports the server process's CPU seconds (when the bench
started the server, or with --pid): pairs per server CPU second is the engine's own gain from merging,
steadier than wall time on a shared machine, but blind to what overlapping HTTP work with scoring buys.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from newsrec.config import REPO_ROOT

DEFAULT_FILES = REPO_ROOT.parent / "shared" / "models" / "qwen3-vl-2b"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="newsrec serve: sequential vs concurrent rerank throughput")
    parser.add_argument("--reranker", default="qwen3-vl-reranker-2b", help="served reranker (or lite)")
    parser.add_argument("--reranker-model", default="", help="checkpoint; default: a random --size model")
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "2b", "8b"], help="random model shape")
    parser.add_argument("--files", default=str(DEFAULT_FILES), help="Qwen3-VL tokenizer/config folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch CPU threads (0 = torch default)")
    parser.add_argument("--url", default="", help="bench a running server instead of starting one")
    parser.add_argument("--pid", type=int, default=0, help="with --url: the server's process id, for its CPU time")
    parser.add_argument(
        "--token",
        default=os.environ.get("NEWSREC_API_TOKEN", ""),
        help="bearer token of a secured server (default: NEWSREC_API_TOKEN); a started server gets it too",
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=60, help="requests per phase")
    parser.add_argument("--documents", type=int, default=20, help="documents per request")
    parser.add_argument("--queries", type=int, default=3, help="distinct queries in the shared workload")
    parser.add_argument("--workload", choices=["shared", "distinct", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from newsrec.bench import print_json

    with tempfile.TemporaryDirectory() as scratch:
        server, url, model = _start(args, Path(scratch)) if not args.url else (None, args.url.rstrip("/"), "")
        pid = server.pid if server is not None else args.pid
        try:
            figures: dict = {
                "reranker": model or args.url,
                "clients": args.clients,
                "documents": args.documents,
                "server_threads": args.threads,
            }
            workloads = ["shared", "distinct"] if args.workload == "both" else [args.workload]
            for workload in workloads:
                bodies = _requests(args, workload)
                _phase(url, bodies[:3], 1, pid, args.token)  # warm-up: model, tokenizer, first-call allocations
                sequential = _phase(url, bodies, 1, pid, args.token)
                concurrent = _phase(url, bodies, args.clients, pid, args.token)
                figures[workload] = {
                    "sequential": sequential,
                    "concurrent": concurrent,
                    "speedup": round(concurrent["pairs_per_s"] / sequential["pairs_per_s"], 2),
                }
                if pid:
                    cpu = concurrent["pairs_per_server_cpu_s"] / sequential["pairs_per_server_cpu_s"]
                    figures[workload]["server_cpu_speedup"] = round(cpu, 2)
            figures["load_average"] = os.getloadavg()[0]
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
    print_json(figures) if args.json else Console().print(figures)
    return 0


def _start(args: argparse.Namespace, scratch: Path) -> tuple[subprocess.Popen, str, str]:
    import httpx

    model = args.reranker_model
    if args.reranker != "lite" and not model:
        from newsrec.qwen3_vl.random_model import make_random_checkpoint

        model = str(make_random_checkpoint(scratch / args.size, args.size, args.files))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "newsrec", "serve", "--port", str(port), "--reranker", args.reranker]
    command += ["--embedder", "lite", "--device", args.device, "--threads", str(args.threads)] + (
        ["--reranker-model", model] if model else []
    )
    env = {**os.environ}
    env.pop("NEWSREC_RERANKER_URL", None)
    env.pop("NEWSREC_API_TOKEN", None)
    if args.token:
        env["NEWSREC_API_TOKEN"] = args.token
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"newsrec serve exited: {server.stderr.read().decode()[-2000:]}")
        try:
            return server, url, httpx.get(f"{url}/health", timeout=2).json()["model"]
        except (httpx.HTTPError, ValueError, KeyError):
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("newsrec serve did not start within 300 s")


def _requests(args: argparse.Namespace, workload: str) -> list[dict]:
    """Rerank bodies over the demo corpus's stories; the same list for both phases.

    shared: `queries` searches, each with its own recall pool of 1.5 x `documents` stories, and every
    request reranks `documents` of its query's pool (readers running the same search get overlapping
    candidates). distinct: each request its own query and a random draw from the whole corpus.
    """
    from newsrec.config import Settings
    from newsrec.data.corpus import load_corpus

    corpus = load_corpus(Settings(corpus="demo"))
    stories = [f"{item.title}\n{item.body}".strip() for item in corpus.news.values()]
    rng = np.random.default_rng(0)
    size = min(args.documents, len(stories))
    bodies = []
    if workload == "shared":
        searches = [
            (stories[q].split("\n")[0], rng.choice(len(stories), size=min(len(stories), size * 3 // 2), replace=False))
            for q in rng.choice(len(stories), size=args.queries, replace=False)
        ]
        for i in range(args.requests):
            query, pool = searches[i % len(searches)]
            picked = rng.choice(pool, size=size, replace=False)
            bodies.append({"query": query, "documents": [stories[j] for j in picked], "return_documents": False})
        return bodies
    for q in rng.choice(len(stories), size=args.requests):
        picked = rng.choice(len(stories), size=size, replace=False)
        query = stories[q].split("\n")[0]
        bodies.append({"query": query, "documents": [stories[j] for j in picked], "return_documents": False})
    return bodies


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _phase(url: str, bodies: list[dict], clients: int, pid: int = 0, token: str = "") -> dict:
    import httpx
    import psutil

    server_process = psutil.Process(pid) if pid else None

    latencies: list[float] = []
    errors = 0

    def send(body: dict, client: httpx.Client) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            response = client.post("/v1/rerank", json=body)
            ok = response.status_code == 200 and len(response.json()["results"]) == len(body["documents"])
        except httpx.HTTPError:
            ok = False
        latencies.append(time.perf_counter() - started)
        errors += not ok

    before = _server_counters(url, token)
    cpu_before = sum(server_process.cpu_times()[:2]) if server_process else 0.0  # user + system, all threads
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        sessions = [httpx.Client(base_url=url, timeout=300, headers=_auth(token)) for _ in range(clients)]
        list(pool.map(lambda ib: send(ib[1], sessions[ib[0] % clients]), enumerate(bodies)))
        for session in sessions:
            session.close()
    seconds = time.perf_counter() - started
    cpu = sum(server_process.cpu_times()[:2]) - cpu_before if server_process else 0.0
    pairs = sum(len(body["documents"]) for body in bodies)
    after = _server_counters(url, token)
    server = {name: after[name] - before.get(name, 0.0) for name in after}
    figures = {
        "requests": len(bodies),
        "errors": errors,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(bodies) / seconds, 2),
        "pairs_per_s": round(pairs / seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 1),
        "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 1),
        # newsrec serve only: worker turns and pairs the model actually ran (after merging repeats)
        "server_turns": int(server.get("newsrec_batch_pairs_count", 0)),
        "server_pairs_scored": int(server.get("newsrec_pairs_scored_total", 0)),
    }
    if server_process:
        figures["server_cpu_s"] = round(cpu, 2)
        figures["pairs_per_server_cpu_s"] = round(pairs / max(cpu, 1e-9), 1)
    return figures


def _server_counters(url: str, token: str = "") -> dict[str, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = httpx.get(f"{url}/metrics", timeout=10, headers=_auth(token))
    except httpx.HTTPError:
        return {}
    if response.status_code != 200:  # e.g. 401: a wrong --token (the phase counts its requests as errors)
        return {}
    text = response.text
    wanted = {"newsrec_batch_pairs_count", "newsrec_pairs_scored_total"}
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in wanted
    }
