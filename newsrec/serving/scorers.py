"""What `newsrec serve` runs: the configured reranker, seen as a scorer of (instruction, query, documents).

The wire carries text and images, not NewsItems, so the server scores prompt sides directly:
- Qwen3-VL: the reranker's engine (`engine.score_many(requests)`: a worker turn's requests, whatever
  their queries, in shared decoder calls), so its prefix KV caches and its vision cache serve every
  caller. Images are decoded and resized exactly as the in-process reranker does, so a remote score
  equals the in-process one. Token counts are the pairs' prompt tokens as the model reads them.
- lite: text only (images ignored); documents are embedded on the fly (one embedder call per turn) and
  scored by the lite formula with the query side as the query (no profile travels over the wire). It
  reads no prompt, so its token counts are the words of query and document.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

from newsrec.errors import InputError
from newsrec.qwen3_vl.prompt import ScoreRequest, ScoreResult, Side
from newsrec.rerankers.qwen3_vl import IMAGE_FACTOR, MIN_PIXELS
from newsrec.serving.protocol import WireSide

__all__ = ["PairScorer", "EngineScorer", "LiteScorer", "build_scorer", "ImageDecoder", "PixelBudget"]

log = logging.getLogger(__name__)

DECODED_MEMO = 256  # decoded images kept (profile photos recur across requests)


class PairScorer(Protocol):
    name: str  # the scorer's score-cache identity (checkpoint, pixel budget); internal, not a served name
    default_instruction: str
    max_pixels: int  # per-image budget; 0 = the scorer reads no images

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        """Scores and prompt tokens of each request's documents, one result per request, in order."""
        ...


class PixelBudget:
    """Source pixels one request may make the server decode (decoding, not bytes, is the cost: a 47 KB PNG
    can hold 7000 x 7000 pixels). Charged from each image's header before its pixels are decoded."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0

    def charge(self, width: int, height: int) -> None:
        self.used += width * height
        if self.used > self.limit:
            raise InputError(
                f"the request's images hold over {self.limit:,} pixels in all; send fewer or smaller images"
            )


class ImageDecoder:
    """data: URLs -> RGB images resized to the scorer's pixel budget, memoised by URL digest."""

    def __init__(self, max_pixels: int, max_bytes: int):
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self._memo: OrderedDict[int, Any] = OrderedDict()
        self._lock = threading.Lock()

    def decode(self, url: str, budget: PixelBudget | None = None) -> Any:
        key = hash(url)
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        image = self._decode(url, budget)
        with self._lock:
            self._memo[key] = image
            while len(self._memo) > DECODED_MEMO:
                self._memo.popitem(last=False)
        return image

    def _decode(self, url: str, budget: PixelBudget | None = None) -> Any:
        from PIL import Image

        from newsrec.images import load_image, smart_resize

        header, sep, payload = url.partition(",")
        if not (sep and header.startswith("data:image/") and header.endswith(";base64")):
            raise InputError("images must be data:image/...;base64 URLs (the server fetches nothing)")
        if len(payload) * 3 // 4 > self.max_bytes:
            raise InputError(f"an image is over {self.max_bytes // 2**20} MB")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InputError("an image data URL is not valid base64") from None
        if budget is not None:
            try:
                with Image.open(io.BytesIO(data)) as header:  # reads the header only
                    size = header.size
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                size = (0, 0)  # not an image: load_image below says why
            budget.charge(*size)
        image = load_image(data)
        # The same resize as the in-process reranker, so both feed the engine identical pixels.
        height, width = smart_resize(
            image.height, image.width, factor=IMAGE_FACTOR, min_pixels=MIN_PIXELS, max_pixels=self.max_pixels
        )
        if (width, height) != image.size:
            image = image.resize((width, height), resample=3)
        return image


class EngineScorer:
    """A loaded Qwen3-VL reranker's engine behind the wire."""

    def __init__(self, reranker: Any):
        self.reranker = reranker
        self.engine = reranker.engine
        self.name = reranker.name
        self.default_instruction = reranker.settings.instruction
        self.max_pixels = int(self.engine.options.max_pixels)

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return self.engine.score_many(requests)


class LiteScorer:
    """The lite formula on text: query relevance between the query side and each document."""

    max_pixels = 0

    def __init__(self, embedder: Any, instruction: str):
        from newsrec.rerankers.lite import LiteReranker

        self.embedder = embedder
        self.reranker = LiteReranker(embedder)
        self.name = f"{self.reranker.name}+{embedder.name}"
        self.default_instruction = instruction

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        from newsrec.types import Candidate, NewsItem, RerankRequest

        items = [[NewsItem(id=str(i), title=doc.text) for i, doc in enumerate(r.documents)] for r in requests]
        flat = [item for group in items for item in group]
        vectors = iter(self.embedder.embed_documents(flat) if flat else [])
        results = []
        for request, group in zip(requests, items, strict=True):
            candidates = [Candidate(item, 0.0, i + 1, next(vectors)) for i, item in enumerate(group)]
            scores = self.reranker.score(RerankRequest(query=request.query.text or " "), candidates)
            words = len(request.query.text.split())
            results.append(ScoreResult(list(scores), [words + len(doc.text.split()) for doc in request.documents]))
        return results


def served_model_names(settings: Any, names: Sequence[str] = ()) -> list[str]:
    """The model names clients may send (vLLM's --served-model-name): `names` when given, else the configured
    reranker name and the checkpoint it loads (the hub id, or --reranker-model as given)."""
    from newsrec.models import get_spec

    if names:
        return list(dict.fromkeys(name.strip() for name in names if name.strip()))
    name = settings.resolved_reranker
    served = [name]
    if name != "lite":
        served.append(str(settings.reranker_model or "").strip() or get_spec(name).hf_id)
    return list(dict.fromkeys(served))


def build_scorer(settings: Any, device: str | None = None) -> PairScorer:
    """The scorer for settings.resolved_reranker (lite or a Qwen3-VL reranker from settings.reranker_model)."""
    from newsrec.rerankers import get_reranker

    name = settings.resolved_reranker
    if name == "remote":
        raise InputError("`newsrec serve` serves a local reranker: unset NEWSREC_RERANKER_URL / --reranker-url")
    if name == "lite":
        from newsrec.embedders import get_embedder

        embedder = get_embedder("lite", settings=settings)
        return LiteScorer(embedder, settings.instruction)
    options: dict[str, Any] = {"settings": settings, "embedder": None}
    if settings.reranker_model:
        options["model"] = settings.reranker_model
    if device:
        options["device"] = device
    return EngineScorer(get_reranker(name, **options))


def sides(wire: WireSide, decoder: ImageDecoder | None, budget: PixelBudget | None = None) -> Side:
    """A wire side as the engine's Side: images decoded (or dropped for a text-only scorer)."""
    images = [decoder.decode(url, budget) for url in wire.image_urls] if decoder is not None else []
    return Side(wire.text, images)
