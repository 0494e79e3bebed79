"""Model selection: which Qwen3-VL checkpoints newsrec knows, what they need, and why one cannot run here.

Every Qwen3-VL factory calls `require_model()` before importing torch-heavy code, so a missing GPU,
checkpoint or package becomes one `ModelUnavailableError` that says what to install or download,
instead of a traceback from deep inside transformers (or a hub look-up on an offline machine).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from newsrec.errors import InputError, ModelUnavailableError

__all__ = [
    "LITE",
    "MODELS",
    "ModelSpec",
    "ResolvedModel",
    "choices",
    "describe_model_problem",
    "get_spec",
    "require_model",
]

log = logging.getLogger(__name__)

LITE = "lite"
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ModelSpec:
    name: str  # registry name, as given to --reranker / --embedder
    kind: str  # "reranker" or "embedder"
    hf_id: str  # default checkpoint on the Hugging Face hub
    weights_gb: float  # bf16 weights; the GPU needs this plus room for activations
    dim: int = 0  # embedders: full embedding size (Matryoshka truncation may shorten it)

    @property
    def flag(self) -> str:
        return f"--{self.kind}-model"

    @property
    def env(self) -> str:
        return f"NEWSREC_{self.kind.upper()}_MODEL"


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("qwen3-vl-reranker-2b", "reranker", "Qwen/Qwen3-VL-Reranker-2B", weights_gb=4.3),
        ModelSpec("qwen3-vl-reranker-8b", "reranker", "Qwen/Qwen3-VL-Reranker-8B", weights_gb=17.5),
        ModelSpec("qwen3-vl-embedding-2b", "embedder", "Qwen/Qwen3-VL-Embedding-2B", weights_gb=4.3, dim=2048),
        ModelSpec("qwen3-vl-embedding-8b", "embedder", "Qwen/Qwen3-VL-Embedding-8B", weights_gb=17.5, dim=4096),
    ]
}


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    source: str  # local folder or hub id, as handed to from_pretrained
    device: str  # "cuda", "cuda:1", "cpu"...
    local: bool  # source is a folder on disk
    device_given: bool = False  # the caller chose the device (an explicit "cpu" accepts a cached hub checkpoint)


def choices(kind: str) -> list[str]:
    """Valid names for --reranker / --embedder, lite first."""
    return [LITE, *sorted(name for name, spec in MODELS.items() if spec.kind == kind)]


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        kind = "reranker" if "rerank" in name else "embedder"
        raise InputError(f"unknown model {name!r}; choose one of: {', '.join(choices(kind))}") from None


def require_model(name: str, model: str = "", device: str | None = None) -> ResolvedModel:
    """Check that `name` (optionally from checkpoint `model`) can run on `device`; raise a clear error if not."""
    resolved = _resolve(get_spec(name), model, device)
    problem = _problem(resolved)
    if problem:
        raise ModelUnavailableError(problem)
    if resolved.device == "cpu":
        log.warning("%s runs on CPU in fp32: expect seconds per item (use a CUDA GPU for real workloads)", name)
    return resolved


def describe_model_problem(name: str, model: str = "", device: str | None = None) -> str | None:
    """Why `name` cannot run here, in words naming what to install or download; None when it can."""
    try:
        return _problem(_resolve(get_spec(name), model, device))
    except InputError as error:
        return str(error)


# --- checks, cheapest first: packages, device, checkpoint ------------------------------------------


def _resolve(spec: ModelSpec, model: str, device: str | None) -> ResolvedModel:
    source = str(model or "").strip() or spec.hf_id
    local = _looks_local(source)
    if local:
        source = str(Path(source).expanduser())
    device_given = bool(device)
    if not device:
        device = "cuda" if _cuda_available() else "cpu"
    return ResolvedModel(spec, source, str(device), local, device_given)


def _problem(resolved: ResolvedModel) -> str | None:
    return _missing_packages(resolved.spec) or _device_problem(resolved) or _checkpoint_problem(resolved)


def _missing_packages(spec: ModelSpec) -> str | None:
    missing = [package for package in ("torch", "transformers", "PIL") if importlib.util.find_spec(package) is None]
    if missing:
        names = ", ".join("pillow" if package == "PIL" else package for package in missing)
        return (
            f"{spec.name} needs the package(s) {names}: run `pip install -r requirements.txt` "
            f"(or use --{spec.kind} lite, which needs none of them)"
        )
    if importlib.util.find_spec("transformers.models.qwen3_vl") is None:
        return f"{spec.name} needs transformers with Qwen3-VL support: run `pip install -U 'transformers>=5.17,<6'`"
    return None


def _device_problem(resolved: ResolvedModel) -> str | None:
    spec = resolved.spec
    if resolved.device.startswith("cuda"):
        if not _cuda_available():
            return (
                f"{spec.name} was asked to run on {resolved.device} but PyTorch sees no CUDA GPU "
                f"(torch {_torch_version()}). Install a CUDA build of torch "
                "(https://pytorch.org/get-started/locally/) on a machine with an NVIDIA GPU, "
                f"or use --{spec.kind} lite"
            )
        total_gb = _cuda_memory_gb(resolved.device)
        if total_gb and total_gb < spec.weights_gb * 1.15:
            return (
                f"{spec.name} needs about {spec.weights_gb * 1.15:.0f} GB of GPU memory in bf16 but "
                f"{resolved.device} has {total_gb:.1f} GB: use the 2b model or --{spec.kind} lite"
            )
        return None
    if resolved.device == "cpu" and not resolved.local and not resolved.device_given:
        # On CPU only an explicit local folder runs: the hub checkpoint in fp32 would be slow and, offline, absent.
        return (
            f"{spec.name} needs a CUDA GPU (about {spec.weights_gb * 1.15:.0f} GB in bf16) and none was found. "
            f"On this machine use --{spec.kind} lite (the default without a GPU). To run it on CPU anyway "
            f"(fp32, slow), download the checkpoint: `{_download_command(spec)}` and pass "
            f"`{spec.flag} {_default_dir(spec)}` (or set {spec.env})"
        )
    return None


def _checkpoint_problem(resolved: ResolvedModel) -> str | None:
    spec, source = resolved.spec, resolved.source
    if resolved.local:
        folder = Path(source)
        if not folder.is_dir():
            return (
                f"checkpoint folder {source} does not exist: download it with "
                f"`{_download_command(spec, source)}` or fix {spec.flag} / {spec.env}"
            )
        if not (folder / "config.json").is_file():
            return f"{source} is not a model checkpoint (no config.json): point {spec.flag} at the downloaded folder"
        if not any(path.name.endswith(WEIGHT_SUFFIXES) for path in folder.iterdir()):
            return (
                f"{source} has a config.json but no weights (*.safetensors): the download is incomplete, "
                f"run `{_download_command(spec, source)}` again"
            )
        return None
    if _hub_offline() and not _in_hub_cache(source):
        return (
            f"checkpoint {source} is not downloaded and newsrec does not reach the hub by itself "
            f"(HF_HUB_OFFLINE=1). Download it once: `{_download_command(spec, source=None, repo=source)}` "
            f"and pass `{spec.flag} {_default_dir(spec, repo=source)}` (or set {spec.env})"
        )
    return None


# --- small helpers ------------------------------------------------------------------------------------


def _looks_local(source: str) -> bool:
    """A folder path, not a hub id: hub ids are exactly `owner/name` and never start with / . ~."""
    if source.startswith(("/", ".", "~")) or Path(source).expanduser().exists():
        return True
    return source.count("/") != 1 or "\\" in source


def _default_dir(spec: ModelSpec, repo: str = "") -> str:
    return f"~/models/{(repo or spec.hf_id).split('/')[-1]}"


def _download_command(spec: ModelSpec, source: str | None = None, repo: str = "") -> str:
    target = source or _default_dir(spec, repo)
    return f"hf download {repo or spec.hf_id} --local-dir {target}"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _in_hub_cache(repo_id: str) -> bool:
    """Whether a hub checkpoint is already in the local HF cache (no network: a file-system look-up)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # malformed id or cache: treat as absent, the message says how to download it
        return False


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _cuda_memory_gb(device: str) -> float:
    import torch

    try:
        return torch.cuda.get_device_properties(torch.device(device)).total_memory / 1024**3
    except Exception:  # an invalid index reports itself later, at load time
        return 0.0


def _torch_version() -> str:
    try:
        import torch

        return torch.__version__
    except ImportError:
        return "not installed"
