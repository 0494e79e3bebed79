"""All settings in one place: defaults that work, overridable by environment variables and CLI flags.

`Settings.from_env()` is read once by the CLI and the app; library code receives a `Settings`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from newsrec.errors import InputError

# No telemetry from any library we use; set before they import. Hub downloads stay possible for the
# Qwen3-VL checkpoints (set HF_HUB_OFFLINE=1 to forbid them; the tests and CI do).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"
DEMO_CORPUS = "demo"

# Ranges of the recommendation knobs, the same for the dashboard's sliders and the CLI's flags.
K_RANGE = (1, 30)
CANDIDATES_RANGE = (10, 300)
DIVERSITY_RANGE = (0.0, 1.0)  # CLI --diversity and the slider alike: 0 = pure relevance, MMR lambda = 1 - it
HALF_LIFE_RANGE = (0.0, 30.0)  # days; 0 = off
CATEGORY_CAP_RANGE = (0, 30)  # 0 = off
CHROMA_PAGE_SIZE = 300  # Chroma Cloud's limit on results per query and records per write
# NEWSREC_ENCODE_WORKERS default (lite CPU models, syncs of 2,000+ stories): on the quiet 2-core machine 2 worker
# processes encoded NeMig-en at 396-406 items/s against 323 in this process (docs/performance.md "Encoding
# throughput"); under load the two were level.
ENCODE_WORKERS = 2
MAX_ENCODE_WORKERS = 256
MAX_HISTORY = 500  # reads kept per reader (the last ones): profiles cost O(n^2) in history length
INGEST_MAX_FILE_BYTES = 2**30  # per source file read by ingest: /dev/zero or a runaway export stops here
INGEST_MAX_LINE_CHARS = 16 * 2**20  # per line of a source file (as the csv field limit); longer: reported, skipped

DEFAULT_INSTRUCTION = (
    "Given the reader's query and reading interests, judge whether this news article is one the reader "
    "would want to read next."
)

# NEWSREC_BATCH_NICE default: `ingest` and `index` lower their own CPU priority to this niceness (0 = leave it), so a
# batch import on the box that serves the app takes the CPU the app leaves idle instead of half of it (niceness
# only matters when the CPU is contended: on an idle machine the import runs as fast as before).
BATCH_NICE = 10

# A serving app that sees a corpus generation committed less than this many seconds ago, with items its index lacks,
# keeps serving the previous one: the writer (`ingest`) indexes them next, and the app doing it instead would embed
# another process's batch on its request path. After this (an `ingest --no-index`) the app indexes them itself.
FOLLOW_INDEX_GRACE_S = 120.0


def batch_nice() -> int:
    """NEWSREC_BATCH_NICE (0-19): the niceness batch commands lower themselves to; unset = BATCH_NICE."""
    text = os.environ.get("NEWSREC_BATCH_NICE", "").strip()
    if not text:
        return BATCH_NICE
    if not text.isdigit() or int(text) > 19:
        raise InputError(f"NEWSREC_BATCH_NICE must be a whole number from 0 (leave the priority) to 19, not {text!r}")
    return int(text)


def switch_log_path() -> Path | None:
    """NEWSREC_SWITCH_LOG: a file to which a running app appends one JSON line per switch to another writer's state
    (newsrec/follow.py); `bench load` sets it to put the switches on its request timeline. Unset = no file."""
    text = os.environ.get("NEWSREC_SWITCH_LOG", "").strip()
    return Path(text).expanduser() if text else None


def default_home() -> Path:
    """NEWSREC_HOME if set, else ~/.newsrec: corpora, Chroma data and caches all live under it."""
    return Path(os.environ.get("NEWSREC_HOME") or Path.home() / ".newsrec").expanduser()


def cuda_available() -> bool:
    """Whether torch can use a CUDA GPU. Without an NVIDIA driver on the machine the answer is no, given
    without importing torch (seconds on a small CPU): a lite command never needs it."""
    if not _nvidia_driver_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _nvidia_driver_present() -> bool:
    import shutil

    return any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl")) or bool(shutil.which("nvidia-smi"))


def _auto_model(gpu_choice: str, model: str) -> str:
    """The Qwen3-VL model when CUDA is present and it can run (GPU memory, checkpoint); else lite, saying why."""
    if not cuda_available():
        return "lite"
    from newsrec.models import describe_model_problem

    problem = describe_model_problem(gpu_choice, model)
    if problem:
        log.warning("using lite instead of %s: %s", gpu_choice, problem)
        return "lite"
    return gpu_choice


def parse_headers(text: str) -> dict[str, str]:
    """HTTP headers from JSON ('{"Authorization": "Bearer x"}') or 'K=V,K2=V2'; '' gives none."""
    import json

    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            headers = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"NEWSREC_CHROMA_HEADERS is not valid JSON: {error}") from None
        if not isinstance(headers, dict):
            raise InputError("NEWSREC_CHROMA_HEADERS must be a JSON object of header names to values")
        return {str(key): str(value) for key, value in headers.items()}
    headers = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"NEWSREC_CHROMA_HEADERS: {pair!r} is not NAME=VALUE (or pass a JSON object)")
        headers[key.strip()] = value.strip()
    return headers


def _page_size(text: str) -> int:
    from newsrec.errors import InputError

    try:
        value = int(text) if text.strip() else CHROMA_PAGE_SIZE
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"NEWSREC_CHROMA_PAGE_SIZE must be a whole number of records >= 1, not {text!r}")
    return value


def _count(env, name: str) -> int:
    """A whole number >= 0 from the environment; unset or empty = 0 (the default chosen elsewhere)."""
    from newsrec.errors import InputError

    text = env.get(name, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise InputError(f"{name} must be a whole number >= 0 (0 = chosen from the corpus size), not {text!r}")
    return int(text)


def _encode_workers(text: str) -> int:
    text = text.strip()
    if not text:
        return ENCODE_WORKERS
    if not text.isdigit() or int(text) > MAX_ENCODE_WORKERS:
        raise InputError(
            f"NEWSREC_ENCODE_WORKERS must be a whole number from 0 (encode in this process) to "
            f"{MAX_ENCODE_WORKERS}, not {text!r}"
        )
    return int(text)


def _seconds(text: str, default: float) -> float:
    try:
        value = float(text) if text.strip() else default
    except ValueError:
        raise InputError(f"NEWSREC_RERANKER_TIMEOUT must be a number of seconds, not {text!r}") from None
    if value <= 0:
        raise InputError(f"NEWSREC_RERANKER_TIMEOUT must be positive, not {text!r}")
    return value


def _visual_tokens(value: str) -> int:
    from newsrec.errors import InputError

    try:
        tokens = int(value)
    except ValueError:
        tokens = 0
    if not 4 <= tokens <= 16384:
        raise InputError(f"NEWSREC_VISUAL_TOKENS must be a whole number from 4 to 16384, not {value!r}")
    return tokens


@dataclass
class Settings:
    home: Path = field(default_factory=default_home)
    corpus: str = DEMO_CORPUS
    embedder: str = "auto"  # "lite", "qwen3-vl-embedding-2b", "qwen3-vl-embedding-8b"; auto = Qwen3-VL on CUDA
    reranker: str = "auto"  # "lite", "qwen3-vl-reranker-2b", "qwen3-vl-reranker-8b"; auto = 8B on CUDA
    reranker_model: str = ""  # HF id or local folder overriding the reranker's default checkpoint
    embedder_model: str = ""  # HF id or local folder overriding the embedder's default checkpoint
    chroma_url: str = ""  # e.g. http://localhost:8000 to use a Chroma server instead of the embedded store
    k: int = 10  # recommendations shown
    candidates: int = 100  # first-stage recall size handed to the reranker
    max_images: int = 3  # images kept per news item
    max_history: int = MAX_HISTORY  # reads kept per reader at ingest and used per profile (the last N)
    # Qwen3-VL visual tokens per photo (one per 32x32 pixels; photos are resized to fit). 256 is plenty for
    # news photos; the official default allows up to 1,800. Cost per extra 256: README "Qwen3-VL mode".
    visual_tokens: int = 256
    allow_remote_images: bool = False  # fetching http(s) image URLs is opt-in (SSRF guard in images.py)
    instruction: str = DEFAULT_INSTRUCTION
    mmr_lambda: float = 1.0  # 1.0 = pure relevance; lower trades relevance for diversity
    freshness_half_life_days: float = 0.0  # 0 = off; else scores decay by half every N days of age
    category_cap: int = 0  # 0 = off; else at most N results per category
    # For-you: at most N cards of one subject the reader never read (a subcategory of the reading's categories);
    # the rest move below the page, so a finance reader's feed is not seven farm-gate price stories. 0 = off.
    new_subject_cap: int = 2
    # second stage without a learned model: reranker score + prior_weight x CTR log-odds (corpora with impressions)
    prior_weight: float = 0.3
    # For-you first stage: closest-interest cosine + trend_weight x clipped CTR log-odds (newsrec/recall.py); 0 = off
    trend_weight: float = 0.2
    # --- serving (issue 11): a remote reranker server and a Chroma server's auth headers ---
    reranker_url: str = ""  # e.g. http://rerank:8000 (`newsrec serve` or `vllm serve`); set = the remote reranker
    reranker_timeout: float = 30.0  # seconds per remote rerank request (a 100-candidate page on a GPU takes ~1 s)
    chroma_headers: dict[str, str] = field(default_factory=dict)  # sent to the Chroma server (auth proxy)
    embedder_url: str = ""  # e.g. http://embed:8000 (`newsrec serve --serve-embedder`); set = the remote embedder
    # Records per Chroma read page, write batch and query: Chroma Cloud and distributed Chroma answer at most
    # 300 results per query and take 300 records per write; whole-collection reads page with limit/offset.
    chroma_page_size: int = CHROMA_PAGE_SIZE
    # HNSW settings of the index; 0 = chosen from the corpus size (newsrec/hnsw.py). A change of M or
    # ef_construction rebuilds the collection from the vector cache on the next sync; ef_search changes in place.
    hnsw_m: int = 0
    hnsw_ef_construction: int = 0
    hnsw_ef_search: int = 0
    # Worker processes that encode a sync's stories (newsrec/encoding.py); 0 = encode in this process with the
    # embedder's own threads. Used for CPU embedders that declare `parallel_processes` (the lite ones) and syncs
    # of 2,000 stories or more; smaller syncs and GPU models stay in this process (`--workers` overrides).
    encode_workers: int = ENCODE_WORKERS
    # --- a read-only NEWSREC_HOME (newsrec/read_only.py): browse only, the store's private copy lives here ---
    read_only: bool = False
    scratch: Path | None = None  # a writable folder for the vector store copy and the score cache; None = home

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        settings = cls(
            corpus=env.get("NEWSREC_CORPUS", DEMO_CORPUS),
            embedder=env.get("NEWSREC_EMBEDDER", "auto"),
            reranker=env.get("NEWSREC_RERANKER", "auto"),
            reranker_model=env.get("NEWSREC_RERANKER_MODEL", ""),
            embedder_model=env.get("NEWSREC_EMBEDDER_MODEL", ""),
            chroma_url=env.get("NEWSREC_CHROMA_URL", ""),
            allow_remote_images=env.get("NEWSREC_ALLOW_REMOTE_IMAGES", "") in {"1", "true", "yes"},
            reranker_url=env.get("NEWSREC_RERANKER_URL", ""),
            reranker_timeout=_seconds(env.get("NEWSREC_RERANKER_TIMEOUT", ""), 30.0),
            chroma_headers=parse_headers(env.get("NEWSREC_CHROMA_HEADERS", "")),
            chroma_page_size=_page_size(env.get("NEWSREC_CHROMA_PAGE_SIZE", "")),
            embedder_url=env.get("NEWSREC_EMBEDDER_URL", ""),
            visual_tokens=_visual_tokens(env.get("NEWSREC_VISUAL_TOKENS", "256")),
            hnsw_m=_count(env, "NEWSREC_HNSW_M"),
            hnsw_ef_construction=_count(env, "NEWSREC_HNSW_EF_CONSTRUCTION"),
            hnsw_ef_search=_count(env, "NEWSREC_HNSW_EF_SEARCH"),
            encode_workers=_encode_workers(env.get("NEWSREC_ENCODE_WORKERS", "")),
        )
        return replace(settings, **{key: value for key, value in overrides.items() if value is not None})

    @property
    def image_max_pixels(self) -> int:
        """Per-photo pixel budget of the VL models: `visual_tokens` merged 32x32 patches."""
        return self.visual_tokens * 32 * 32

    @property
    def resolved_embedder(self) -> str:
        if self.embedder_url:
            return "remote"
        return self.embedder if self.embedder != "auto" else _auto_model("qwen3-vl-embedding-2b", self.embedder_model)

    @property
    def resolved_reranker(self) -> str:
        if self.reranker_url:
            return "remote"
        return self.reranker if self.reranker != "auto" else _auto_model("qwen3-vl-reranker-8b", self.reranker_model)

    @property
    def mode(self) -> str:
        return "lite" if self.resolved_reranker == "lite" and self.resolved_embedder == "lite" else "qwen3-vl"

    def corpus_dir(self, name: str | None = None) -> Path:
        return self.home / "corpora" / (name or self.corpus)

    @property
    def chroma_dir(self) -> Path:
        return (self.scratch or self.home) / "chroma"

    @property
    def cache_dir(self) -> Path:
        return (self.scratch or self.home) / "cache"
