"""Shared fixtures: an isolated NEWSREC_HOME per test, the ../shared data (skipped when absent)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

KEPT = ("NEWSREC_SHARED", "NEWSREC_TEST_DEVICE")  # where ../shared is; the device the GPU checks ask for


def pytest_configure(config) -> None:
    """The environment of the test run (in pytest only: helper processes import this module for HashingEmbedder
    and must keep the NEWSREC_HOME their test hands them)."""
    # Set, not defaulted: a machine whose environment says otherwise (HF_HUB_OFFLINE=0 in a shell profile) must not
    # let a test reach the network.
    os.environ.update(
        GRADIO_ANALYTICS_ENABLED="False", ANONYMIZED_TELEMETRY="False", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"
    )
    # The suite runs on the settings' defaults, in this process and in every process it starts: a NEWSREC_* variable
    # of the machine running it (NEWSREC_EMBEDDER, NEWSREC_CHROMA_URL, NEWSREC_ENCODE_WORKERS, ...) or a Space's
    # SPACE_ID would change what the tests see.
    for name in sorted(os.environ):
        if (name.startswith("NEWSREC_") and name not in KEPT) or name == "SPACE_ID":
            del os.environ[name]


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


class HashingEmbedder:
    """Deterministic bag-of-words embedder: texts sharing words get similar vectors. No model, instant."""

    name = "fake-hashing"
    dim = 64

    def __init__(self):
        self.calls = 0  # documents embedded so far, to check what gets re-embedded

    def _vector(self, text: str):
        import hashlib

        import numpy as np

        from newsrec.lexical import tokenize

        vector = np.zeros(self.dim, dtype=np.float32)
        for term in tokenize(text):
            vector[int(hashlib.md5(term.encode()).hexdigest(), 16) % self.dim] += 1.0
        if not vector.any():
            vector[0] = 1.0
        return vector / np.linalg.norm(vector)

    def embed_documents(self, items):
        import numpy as np

        self.calls += len(items)
        return np.stack([self._vector(item.text) for item in items]) if items else np.zeros((0, self.dim), np.float32)

    def embed_queries(self, texts):
        import numpy as np

        return np.stack([self._vector(text) for text in texts])


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder()


# --- servers on loopback ports (issue 11) --------------------------------------------------------------


def stop(process: subprocess.Popen, log=None, timeout: float = 20) -> None:
    """End a server a test started: terminate, then kill if it lingers; close its log."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
    if log is not None:
        log.close()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real `chroma run` (the CLI that ships with chromadb) on a free loopback port, for the session.

    Yields its URL once GET /api/v2/heartbeat answers; skipped with the reason when the CLI is missing
    or the server does not come up.
    """
    import shutil
    import sys
    import time
    import urllib.request

    executable = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    if not Path(executable).exists():
        pytest.skip("the `chroma` CLI (from the chromadb package) is not installed")
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    command = [executable, "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"chroma run exited with {process.returncode}: {(path / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer {url}/api/v2/heartbeat within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        stop(process, log)


@pytest.fixture(params=["embedded", "server"])
def chroma_mode(request, monkeypatch) -> str:
    """Run a test against the embedded store and against the Chroma server (NEWSREC_CHROMA_URL)."""
    if request.param == "server":
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        url = request.getfixturevalue("chroma_server")
        host, port = url.removeprefix("http://").split(":")
        client = chromadb.HttpClient(host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False))
        for collection in client.list_collections():  # each test starts with an empty server, as with a temp dir
            client.delete_collection(collection.name)
        monkeypatch.setenv("NEWSREC_CHROMA_URL", url)
    else:
        monkeypatch.delenv("NEWSREC_CHROMA_URL", raising=False)
    return request.param
