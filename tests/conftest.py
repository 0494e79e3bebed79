"""Shared fixtures: an isolated NEWSREC_HOME per test, the ../shared data (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NEWSREC_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(autouse=True)
def newsrec_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own empty data dir, so no test sees another's index or caches."""
    home = tmp_path_factory.mktemp("newsrec_home")
    monkeypatch.setenv("NEWSREC_HOME", str(home))
    return home


def _shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test reads the real data in ../shared (see ../shared/README.md)")
    return path


@pytest.fixture
def nemig_dir() -> Path:
    return _shared_path("data", "nemig-en")


@pytest.fixture
def newsimages_dir() -> Path:
    return _shared_path("data", "newsimages-dev")


@pytest.fixture
def qwen_files_dir() -> Path:
    """Real Qwen3-VL tokenizer/processor files and the 2B config (no weights)."""
    return _shared_path("models", "qwen3-vl-2b")
