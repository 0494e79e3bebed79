"""The lite embedder: USE-Multilingual v3 from its PyPI package, offline, one space for Chinese and English."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from newsrec.embedders import Embedder, get_embedder
from newsrec.embedders.multilingual import DIM, MultilingualConfig, MultilingualEmbedder
from newsrec.types import NewsItem


@pytest.fixture(scope="module")
def embedder() -> MultilingualEmbedder:
    return get_embedder("lite")


def test_registry_builds_it_without_loading_and_names_it_apart_from_minilm():
    built = get_embedder("lite", workers=1)
    assert isinstance(built, MultilingualEmbedder) and isinstance(built, Embedder)
    assert (built.name, built.dim, built.config.workers, built._model) == ("lite-usem3", DIM, 1, None)
    assert get_embedder("lite-minilm").name != built.name  # old indexes rebuild instead of mixing vectors


def test_loads_and_embeds_with_the_network_cut(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    vectors = MultilingualEmbedder().embed_queries(["offline", "离线"])
    assert vectors.shape == (2, DIM)


def test_rows_are_unit_float32_for_documents_queries_and_nothing(embedder):
    items = [NewsItem("a", "Lakers beat Warriors", body="x" * 5000), NewsItem("b", "", body="")]
    docs = embedder.embed_documents(items)
    queries = embedder.embed_queries(["battery", ""])
    for rows in (docs, queries):
        assert rows.dtype == np.float32 and rows.shape[1] == DIM
        assert np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    assert embedder.embed_documents([]).shape == (0, DIM)


def test_chinese_and_english_share_one_space(embedder):
    english, chinese, other = embedder.embed_queries(
        [
            "Lakers edge Warriors 118-112 as LeBron scores 31",
            "湖人118比112力克勇士，詹姆斯砍下31分",
            "央行宣布降准释放长期资金",
        ]
    )
    assert english @ chinese > 0.6 > english @ other


def test_parallel_slices_keep_every_row_in_place(embedder):
    texts = [f"story number {i} about {'batteries' if i % 2 else 'basketball'}" for i in range(150)]
    serial = MultilingualEmbedder(MultilingualConfig(workers=1, slice_size=7)).embed_queries(texts)
    parallel = MultilingualEmbedder(MultilingualConfig(workers=2, slice_size=7)).embed_queries(texts)
    assert np.allclose(serial, parallel, atol=1e-5)
    assert np.allclose(serial[3], embedder.embed_queries([texts[3]])[0], atol=1e-4)
