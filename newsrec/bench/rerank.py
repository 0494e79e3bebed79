"""`newsrec bench rerank`: the Qwen3-VL-Reranker engine against the one-pair-at-a-time reference.

A random-weight model of the chosen shape (speed does not depend on weight values) with the real
tokenizer and image processor scores one personalised query against N news documents (~100-200 tokens
of real headlines and tags, plus real photos from ../shared/data/newsimages-dev). The reference is the
test oracle (tests/qwen3_vl_reference.py), i.e. the official algorithm: one processor call and one
forward per pair. Printed: pairs/s of both, the ratio, max |Δscore|, top-10 agreement, tokens run,
peak memory and, on CUDA, the achieved TFLOP/s (2 · parameters · tokens, attention excluded).
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

__all__ = ["add_parser", "register_rerank", "run_benchmark"]

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
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=_command)
    return parser


register_rerank = add_parser


def _command(args: argparse.Namespace) -> int:
    from newsrec.cli.common import print_json

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


def _resize(images: list, max_pixels: int) -> list:
    """What the adapter does before the engine: sides to multiples of 32 within the pixel budget."""
    from newsrec.images import smart_resize

    out = []
    for image in images:
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
) -> dict:
    import torch

    from newsrec.qwen3_vl.engine import EngineOptions, RerankEngine
    from newsrec.qwen3_vl.loading import build_processor, default_device, default_dtype
    from newsrec.qwen3_vl.prompt import Side, query_text
    from newsrec.qwen3_vl.random_model import make_random_model

    if docs < 1:
        raise InputError("--docs must be at least 1")
    shared = shared_dir()
    files_dir = Path(files) if files else shared / "models" / "qwen3-vl-2b"
    if not (files_dir / "vocab.json").exists() and not (files_dir / "tokenizer.json").exists():
        raise InputError(f"no Qwen3-VL tokenizer files in {files_dir}: pass --files or set NEWSREC_SHARED")
    device = device or default_device()
    cuda = device.startswith("cuda")
    reference = _reference_module()
    max_pixels = Settings().image_max_pixels

    processor = build_processor(files_dir)
    started = time.perf_counter()
    model = make_random_model(
        config, files_dir, device=device, dtype=default_dtype(device), seed=seed, init_std=init_std or None
    )
    build_seconds = time.perf_counter() - started
    documents = [
        (text, _resize(images, max_pixels)) for text, images in make_documents(docs, images_per_doc, shared, seed)
    ]
    # The reader's profile photos: pictures of other articles (as the history's representative images).
    profile = [
        _resize(images, max_pixels)[0] for _, images in make_documents(query_images, 1, shared, seed + 1, offset=3)
    ]
    q_text = query_text(QUERY, SUMMARY)
    options = EngineOptions(max_pixels=max_pixels)
    if batch_tokens:
        options.batch_tokens = batch_tokens

    def sync():
        if cuda:
            torch.cuda.synchronize()

    # Warm-up (kernel selection, allocator, thread pools) on other text so neither side is charged for it.
    warm = RerankEngine(model, processor, options)
    warm.score(INSTRUCTION, Side("warm up"), [Side(t, i) for t, i in documents[:2]])
    reference.reference_scores(model, processor, INSTRUCTION, "warm up", [], documents[:1], max_pixels=max_pixels)
    del warm
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    n_ref = min(reference_docs or docs, docs)
    sync()
    started = time.perf_counter()
    want = reference.reference_scores(
        model, processor, INSTRUCTION, q_text, profile, documents[:n_ref], max_pixels=max_pixels
    )
    sync()
    reference_seconds = time.perf_counter() - started

    engine = RerankEngine(model, processor, options)
    side_docs = [Side(text, images) for text, images in documents]
    sync()
    started = time.perf_counter()
    got = engine.score(INSTRUCTION, Side(q_text, profile), side_docs)
    sync()
    engine_seconds = time.perf_counter() - started
    stats = engine.last_stats

    # A second request over the same candidates: every photo now comes from the vision cache.
    sync()
    started = time.perf_counter()
    engine.score(INSTRUCTION, Side(query_text("football transfer news", SUMMARY), profile), side_docs)
    sync()
    warm_seconds = time.perf_counter() - started

    delta = np.abs(np.asarray(got[:n_ref]) - np.asarray(want))
    top = min(10, n_ref)
    top_ref = list(np.argsort(-np.asarray(want), kind="stable")[:top])
    top_eng = list(np.argsort(-np.asarray(got[:n_ref]), kind="stable")[:top])
    reference_pps = n_ref / reference_seconds
    engine_pps = docs / engine_seconds
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
        "reference_docs": n_ref,
        "model_build_s": round(build_seconds, 1),
        "reference_pairs_per_s": round(reference_pps, 2),
        "engine_pairs_per_s": round(engine_pps, 2),
        "engine_warm_pairs_per_s": round(docs / warm_seconds, 2),
        "speedup": round(engine_pps / reference_pps, 2),
        "speedup_warm": round(docs / warm_seconds / reference_pps, 2),
        "engine_seconds": round(engine_seconds, 3),
        "engine_warm_seconds": round(warm_seconds, 3),
        "reference_seconds_extrapolated": round(docs / reference_pps, 3),
        "max_abs_delta": float(delta.max()),
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
        patches = sum(int(np.prod(f.grid)) for f in engine.vision.cache._items.values())
        flops = 2 * text_params * stats.tokens + 2 * vision_params * patches
        figures["engine_tflops"] = round(flops / engine_seconds / 1e12, 1)
    else:
        figures["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return figures


if __name__ == "__main__":  # `python -m newsrec.bench.rerank ...` works without the rest of the CLI
    import sys

    _parser = argparse.ArgumentParser(prog="python -m newsrec.bench.rerank")
    _args = add_parser(_parser.add_subparsers()).parse_args(sys.argv[1:])
    raise SystemExit(_command(_args))
