"""Choosing lite vs Qwen3-VL models: clear, actionable errors instead of tracebacks or hub look-ups."""

from __future__ import annotations

import socket

import pytest
from conftest import SHARED

from newsrec import models
from newsrec.config import Settings
from newsrec.embedders import get_embedder
from newsrec.errors import InputError, ModelUnavailableError
from newsrec.models import describe_model_problem, require_model
from newsrec.rerankers import get_reranker
from newsrec.types import Candidate, NewsItem, RerankRequest

torch = pytest.importorskip("torch")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No CUDA, HF_HUB_OFFLINE=1, an empty hub cache, and any socket connection fails the test."""
    import huggingface_hub.constants

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from newsrec.qwen3_vl.random_model import make_random_checkpoint

    files_dir = SHARED / "models" / "qwen3-vl-2b"
    if not files_dir.exists():
        pytest.skip(f"{files_dir} is absent: the tiny model needs the real Qwen3-VL tokenizer files")
    return make_random_checkpoint(tmp_path_factory.mktemp("tiny-selection"), "tiny", files_dir)


@pytest.mark.parametrize(
    ("kind", "name", "hf_id"),
    [
        ("reranker", "qwen3-vl-reranker-8b", "Qwen/Qwen3-VL-Reranker-8B"),
        ("reranker", "qwen3-vl-reranker-2b", "Qwen/Qwen3-VL-Reranker-2B"),
        ("embedder", "qwen3-vl-embedding-8b", "Qwen/Qwen3-VL-Embedding-8B"),
    ],
)
def test_no_gpu_no_checkpoint_is_actionable(offline, kind, name, hf_id):
    build = get_reranker if kind == "reranker" else get_embedder
    with pytest.raises(ModelUnavailableError) as caught:
        build(name)
    message = str(caught.value)
    assert "CUDA GPU" in message
    assert f"hf download {hf_id} --local-dir" in message  # what to download
    assert f"--{kind}-model" in message and f"NEWSREC_{kind.upper()}_MODEL" in message  # where to point at it
    assert f"--{kind} lite" in message  # what works here instead
    assert "Traceback" not in message and "\n" not in message  # one clean line for the CLI


def test_cli_prints_one_clean_line(offline, capsys, newsrec_home):
    from newsrec.cli import main
    from newsrec.data.corpus import Corpus, save_corpus
    from newsrec.types import User

    root = newsrec_home / "corpora" / "tiny"
    root.mkdir(parents=True)
    save_corpus(Corpus("tiny", root, news={"a": NewsItem(id="a", title="Storm")}, users={"u": User(id="u")}))
    assert main(["recommend", "--corpus", "tiny", "--user", "u", "--embedder", "qwen3-vl-embedding-8b"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: qwen3-vl-embedding-8b needs a CUDA GPU") and "\n" not in err


@pytest.mark.parametrize(("kind", "build"), [("reranker", get_reranker), ("embedder", get_embedder)])
def test_unknown_name_lists_choices(kind, build):
    with pytest.raises(InputError) as caught:
        build(f"qwen3-vl-{kind}-4b")
    for choice in models.choices(kind):
        assert choice in str(caught.value)
    assert "lite" in describe_model_problem("qwen3-vl-reranker-4b")


def test_checkpoint_folder_problems(offline, tmp_path):
    missing = tmp_path / "nowhere"
    problem = describe_model_problem("qwen3-vl-reranker-2b", model=str(missing))
    assert "does not exist" in problem and f"hf download Qwen/Qwen3-VL-Reranker-2B --local-dir {missing}" in problem

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no config.json" in describe_model_problem("qwen3-vl-embedding-2b", model=str(empty))

    (empty / "config.json").write_text("{}")
    assert "no weights" in describe_model_problem("qwen3-vl-embedding-2b", model=str(empty))
    (empty / "model.safetensors").write_bytes(b"")
    assert describe_model_problem("qwen3-vl-embedding-2b", model=str(empty)) is None


def test_device_and_package_problems(offline, monkeypatch, checkpoint):
    problem = describe_model_problem("qwen3-vl-reranker-2b", model=str(checkpoint), device="cuda")
    assert "sees no CUDA GPU" in problem and "--reranker lite" in problem

    real_find_spec = models.importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util, "find_spec", lambda name: None if name == "transformers" else real_find_spec(name)
    )
    problem = describe_model_problem("qwen3-vl-embedding-2b", model=str(checkpoint))
    assert "transformers" in problem and "pip install -r requirements.txt" in problem


def test_gpu_checks(offline, monkeypatch):
    monkeypatch.setattr(models, "_cuda_available", lambda: True)
    monkeypatch.setattr(models, "_cuda_memory_gb", lambda device: 12.0)
    assert "GPU memory" in describe_model_problem("qwen3-vl-reranker-8b")
    # 2B fits, but the hub checkpoint is not in the (empty) cache and the hub is off limits.
    problem = describe_model_problem("qwen3-vl-reranker-2b")
    assert "not downloaded" in problem and "hf download Qwen/Qwen3-VL-Reranker-2B" in problem
    monkeypatch.setattr(models, "_in_hub_cache", lambda repo: True)
    resolved = require_model("qwen3-vl-reranker-2b")
    assert (resolved.source, resolved.device, resolved.local) == ("Qwen/Qwen3-VL-Reranker-2B", "cuda", False)


def test_local_checkpoint_runs_on_cpu(offline, checkpoint):
    embedder = get_embedder("qwen3-vl-embedding-2b", model=str(checkpoint))
    assert next(embedder.model.parameters()).dtype == torch.float32
    assert str(embedder.model.device) == "cpu"
    assert embedder.embed_queries(["hello"]).shape == (1, embedder.dim)

    reranker = get_reranker("qwen3-vl-reranker-2b", model=str(checkpoint))
    request = RerankRequest(query="storm warning")
    candidates = [Candidate(NewsItem(id="a", title="Storm hits the coast"), retrieval_score=0.5, retrieval_rank=1)]
    scores = reranker.score(request, candidates)
    assert len(scores) == 1 and 0.0 <= scores[0] <= 1.0


def test_settings_auto_resolution(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings = Settings()
    assert (settings.resolved_reranker, settings.resolved_embedder, settings.mode) == ("lite", "lite", "lite")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(models, "describe_model_problem", lambda name, model="": None)
    from newsrec import config

    monkeypatch.setattr(config, "_nvidia_driver_present", lambda: False)  # no driver: lite, torch not asked
    assert (settings.resolved_reranker, settings.resolved_embedder) == ("lite", "lite")
    monkeypatch.setattr(config, "_nvidia_driver_present", lambda: True)  # a CUDA machine
    assert (settings.resolved_reranker, settings.resolved_embedder) == ("qwen3-vl-reranker-8b", "qwen3-vl-embedding-2b")
    # With CUDA but a model that cannot run (say, too little GPU memory), auto falls back to lite.
    monkeypatch.setattr(models, "describe_model_problem", lambda name, model="": "needs 20 GB of GPU memory")
    assert (settings.resolved_reranker, settings.resolved_embedder) == ("lite", "lite")
    explicit = Settings(reranker="qwen3-vl-reranker-2b", embedder="lite")
    assert (explicit.resolved_reranker, explicit.resolved_embedder, explicit.mode) == (
        "qwen3-vl-reranker-2b",
        "lite",
        "qwen3-vl",
    )
    for name in ("qwen3-vl-reranker-8b", "qwen3-vl-embedding-2b", explicit.resolved_reranker):
        assert name in models.MODELS  # every name config can resolve to is known to model selection
