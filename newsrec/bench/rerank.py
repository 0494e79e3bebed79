"""`newsrec bench rerank`: the Qwen3-VL-Reranker engine against the one-pair-at-a-time reference.

A random-weight model of the chosen shape (speed does not depend on weight values) with the real
tokenizer and image processor scores one personalised query against N news documents (~100-200 tokens
of real headlines and tags, plus real photos from ../shared/data/newsimages-dev). The reference is the
test oracle (tests/qwen3_vl_reference.py), i.e. the official algorithm: one processor call and one
forward per pair. Printed: pairs/s of both and the ratios `speedup` (cold: every photo through the
vision tower), `speedup_indexed` (photo features read from the index-time store, as after `index`) and
`speedup_warm` (a second request, features in memory), max |Δscore|, top-10 agreement, tokens run,
process CPU seconds (a fairer ratio on a shared machine), peak memory and, on CUDA, TFLOP/s and MFU
(2 · parameters · tokens over the GPU's dense bf16 peak, attention excluded).

`--accuracy` instead compares bf16 against an fp32 copy of the same seeded weights: the engine's and the
reference's mean/max |Δ| from fp32, their ratio (target ≤ 1.25) and whether the top-10 set is the fp32 one.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import resource
import time
from pathlib import Path

import numpy as np

from newsrec.config import REPO_ROOT, Settings
from newsrec.errors import InputError

__all__ = ["add_parser", "register_rerank", "run_accuracy", "run_benchmark"]

INSTRUCTION = Settings().instruction
QUERY = "energy prices and climate policy"
# A profile summary as the pipeline writes it for a reader with a few clear interests (~80 tokens).
SUMMARY = (
    "Reads mostly politics and business. Recent interests: US politics · Congress · elections (40%); "
    "markets · interest rates · inflation (25%); technology · artificial intelligence · chips (20%); "
    "football · transfers (15%). Favourite categories: politics, business, technology. "
    "Often opens long reports with photos from the scene."
)


def shared_dir() -> Path:
    for candidate in (os.environ.get("NEWSREC_SHARED"), REPO_ROOT.parent / "shared", REPO_ROOT / "shared"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return REPO_ROOT.parent / "shared"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("rerank", help="Qwen3-VL reranker engine vs one-pair-at-a-time reference")
    parser.add_argument("--config", choices=["tiny", "small", "2b", "8b"], default="small", help="model shape")
    parser.add_argument("--docs", type=int, default=100, help="candidates to rerank")
    parser.add_argument("--images-per-doc", type=int, default=1)
    parser.add_argument(
        "--query-images",
        type=int,
        default=1,
        help="profile photos on the query side (the reranker adapter's default is 1)",
    )
    parser.add_argument(
        "--reference-docs",
        type=int,
        default=0,
        help="time the reference on only the first N docs and extrapolate its pairs/s (0 = all)",
    )
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--files", help="folder with the Qwen3-VL tokenizer/processor files and configs")
    parser.add_argument("--batch-tokens", type=int, default=0, help="engine padded-token budget per forward")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--init-std",
        type=float,
        default=0.0,
        help="random-weight std (default: the config's; larger spreads the random model's scores further)",
    )
    parser.add_argument(
        "--visual-tokens", type=int, default=0, help="visual tokens per photo (default: the setting, 256)"
    )
    parser.add_argument(
        "--fill-budget", action="store_true", help="scale photos up to the whole visual-token budget first"
    )
    parser.add_argument(
        "--accuracy", action="store_true", help="bf16 engine and reference against an fp32 copy (no timing)"
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=_command)
    return parser


register_rerank = add_parser


def _command(args: argparse.Namespace) -> int:
    from newsrec.bench import print_json

    if args.accuracy:
        figures = run_accuracy(config=args.config, docs=args.docs, device=args.device, files=args.files, seed=args.seed)
    else:
        figures = run_benchmark(
            config=args.config,
            docs=args.docs,
            images_per_doc=args.images_per_doc,
            query_images=args.query_images,
            reference_docs=args.reference_docs,
            device=args.device,
            files=args.files,
            batch_tokens=args.batch_tokens,
            seed=args.seed,
            init_std=args.init_std,
            visual_tokens=args.visual_tokens,
            fill_budget=args.fill_budget,
        )
    if args.json:
        print_json(figures)
    else:
        width = max(len(key) for key in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    return 0


# --- workload ---------------------------------------------------------------------------------------------


def _articles(shared: Path) -> list[tuple[str, str, Path | None]]:
    """(title, tags, photo) rows from newsimages-dev; [] when absent."""
    folder = shared / "data" / "newsimages-dev"
    if not (folder / "articles.csv").exists():
        return []
    with open(folder / "articles.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        photo = folder / "images" / f"{row['image_id']}.jpg"
        out.append((row["article_title"], row["article_tags"], photo if photo.exists() else None))
    return out


def make_documents(n: int, images_per_doc: int, shared: Path, seed: int = 0, offset: int = 0) -> list[tuple[str, list]]:
    """N news documents of ~100-200 tokens: a real headline, a body from its tags and related headlines,
    and `images_per_doc` real photos (random pictures when ../shared is absent)."""
    from PIL import Image

    from newsrec.images import load_image

    rng = np.random.default_rng(seed)
    articles = _articles(shared)
    documents = []
    for i in range(n):
        if articles:
            title, tags, _ = articles[(offset + i * 7) % len(articles)]
            related = [articles[int(j)][0] for j in rng.integers(0, len(articles), 6)]
            tag_text = ", ".join(t.strip() for t in tags.replace("|", ";").split(";") if t.strip())[:300]
            body = f"The story covers {tag_text}. " if tag_text else ""
            body += "Related coverage: " + " ".join(f"{headline}." for headline in related)
        else:
            title = f"Synthetic headline number {i} about markets, sport and politics"
            body = " ".join(f"sentence {j} of article {i} with some ordinary news words." for j in range(12))
        photos = []
        for k in range(images_per_doc):
            photo = articles[(offset + i * 7 + k * 13) % len(articles)][2] if articles else None
            if photo is not None:
                photos.append(load_image(photo))
            else:
                pixels = rng.integers(0, 256, (259, 460, 3), dtype=np.uint8)
                photos.append(Image.fromarray(pixels))
        documents.append((f"{title}\n{body}", photos))
    return documents


def _resize(images: list, max_pixels: int, fill: bool = False) -> list:
    """What the adapter does before the engine: sides to multiples of 32 within the pixel budget.

    fill: first scale each photo up to the whole budget (the news photos in ../shared are 460×259, i.e.
    112 visual tokens, so a larger budget alone would change nothing)."""
    from newsrec.images import smart_resize

    out = []
    for image in images:
        if fill:
            scale = (max_pixels / (image.width * image.height)) ** 0.5
            image = image.resize((int(image.width * scale), int(image.height * scale)), resample=3)
        height, width = smart_resize(image.height, image.width, factor=32, max_pixels=max_pixels)
        out.append(image if (width, height) == image.size else image.resize((width, height), resample=3))
    return out


def _reference_module():
    path = REPO_ROOT / "tests" / "qwen3_vl_reference.py"
    if not path.exists():
        raise InputError(f"bench rerank needs the repository checkout: {path} (the reference scorer) is missing")
    spec = importlib.util.spec_from_file_location("qwen3_vl_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the benchmark -----------------------------------------------------------------------------------------


# Dense bf16 tensor-core peaks (no sparsity), for MFU.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12}


def _peak_flops(device_name: str) -> float | None:
    return next((peak for name, peak in PEAK_BF16_FLOPS.items() if name in device_name), None)


def _setup(config: str, files: str | None, device: str | None):
    from newsrec.qwen3_vl.loading import build_processor, default_device

    shared = shared_dir()
    files_dir = Path(files) if files else shared / "models" / "qwen3-vl-2b"
    if not (files_dir / "vocab.json").exists() and not (files_dir / "tokenizer.json").exists():
        raise InputError(f"no Qwen3-VL tokenizer files in {files_dir}: pass --files or set NEWSREC_SHARED")
    return shared, files_dir, device or default_device(), build_processor(files_dir)


def _workload(
    shared: Path, docs: int, images_per_doc: int, query_images: int, seed: int, max_pixels: int, fill: bool = False
):
    documents = [
        (text, _resize(images, max_pixels, fill)) for text, images in make_documents(docs, images_per_doc, shared, seed)
    ]
    # The reader's profile photos: pictures of other articles (as the history's representative images).
    profile = [
        _resize(images, max_pixels, fill)[0]
        for _, images in make_documents(query_images, 1, shared, seed + 1, offset=3)
    ]
    return documents, profile


class _Clock:
    """Wall and process-CPU seconds of a block, synchronising CUDA around it."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def __enter__(self):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        import torch

        if self.cuda:
            torch.cuda.synchronize()
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def run_benchmark(
    config: str = "small",
    docs: int = 100,
    images_per_doc: int = 1,
    query_images: int = 1,
    reference_docs: int = 0,
    device: str | None = None,
    files: str | None = None,
    batch_tokens: int = 0,
    seed: int = 0,
    init_std: float = 0.0,
    visual_tokens: int = 0,
    fill_budget: bool = False,
) -> dict:
    import tempfile

    import torch

    from newsrec.qwen3_vl.engine import EngineOptions, RerankEngine
    from newsrec.qwen3_vl.feature_store import StoredImage
    from newsrec.qwen3_vl.loading import default_dtype
    from newsrec.qwen3_vl.prompt import Side, query_text
    from newsrec.qwen3_vl.random_model import make_random_model

    if docs < 1:
        raise InputError("--docs must be at least 1")
    shared, files_dir, device, processor = _setup(config, files, device)
    cuda = device.startswith("cuda")
    reference = _reference_module()
    max_pixels = (visual_tokens or Settings().visual_tokens) * 32 * 32

    started = time.perf_counter()
    model = make_random_model(
        config, files_dir, device=device, dtype=default_dtype(device), seed=seed, init_std=init_std or None
    )
    build_seconds = time.perf_counter() - started
    documents, profile = _workload(shared, docs, images_per_doc, query_images, seed, max_pixels, fill_budget)
    q_text = query_text(QUERY, SUMMARY)
    options = EngineOptions(max_pixels=max_pixels)
    if batch_tokens:
        options.batch_tokens = batch_tokens
    reference_kwargs = {"max_pixels": max_pixels}

    # Warm-up (kernel selection, allocator, thread pools) on other text so neither side is charged for it.
    warm = RerankEngine(model, processor, options)
    warm.score(INSTRUCTION, Side("warm up"), [Side(t, i) for t, i in documents[:2]])
    reference.reference_scores(model, processor, INSTRUCTION, "warm up", [], documents[:1], **reference_kwargs)
    del warm
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    n_ref = min(reference_docs or docs, docs)
    with _Clock(cuda) as reference_clock:
        want = reference.reference_scores(
            model, processor, INSTRUCTION, q_text, profile, documents[:n_ref], **reference_kwargs
        )

    side_docs = [Side(text, images) for text, images in documents]
    engine = RerankEngine(model, processor, options)
    with _Clock(cuda) as cold_clock:
        got = engine.score(INSTRUCTION, Side(q_text, profile), side_docs)
    stats = engine.last_stats
    cold_patches = sum(int(np.prod(f.grid)) for f in engine.vision.cache._items.values())

    # Index time: every photo (documents' and the profile's, all corpus photos) into the feature store,
    # then a fresh engine (a new process: empty memory cache) scores with features read from the store.
    with tempfile.TemporaryDirectory(prefix="newsrec-features-") as home:
        indexer = RerankEngine(model, processor, options, feature_home=home)
        photos = profile + [image for _, images in documents for image in images]
        with _Clock(cuda) as index_clock:
            keys = dict(zip(map(id, photos), indexer.prepare(photos), strict=True))
        bytes_per_image = indexer.vision.store.bytes_per_image()
        del indexer
        indexed = RerankEngine(model, processor, options, feature_home=home)
        stored_docs = [Side(text, [StoredImage(keys[id(image)]) for image in images]) for text, images in documents]
        stored_query = Side(q_text, [StoredImage(keys[id(image)]) for image in profile])
        with _Clock(cuda) as indexed_clock:
            got_indexed = indexed.score(INSTRUCTION, stored_query, stored_docs)
        store_hits = indexed.vision.store_hits

    # A second request over the same candidates: every photo now comes from the memory cache.
    with _Clock(cuda) as warm_clock:
        engine.score(INSTRUCTION, Side(query_text("football transfer news", SUMMARY), profile), side_docs)

    delta = np.abs(np.asarray(got[:n_ref]) - np.asarray(want))
    delta_indexed = np.abs(np.asarray(got_indexed[:n_ref]) - np.asarray(want))
    top = min(10, n_ref)
    top_ref = list(np.argsort(-np.asarray(want), kind="stable")[:top])
    top_eng = list(np.argsort(-np.asarray(got_indexed[:n_ref]), kind="stable")[:top])
    reference_pps = n_ref / reference_clock.wall
    reference_cpu_per_pair = reference_clock.cpu / n_ref
    figures = {
        "config": config,
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(default_dtype(device)).replace("torch.", ""),
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
        "attn": model.config._attn_implementation,
        "docs": docs,
        "images_per_doc": images_per_doc,
        "query_images": query_images,
        "visual_tokens": max_pixels // 1024,
        "visual_tokens_per_photo": round(
            cold_patches / model.config.vision_config.spatial_merge_size**2 / max(1, len(engine.vision.cache)), 1
        ),
        "reference_docs": n_ref,
        "model_build_s": round(build_seconds, 1),
        "reference_pairs_per_s": round(reference_pps, 2),
        "engine_pairs_per_s": round(docs / cold_clock.wall, 2),
        "engine_indexed_pairs_per_s": round(docs / indexed_clock.wall, 2),
        "speedup": round(docs / cold_clock.wall / reference_pps, 2),
        "speedup_indexed": round(docs / indexed_clock.wall / reference_pps, 2),
        "speedup_warm": round(docs / warm_clock.wall / reference_pps, 2),
        "speedup_cpu_time": round(reference_cpu_per_pair * docs / cold_clock.cpu, 2),
        "speedup_indexed_cpu_time": round(reference_cpu_per_pair * docs / indexed_clock.cpu, 2),
        "engine_seconds": round(cold_clock.wall, 3),
        "engine_indexed_seconds": round(indexed_clock.wall, 3),
        "engine_warm_seconds": round(warm_clock.wall, 3),
        "engine_cpu_seconds": round(cold_clock.cpu, 2),
        "engine_indexed_cpu_seconds": round(indexed_clock.cpu, 2),
        "index_cpu_seconds_per_photo": round(index_clock.cpu / max(1, len(photos)), 4),
        "reference_seconds_extrapolated": round(docs / reference_pps, 3),
        "index_seconds_per_photo": round(index_clock.wall / max(1, len(photos)), 4),
        "feature_bytes_per_photo": int(bytes_per_image),
        "store_hits": store_hits,
        "max_abs_delta": float(max(delta.max(), delta_indexed.max())),
        "top10_identical": top_ref == top_eng,
        "top10_overlap": len(set(top_ref) & set(top_eng)),
        "score_range": [round(float(min(want)), 4), round(float(max(want)), 4)],
        "tokens_reference": stats.pair_tokens,
        "tokens_engine": stats.tokens,
        "prefix_tokens": stats.prefix_tokens,
        "padded_tokens": stats.padded_tokens,
        "batches": stats.batches,
    }
    if cuda:
        figures["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        text_params = sum(p.numel() for p in model.model.language_model.parameters())
        vision_params = sum(p.numel() for p in model.model.visual.parameters())
        decoder_flops = 2 * text_params * stats.tokens
        cold_flops = decoder_flops + 2 * vision_params * cold_patches
        figures["engine_tflops"] = round(cold_flops / cold_clock.wall / 1e12, 1)
        figures["engine_indexed_tflops"] = round(decoder_flops / indexed_clock.wall / 1e12, 1)
        peak = _peak_flops(figures["device"])
        if peak:
            figures["mfu"] = round(cold_flops / cold_clock.wall / peak, 3)
            figures["mfu_indexed"] = round(decoder_flops / indexed_clock.wall / peak, 3)
    else:
        figures["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return figures


def run_accuracy(
    config: str = "small", docs: int = 16, device: str | None = None, files: str | None = None, seed: int = 0
) -> dict:
    """bf16 engine and bf16 reference, each against the fp32 reference on the same seeded weights."""
    import copy

    import torch

    from newsrec.qwen3_vl.engine import EngineOptions, RerankEngine
    from newsrec.qwen3_vl.prompt import Side, query_text
    from newsrec.qwen3_vl.random_model import make_random_model

    if docs < 16:
        raise InputError("--accuracy needs at least 16 documents (--docs)")
    shared, files_dir, device, processor = _setup(config, files, device)
    reference = _reference_module()
    max_pixels = Settings().image_max_pixels
    documents, profile = _workload(shared, docs, 1, 1, seed, max_pixels)
    q_text = query_text(QUERY, SUMMARY)
    fp32 = make_random_model(config, files_dir, device=device, dtype=torch.float32, seed=seed)
    truth = np.asarray(
        reference.reference_scores(fp32, processor, INSTRUCTION, q_text, profile, documents, max_pixels=max_pixels)
    )
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    del fp32
    ref_bf16 = np.asarray(
        reference.reference_scores(bf16, processor, INSTRUCTION, q_text, profile, documents, max_pixels=max_pixels)
    )
    engine = RerankEngine(bf16, processor, EngineOptions(max_pixels=max_pixels))
    eng_bf16 = np.asarray(engine.score(INSTRUCTION, Side(q_text, profile), [Side(t, i) for t, i in documents]))
    engine_delta, reference_delta = np.abs(eng_bf16 - truth), np.abs(ref_bf16 - truth)
    top = min(10, docs)
    top_truth = set(np.argsort(-truth, kind="stable")[:top].tolist())
    mean_ratio = float(engine_delta.mean() / max(reference_delta.mean(), 1e-12))
    max_ratio = float(engine_delta.max() / max(reference_delta.max(), 1e-12))
    return {
        "config": config,
        "device": device,
        "docs": docs,
        "engine_bf16_mean_abs_delta": float(engine_delta.mean()),
        "engine_bf16_max_abs_delta": float(engine_delta.max()),
        "reference_bf16_mean_abs_delta": float(reference_delta.mean()),
        "reference_bf16_max_abs_delta": float(reference_delta.max()),
        "mean_ratio": round(mean_ratio, 3),
        "max_ratio": round(max_ratio, 3),
        "ratio_target_met": mean_ratio <= 1.25 and max_ratio <= 1.25,
        "top10_set_equals_fp32": set(np.argsort(-eng_bf16, kind="stable")[:top].tolist()) == top_truth,
        "reference_top10_set_equals_fp32": set(np.argsort(-ref_bf16, kind="stable")[:top].tolist()) == top_truth,
        "score_range_fp32": [round(float(truth.min()), 4), round(float(truth.max()), 4)],
    }


if __name__ == "__main__":  # `python -m newsrec.bench.rerank ...` works without the rest of the CLI
    import sys

    _parser = argparse.ArgumentParser(prog="python -m newsrec.bench.rerank")
    _args = add_parser(_parser.add_subparsers()).parse_args(sys.argv[1:])
    raise SystemExit(_command(_args))
