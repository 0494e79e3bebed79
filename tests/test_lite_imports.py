"""A lite command starts fast: it imports no torch, transformers, scikit-learn, LightGBM or SciPy's stats
unless it uses them (they cost seconds per process on a small CPU).

SciPy itself does load for a lite recommend, for two uses: the reader's interests are clustered with
scipy.cluster.hierarchy (newsrec/profiles.py), and bm25s (the lexical index) imports scipy.sparse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
NEVER = ("torch", "transformers", "sentence_transformers", "sklearn", "lightgbm", "scipy.stats", "pandas", "gradio")

RUN_AND_LIST = """
import contextlib, io, json, runpy, sys
sys.argv = ["newsrec", *sys.argv[1:]]
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out):
        runpy.run_module("newsrec", run_name="__main__", alter_sys=True)
except SystemExit as end:
    code = end.code or 0
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules), "output": out.getvalue()[:200]}))
"""


def imported_by(*argv: str, home: Path) -> dict:
    env = {**os.environ, "NEWSREC_HOME": str(home), "NEWSREC_EMBEDDER": "lite", "NEWSREC_RERANKER": "lite"}
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_lite_recommend_imports_no_heavy_library(tmp_path):
    first = imported_by("recommend", "--user", "u01", "--json", home=tmp_path)  # builds the demo index
    again = imported_by("recommend", "--user", "u01", "--query", "apple harvest", "--json", home=tmp_path)
    for run in (first, again):
        assert run["code"] == 0 and run["output"].lstrip().startswith("{")
        loaded = set(run["modules"])
        assert not [name for name in NEVER if name in loaded], sorted(name for name in NEVER if name in loaded)
        assert "chromadb" in loaded  # it opens the index: the one heavy import it needs


def test_help_imports_no_heavy_library(tmp_path):
    run = imported_by("users", home=tmp_path)
    loaded = set(run["modules"])
    assert not [name for name in (*NEVER, "scipy", "chromadb", "bm25s") if name in loaded]
