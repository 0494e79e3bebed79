"""Qwen3-VL photo features: batched vision attention and the index-time feature store.

Tiny random models with the real architecture and the real image processor (../shared); fp32 on CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("safetensors")

from PIL import Image  # noqa: E402

from newsrec.qwen3_vl.engine import EngineOptions, RerankEngine  # noqa: E402
from newsrec.qwen3_vl.prompt import Side  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from qwen3_vl_reference import reference_scores  # noqa: E402

INSTRUCTION = "Given the reader's query and interests, judge whether the reader wants this news article."


def picture(seed: int, height: int, width: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


# Three photos share a grid, two do not: groups of several photos and of one.
PHOTOS = [picture(1, 256, 448), picture(2, 256, 448), picture(3, 128, 128), picture(4, 256, 448), picture(5, 96, 320)]


@pytest.fixture(scope="module")
def tiny(qwen_files_dir_module):
    from newsrec.qwen3_vl.loading import build_processor
    from newsrec.qwen3_vl.random_model import make_random_model

    model = make_random_model("tiny", qwen_files_dir_module, device="cpu", dtype=torch.float32, seed=0)
    return model, build_processor(qwen_files_dir_module)


@pytest.fixture(scope="module")
def qwen_files_dir_module():
    from conftest import SHARED

    path = SHARED / "models" / "qwen3-vl-2b"
    if not path.exists():
        pytest.skip(f"{path} is absent: these tests need the real Qwen3-VL tokenizer files (../shared)")
    return path


def tower_outputs(model, processor, images, batched: bool, budget: int | None = None, monkeypatch=None):
    from newsrec.qwen3_vl import vision_attention

    if budget is not None:
        monkeypatch.setattr(vision_attention, "SCORE_BUDGET", budget)
    visual = model.model.visual
    inputs = processor.image_processor(images=images, return_tensors="pt")
    with torch.inference_mode():
        if batched:
            with vision_attention.batched_vision_attention(visual):
                out = visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"], return_dict=True)
        else:
            out = visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"], return_dict=True)
    return out.pooler_output, torch.stack(list(out.deepstack_features))


@pytest.mark.parametrize("budget", [None, 1], ids=["one-call-per-size", "one-photo-per-call"])
def test_batched_vision_attention_equals_per_photo_loop(tiny, budget, monkeypatch):
    model, processor = tiny
    want = tower_outputs(model, processor, PHOTOS, batched=False)
    got = tower_outputs(model, processor, PHOTOS, batched=True, budget=budget, monkeypatch=monkeypatch)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert (g - w).abs().max() <= 1e-5
    # Outside the block the model is transformers' own again (a reference run on it is unaffected).
    assert all("forward" not in vars(block.attn) for block in model.model.visual.blocks)


def test_batched_attention_groups_and_bites(tiny, monkeypatch):
    from newsrec.qwen3_vl import vision_attention

    assert vision_attention.attention_groups([4, 4, 9, 4], heads=1, budget=32) == [(4, [0, 1]), (4, [3]), (9, [2])]
    model, processor = tiny
    want = tower_outputs(model, processor, PHOTOS, batched=False)
    real = torch.nn.functional.scaled_dot_product_attention

    def leaky(q, k, v, scale=None):  # photos attend to each other: what batching must never do
        flat_k = k.transpose(0, 1).reshape(1, k.shape[1], -1, k.shape[-1]).expand(k.shape[0], -1, -1, -1)
        flat_v = v.transpose(0, 1).reshape(1, v.shape[1], -1, v.shape[-1]).expand(v.shape[0], -1, -1, -1)
        return real(q, flat_k, flat_v, scale=scale)

    monkeypatch.setattr(vision_attention.F, "scaled_dot_product_attention", leaky)
    got = tower_outputs(model, processor, PHOTOS, batched=True)
    assert (got[0] - want[0]).abs().max() > 1e-3


def documents():
    return [
        Side("Flooding in the valley\nRescue teams evacuated two villages.", [PHOTOS[0]]),
        Side("Markets rally", [PHOTOS[1], PHOTOS[2]]),
        Side("Derby tonight", []),
        Side("", [PHOTOS[4]]),
    ]


def test_feature_store_round_trip(tiny, tmp_path, qwen_files_dir_module):
    from newsrec.qwen3_vl.feature_store import StoredImage

    model, processor = tiny
    query = Side("floods", [PHOTOS[3]])
    plain = RerankEngine(model, processor).score(INSTRUCTION, query, documents())
    indexer = RerankEngine(model, processor, feature_home=tmp_path)
    keys = indexer.prepare(PHOTOS)
    assert indexer.vision.images_encoded == len(PHOTOS)
    shards = list((tmp_path / "vision_features").rglob("shard-*.safetensors"))
    assert len(shards) == 1 and indexer.vision.store.bytes_per_image() > 0

    fresh = RerankEngine(model, processor, feature_home=tmp_path)  # another process: empty memory cache
    stored = [Side(doc.text, [StoredImage(keys[PHOTOS.index(image)]) for image in doc.images]) for doc in documents()]
    got = fresh.score(INSTRUCTION, Side("floods", [StoredImage(keys[3])]), stored)
    assert np.max(np.abs(np.asarray(got) - plain)) <= 1e-6
    assert fresh.vision.images_encoded == 0 and fresh.vision.store_hits == 5
    assert fresh.vision.store.dtype == torch.float32  # the tower's dtype: fp32 on CPU
    # Pixels that are in the store are looked up by content, too.
    again = RerankEngine(model, processor, feature_home=tmp_path)
    assert np.max(np.abs(np.asarray(again.score(INSTRUCTION, query, documents())) - plain)) <= 1e-6
    assert again.vision.images_encoded == 0

    # Another pixel budget or other weights never read these features.
    smaller = RerankEngine(model, processor, EngineOptions(max_pixels=64 * 32 * 32), feature_home=tmp_path)
    assert len(smaller.vision.store) == 0
    from newsrec.qwen3_vl.random_model import make_random_model

    other = make_random_model("tiny", qwen_files_dir_module, device="cpu", dtype=torch.float32, seed=1)
    assert len(RerankEngine(other, processor, feature_home=tmp_path).vision.store) == 0
    with pytest.raises(KeyError, match="not in the feature store"):
        smaller.score(INSTRUCTION, Side("q"), [Side("x", [StoredImage(keys[0])])])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, qwen_files_dir_module):
    from newsrec.qwen3_vl.random_model import make_random_checkpoint

    return make_random_checkpoint(tmp_path_factory.mktemp("tiny-features"), "tiny", qwen_files_dir_module, seed=0)


def test_reranker_prepares_documents_at_index_time(checkpoint, tmp_path):
    from newsrec.config import Settings
    from newsrec.qwen3_vl.loading import build_processor, load_model
    from newsrec.rerankers import get_reranker
    from newsrec.types import Candidate, ImageRef, NewsItem, RerankRequest, UserProfile

    root = tmp_path / "corpus"
    (root / "images").mkdir(parents=True)
    for name, photo in zip(("a.png", "b.png", "c.png"), PHOTOS, strict=False):
        photo.save(root / "images" / name)
    items = [
        NewsItem("n1", "Flooding", "Rescue teams.", images=[ImageRef("images/a.png")]),
        NewsItem("n2", "Rates", "Held.", images=[ImageRef("images/b.png"), ImageRef("images/missing.png")]),
        NewsItem("n3", "Derby", ""),
    ]
    settings = Settings(home=tmp_path / "home")

    def reranker():
        return get_reranker(
            "qwen3-vl-reranker-2b", model=str(checkpoint), device="cpu", settings=settings, image_root=root
        )

    first = reranker()
    assert first.prepare_documents(items) == 3  # a, b and the missing file (skipped with a warning)
    assert first.prepare_documents(items) == 1  # only the missing one is still to do
    assert first.engine.vision.images_encoded == 2

    profile = UserProfile("u", summary="floods", images=[ImageRef("images/c.png")])
    request = RerankRequest(query="floods", profile=profile, instruction=INSTRUCTION)
    candidates = [Candidate(item, 0.5, i + 1) for i, item in enumerate(items)]
    later = reranker()  # a new process: photos come from the store, only the profile photo is encoded
    got = later.score(request, candidates)
    assert later.engine.vision.store_hits == 2 and later.engine.vision.images_encoded == 1

    model, processor = load_model(checkpoint, device="cpu"), build_processor(checkpoint)
    photo = {name: Image.open(root / "images" / name).convert("RGB") for name in ("a.png", "b.png", "c.png")}
    docs = [(items[0].text, [photo["a.png"]]), (items[1].text, [photo["b.png"]]), (items[2].text, [])]
    want = reference_scores(model, processor, INSTRUCTION, "floods\nReader interests: floods", [photo["c.png"]], docs)
    assert np.max(np.abs(np.asarray(got) - want)) <= 1e-5

    # A photo file replaced after indexing is decoded again, never served stale features.
    PHOTOS[4].resize((448, 256)).save(root / "images" / "a.png")
    changed = reranker()
    changed.score(request, candidates[:1])
    assert changed.engine.vision.store_hits == 0 and changed.engine.vision.images_encoded == 2


@pytest.mark.slow
def test_accuracy_report_runs_on_cpu(qwen_files_dir_module):
    """`bench rerank --accuracy` on the tiny shape: bf16 engine and reference against fp32 weights."""
    from newsrec.bench.rerank import run_accuracy

    figures = run_accuracy(config="tiny", docs=16, device="cpu", files=str(qwen_files_dir_module))
    engine_mean, reference_mean = figures["engine_bf16_mean_abs_delta"], figures["reference_bf16_mean_abs_delta"]
    assert 0 < reference_mean < 0.1 and 0 < engine_mean < 0.1  # bf16 really ran, and nothing is broken
    assert figures["mean_ratio"] == round(engine_mean / reference_mean, 3)
    assert figures["engine_bf16_max_abs_delta"] >= engine_mean
    assert isinstance(figures["top10_set_equals_fp32"], bool) and isinstance(figures["ratio_target_met"], bool)


def test_loading_never_imports_the_random_model_builder():
    """random_model depends on loading, never the reverse (no import circle)."""
    import ast

    import newsrec.qwen3_vl.loading as loading

    tree = ast.parse(Path(loading.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any("random_model" in (name or "") for name in imported)
