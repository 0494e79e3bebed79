"""Qwen3-VL-Reranker (2B / 8B) behind the pipeline's Reranker protocol.

This module only turns a RerankRequest and its candidates into the two sides of the model's input
(format and reasons in newsrec/qwen3_vl/prompt.py) and loads images; the scoring itself is the
engine's (newsrec/qwen3_vl/engine.py). Scores are probabilities in [0, 1].

`prepare_documents` (called by `index` and when the recommender starts) runs every document photo
through the vision tower once and keeps the features in NEWSREC_HOME/vision_features; a request then
hands the engine stored features for those photos instead of decoding and encoding them.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from newsrec.config import Settings
from newsrec.errors import InputError
from newsrec.models import get_spec, require_model
from newsrec.rerankers import register_reranker
from newsrec.types import Candidate, ImageRef, NewsItem, RerankRequest

__all__ = ["Qwen3VLReranker", "build"]

log = logging.getLogger(__name__)

IMAGE_FACTOR = 32  # 16-px patches merged 2×2: image sides must be multiples of this
MIN_PIXELS = 4 * IMAGE_FACTOR**2  # official minimum
DEFAULT_PROFILE_IMAGES = 1  # history photos on the query side; 0 = text-only personalisation
IMAGE_MEMO = 512  # decoded, resized images kept between requests (a few MB of thumbnails)
PREPARE_CHUNK = 64  # photos decoded and encoded per step at index time


class Qwen3VLReranker:
    def __init__(
        self,
        name: str,
        model,
        processor,
        settings: Settings | None = None,
        image_root: str | Path | None = None,
        profile_images: int = DEFAULT_PROFILE_IMAGES,
        engine_options: Any = None,
        feature_store: bool = True,
    ):
        from newsrec.qwen3_vl.engine import EngineOptions, RerankEngine

        self.settings = settings or Settings()
        self.image_root = Path(image_root) if image_root else None
        self.profile_images = max(0, min(int(profile_images), 3))
        options = engine_options or EngineOptions(max_pixels=self.settings.image_max_pixels, min_pixels=MIN_PIXELS)
        self.engine = RerankEngine(model, processor, options, self.settings.home if feature_store else None)
        # The name keys the score cache: what changes a score (pixel budget, profile photos) belongs in it.
        self.name = f"{name}-px{options.max_pixels}-q{self.profile_images}"
        self._images: OrderedDict[str, Any] = OrderedDict()

    def score(self, request: RerankRequest, candidates: Sequence[Candidate]) -> list[float]:
        from newsrec.qwen3_vl.prompt import Side, document_text, query_text

        if not candidates:
            return []
        profile = request.profile
        summary = profile.summary if profile else ""
        query_images = self._load(profile.images[: self.profile_images]) if profile else []
        query = Side(query_text(request.query, summary), query_images)
        documents = [
            Side(document_text(c.item.title, c.item.body), self._load(c.item.images[: self.settings.max_images]))
            for c in candidates
        ]
        instruction = request.instruction or self.settings.instruction
        return self.engine.score(instruction, query, documents)

    def prepare_documents(self, items: Sequence[NewsItem]) -> int:
        """Encode the photos of `items` not yet in the feature store (index time); returns how many."""
        store = self.engine.vision.store
        if store is None:
            return 0
        store.refresh()
        todo: dict[str, ImageRef] = {}
        for item in items:
            for ref in item.images[: self.settings.max_images]:
                path = self._path(ref)
                if path is not None and path not in todo and store.file_key(path) is None:
                    todo[path] = ref
        pending = list(todo.items())
        for begin in range(0, len(pending), PREPARE_CHUNK):
            images, paths = [], []
            for path, ref in pending[begin : begin + PREPARE_CHUNK]:
                image = self._decode(ref)
                if image is not None:
                    images.append(image)
                    paths.append(path)
            keys = self.engine.prepare(images)
            store.put(
                {}, [record for path, key in zip(paths, keys, strict=True) if (record := store.file_record(path, key))]
            )
            log.info("photo features: %d of %d photos encoded", min(begin + PREPARE_CHUNK, len(pending)), len(pending))
        return len(pending)

    def _path(self, ref: ImageRef) -> str | None:
        """The local file of a photo (None for remote URLs, which are fetched per request)."""
        if "://" in ref.uri:
            return None
        return str(self.image_root / ref.uri) if self.image_root else ref.uri

    def _load(self, refs: Sequence[ImageRef]) -> list[Any]:
        """Stored features of indexed photos, else decoded RGB images resized to the pixel budget; an
        unusable image is skipped with a warning."""
        from newsrec.qwen3_vl.feature_store import StoredImage

        store = self.engine.vision.store
        images = []
        for ref in refs:
            path = self._path(ref)
            key = store.file_key(path) if store is not None and path is not None else None
            if key is not None:
                images.append(StoredImage(key))
                continue
            memo = path or ref.uri
            image = self._images.get(memo)
            if image is None:
                image = self._decode(ref)
                if image is None:
                    continue
                self._images[memo] = image
                while len(self._images) > IMAGE_MEMO:
                    self._images.popitem(last=False)
            else:
                self._images.move_to_end(memo)
            images.append(image)
        return images

    def _decode(self, ref: ImageRef) -> Any:
        from newsrec.images import load_image_uri, smart_resize

        try:
            image = load_image_uri(ref.uri, self.settings, base=self.image_root)
            height, width = smart_resize(
                image.height,
                image.width,
                factor=IMAGE_FACTOR,
                min_pixels=MIN_PIXELS,
                max_pixels=self.engine.options.max_pixels,
            )
        except (InputError, OSError) as error:  # one broken photo must not fail the whole ranking
            log.warning("skipping image %s: %s", ref.uri, error)
            return None
        if (width, height) != image.size:
            image = image.resize((width, height), resample=3)  # bicubic, as the processor resizes
        return image


def build(
    name: str,
    model: str = "",
    device: str | None = None,
    settings: Settings | None = None,
    image_root: str | Path | None = None,
    profile_images: int = DEFAULT_PROFILE_IMAGES,
    engine_options: Any = None,
    **unused: Any,
) -> Qwen3VLReranker:
    """Load reranker `name` from `model` (hub id or local folder; default: the spec's hub id) onto `device`.

    Options meant for other models (the pipeline passes one set to all factories) are ignored.
    """
    if unused:
        log.debug("%s ignores options %s", name, sorted(unused))
    resolved = require_model(name, model or (settings.reranker_model if settings else ""), device)
    from newsrec.qwen3_vl.loading import build_processor, load_model

    processor = build_processor(resolved.source)
    loaded = load_model(resolved.source, device=resolved.device)
    identity = name
    if resolved.source != get_spec(name).hf_id:  # another checkpoint must never share score-cache entries
        source = str(Path(resolved.source).resolve()) if resolved.local else resolved.source
        identity += "-" + hashlib.sha1(source.encode()).hexdigest()[:8]
    return Qwen3VLReranker(identity, loaded, processor, settings, image_root, profile_images, engine_options)


@register_reranker("qwen3-vl-reranker-2b")
def qwen3_vl_reranker_2b(**options) -> Qwen3VLReranker:
    return build("qwen3-vl-reranker-2b", **options)


@register_reranker("qwen3-vl-reranker-8b")
def qwen3_vl_reranker_8b(**options) -> Qwen3VLReranker:
    return build("qwen3-vl-reranker-8b", **options)
