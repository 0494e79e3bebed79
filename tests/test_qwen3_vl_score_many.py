"""RerankEngine.score_many: several queries' pairs in the same decoder calls score as each query alone.

Requests differ in instruction, query text and query images, so their shared prefixes differ in length
and content; document suffixes of different requests share batches, each row reading its own prefix's
keys/values. Compared with `score` per request (itself equal to the one-pair-at-a-time reference,
test_qwen3_vl_reranker.py) within 1e-5, and once with the reference directly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from newsrec.qwen3_vl.engine import EngineOptions, RerankEngine, ScoreRequest, _Prefixes  # noqa: E402
from newsrec.qwen3_vl.prompt import Side  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from qwen3_vl_reference import reference_inputs, reference_scores  # noqa: E402
from test_qwen3_vl_reranker import DEVICE, FILES, IMAGE_DOCS, INSTRUCTION, PICS, TEXT_DOCS, TOL, assert_close  # noqa: E402


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The tiny random checkpoint of test_qwen3_vl_reranker.py (same seed), loaded in fp32."""
    if not FILES.exists():
        pytest.skip(f"{FILES} is absent: these tests need the real Qwen3-VL tokenizer files (../shared)")
    from newsrec.qwen3_vl.loading import build_processor, load_model
    from newsrec.qwen3_vl.random_model import make_random_checkpoint

    checkpoint = make_random_checkpoint(tmp_path_factory.mktemp("tiny-qwen3-vl"), "tiny", FILES, seed=0)
    if DEVICE.startswith("cuda"):
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return load_model(checkpoint, device=DEVICE, dtype=torch.float32), build_processor(checkpoint)


def sides(documents):
    return [Side(text, images) for text, images in documents]


# Prefixes of different lengths: short and long query texts, a profile photo on the query side (with and
# without text), another instruction; a one-document request (no shared prefix) and an empty one.
REQUESTS = [
    ScoreRequest(INSTRUCTION, Side("energy prices in Europe"), sides(TEXT_DOCS)),
    ScoreRequest(INSTRUCTION, Side("floods", [PICS[1]]), sides(IMAGE_DOCS)),
    ScoreRequest(
        "Judge whether the reader wants this story.",
        Side("markets and central banks\nReader interests: inflation, interest rates, the euro and bonds"),
        sides(IMAGE_DOCS[2:] + TEXT_DOCS[:2]),
    ),
    ScoreRequest(INSTRUCTION, Side("", [PICS[2]]), sides(IMAGE_DOCS[:2] + TEXT_DOCS[3:])),
    ScoreRequest(INSTRUCTION, Side("derby"), sides(TEXT_DOCS[1:2])),  # one document: no prefix
    ScoreRequest(INSTRUCTION, Side("nothing"), []),
]

OPTIONS = {
    "right-pad": EngineOptions(),
    "left-pad": EngineOptions(padding_side="left"),
    "small-batches": EngineOptions(batch_tokens=400, max_batch=3),  # prefixes and suffixes in several calls
    "no-prefix": EngineOptions(prefix_reuse=False),
}


def mixed_batches(engine, monkeypatch) -> list[tuple[int, ...]]:
    """Record the prefix lengths each decoder batch reads, to prove requests really share batches."""
    seen = []
    gather = _Prefixes.gather

    def spy(self, slots):
        seen.append(tuple(sorted({self.lengths[s] for s in slots if s >= 0})))
        return gather(self, slots)

    monkeypatch.setattr(_Prefixes, "gather", spy)
    return seen


@pytest.mark.parametrize("name", list(OPTIONS))
def test_score_many_equals_score_per_request(loaded, name, monkeypatch):
    model, processor = loaded
    engine = RerankEngine(model, processor, OPTIONS[name])
    want, per_request_batches = [], 0
    for request in REQUESTS:
        want.append(engine.score(request.instruction, request.query, request.documents))
        per_request_batches += engine.last_stats.batches
    seen = mixed_batches(engine, monkeypatch)
    got = engine.score_many(REQUESTS)
    for result, expected in zip(got[:-1], want[:-1], strict=True):
        assert_close(result.scores, expected)
    assert got[-1].scores == [] and got[-1].tokens == []  # the empty request
    assert engine.last_stats.batches < per_request_batches  # fewer decoder calls than one request at a time
    if name != "no-prefix":
        assert any(len(lengths) > 1 for lengths in seen)  # a batch read prefixes of different lengths
        assert engine.last_stats.prefix_tokens > 0


def test_score_many_equals_the_reference(loaded):
    model, processor = loaded
    engine = RerankEngine(model, processor)
    got = engine.score_many(REQUESTS[:4])
    for request, result in zip(REQUESTS[:4], got, strict=True):
        documents = [(d.text, list(d.images)) for d in request.documents]
        q = request.query
        want = reference_scores(model, processor, request.instruction, q.text, list(q.images), documents)
        assert_close(result.scores, want)
        # tokens: the pair as the model reads it (the processor's ids, image pads expanded)
        lengths = [
            reference_inputs(processor, request.instruction, q.text, list(q.images), text, images)["input_ids"].shape[1]
            for text, images in documents
        ]
        assert result.tokens == lengths


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_a_row_reading_another_requests_prefix_is_caught(loaded, padding_side):
    model, processor = loaded
    engine = RerankEngine(model, processor, EngineOptions(padding_side=padding_side))
    want = [engine.score(r.instruction, r.query, r.documents) for r in REQUESTS[:4]]
    assert_close([s for r in engine.score_many(REQUESTS[:4]) for s in r.scores], [s for w in want for s in w])
    engine._debug_prefix_shift = 1  # every row reads the next request's prefix keys/values
    got = np.asarray([s for r in engine.score_many(REQUESTS[:4]) for s in r.scores])
    assert np.max(np.abs(got - [s for w in want for s in w])) > 100 * TOL


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_a_row_seeing_prefix_pads_is_caught(loaded, padding_side):
    model, processor = loaded
    engine = RerankEngine(model, processor, EngineOptions(padding_side=padding_side))
    want = [engine.score(r.instruction, r.query, r.documents) for r in REQUESTS[:4]]
    engine._debug_drop_mask = True  # rows of short prefixes attend to the pads after (or before) them
    got = engine.score_many(REQUESTS[:4])
    assert max(np.max(np.abs(np.asarray(g.scores) - w)) for g, w in zip(got, want, strict=True)) > 100 * TOL


def test_out_of_memory_splits_a_mixed_batch(loaded, monkeypatch):
    model, processor = loaded
    engine = RerankEngine(model, processor)
    want = [r.scores for r in engine.score_many(REQUESTS)]
    forward = engine.language_model.forward
    calls = []

    def flaky(*args, **kwargs):
        rows = kwargs["inputs_embeds"].shape[0]
        calls.append(rows)
        if rows > 2 and kwargs[engine._cache_arg] is not None:  # suffix batches (rows of several prefixes)
            raise torch.OutOfMemoryError("simulated")
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.language_model, "forward", flaky)
    for got, expected in zip(engine.score_many(REQUESTS)[:-1], want[:-1], strict=True):
        assert_close(got.scores, expected)
    assert max(calls) > 2  # big mixed batches were tried, failed and were split
