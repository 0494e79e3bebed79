"""Vision-tower outputs of Qwen3-VL, computed once per picture and reused across queries.

A news photo is shown with many queries; its visual tokens depend only on its pixels and the pixel
budget, never on the text around it (the vision tower attends within one image). So we key the
features by a hash of the decoded pixels plus the budget and keep them in an LRU bounded by bytes.
The cache holds everything the language model consumes: the merged patch embeddings that replace
the <|image_pad|> tokens and the deepstack features that Qwen3-VL adds to the hidden states of its
first decoder layers, together with the patch grid that decides the M-RoPE positions.

Behind the in-memory LRU sits an optional persistent store (feature_store.py) that `index` fills with
every document photo's features; a photo given as a `StoredImage` is looked up there by key and never
decoded. Photos that still need the tower go through it in batches, attention batched per photo size
(vision_attention.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from newsrec.qwen3_vl.vision_attention import batched_vision_attention

__all__ = ["VisionFeatures", "VisionCache", "VisionEncoder", "image_key"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisionFeatures:
    grid: tuple[int, int, int]  # (t, h, w) in 16-px patches, as image_grid_thw
    embeds: torch.Tensor  # (n_tokens, hidden): replace the image's <|image_pad|> tokens
    deepstack: torch.Tensor  # (n_deepstack_layers, n_tokens, hidden): added after the first decoder layers

    @property
    def n_tokens(self) -> int:
        return self.embeds.shape[0]

    @property
    def nbytes(self) -> int:
        return self.embeds.numel() * self.embeds.element_size() + self.deepstack.numel() * self.deepstack.element_size()


def image_key(image: Any, min_pixels: int, max_pixels: int) -> str:
    """Content hash of a decoded PIL image and the pixel budget it is encoded with."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}|{image.size}|{min_pixels}|{max_pixels}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class VisionCache:
    """LRU of VisionFeatures bounded by their total bytes (0 disables caching)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, VisionFeatures] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> VisionFeatures | None:
        features = self._items.get(key)
        if features is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return features

    def put(self, key: str, features: VisionFeatures) -> None:
        if self.max_bytes <= 0 or features.nbytes > self.max_bytes or key in self._items:
            return
        self._items[key] = features
        self.bytes += features.nbytes
        while self.bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= evicted.nbytes

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)


class VisionEncoder:
    """Images -> VisionFeatures through the model's image processor and vision tower, with the cache."""

    def __init__(
        self,
        model,
        image_processor,
        min_pixels: int,
        max_pixels: int,
        cache: VisionCache,
        max_batch_patches: int = 32768,
        store: Any = None,
        batched_attention: bool = True,
    ):
        self.visual = model.model.visual
        self.image_processor = image_processor
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.cache = cache
        self.max_batch_patches = max_batch_patches
        self.store = store  # FeatureStore or None
        self.batched_attention = batched_attention
        self.images_encoded = 0
        self.store_hits = 0

    @property
    def size(self) -> dict[str, int]:
        """The image processor's budget: area in [min_pixels, max_pixels], sides multiples of 32."""
        return {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}

    def key(self, image: Any) -> str:
        stored = getattr(image, "key", None)  # a StoredImage
        return stored if stored is not None else image_key(image, self.min_pixels, self.max_pixels)

    def encode(self, images: Sequence[Any], persist: bool = False) -> list[VisionFeatures]:
        """Features for each image (PIL image or StoredImage), in order; only images in neither the cache
        nor the store reach the vision tower. persist: write what was computed to the store."""
        keys = [self.key(image) for image in images]
        found: dict[str, VisionFeatures] = {}
        missing: dict[str, Any] = {}
        for key, image in zip(keys, images, strict=True):
            if key in found or key in missing:
                continue
            features = self.cache.get(key)
            if features is None and self.store is not None:
                features = self.store.get(key)
                if features is not None:
                    self.store_hits += 1
                    device = self.visual.device  # on a GPU the cache keeps them there: no copy per request
                    features = VisionFeatures(features.grid, features.embeds.to(device), features.deepstack.to(device))
                    self.cache.put(key, features)
            if features is None:
                if getattr(image, "key", None) is not None:
                    raise KeyError(f"photo features {key} are not in the feature store (was it deleted?)")
                missing[key] = image
            else:
                found[key] = features
        if missing:
            computed = dict(zip(missing, self._compute(list(missing.values())), strict=True))
            for key, features in computed.items():
                self.cache.put(key, features)
                found[key] = features
        if persist and self.store is not None:
            self.store.put({key: features for key, features in found.items() if key not in self.store})
        return [found[key] for key in keys]

    def _compute(self, images: list[Any]) -> list[VisionFeatures]:
        ready = patchify(images, self.image_processor, self.min_pixels, self.max_pixels)
        if ready is None:
            batch = self.image_processor(images=images, size=self.size, return_tensors="pt")
            ready = batch["pixel_values"], batch["image_grid_thw"]
        pixels, grids = ready
        patches = grids.prod(-1).tolist()
        results: list[VisionFeatures] = []
        start = 0
        for chunk in _chunks(patches, self.max_batch_patches):
            count = sum(patches[start : start + len(chunk)])
            offset = sum(patches[:start])
            results += self._run(pixels[offset : offset + count], grids[start : start + len(chunk)])
            start += len(chunk)
        self.images_encoded += len(images)
        return results

    def _run(self, pixels: torch.Tensor, grids: torch.Tensor) -> list[VisionFeatures]:
        """One vision-tower call; on CUDA out-of-memory the images are split in halves and retried."""
        try:
            device = self.visual.device
            with batched_vision_attention(self.visual) if self.batched_attention else contextlib.nullcontext():
                output = self.visual(pixels.to(device, self.visual.dtype), grid_thw=grids.to(device), return_dict=True)
        except torch.OutOfMemoryError:
            if len(grids) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(grids) // 2
            cut = int(grids[:half].prod(-1).sum())
            log.warning("out of GPU memory in the vision tower; retrying %d images in two halves", len(grids))
            return self._run(pixels[:cut], grids[:half]) + self._run(pixels[cut:], grids[half:])
        merge = self.visual.spatial_merge_size**2
        sizes = (grids.prod(-1) // merge).tolist()
        embeds = torch.split(output.pooler_output, sizes)
        deepstack = torch.stack(list(output.deepstack_features))  # (layers, total_tokens, hidden)
        stacks = torch.split(deepstack, sizes, dim=1)
        return [
            VisionFeatures(tuple(int(v) for v in grid), emb, stack)
            for grid, emb, stack in zip(grids.tolist(), embeds, stacks, strict=True)
        ]


def patchify(
    images: Sequence[Any], processor, min_pixels: int, max_pixels: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(pixel_values, image_grid_thw) as the image processor makes them, for RGB images that need no resize.

    The processor works one image at a time in Python (about 9 ms per news photo on a CPU, most of a cold
    request's vision time); for images whose sides are already multiples of patch x merge within the
    pixel budget (the reranker resizes them so), its work is rescale, normalise and a reshape into
    patches, done here for the whole list at once. None when any image needs the processor's resize.
    Checked equal to the processor in tests/test_qwen3_vl_reranker.py.
    """
    patch, merge, temporal = processor.patch_size, processor.merge_size, processor.temporal_patch_size
    factor = patch * merge
    if not images or any(
        image.mode != "RGB" or image.width % factor or image.height % factor
        or not min_pixels <= image.width * image.height <= max_pixels
        for image in images
    ):  # fmt: skip
        return None
    mean = torch.tensor(processor.image_mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(processor.image_std, dtype=torch.float32).view(3, 1, 1)
    pieces, grids = [], []
    for image in images:
        x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)  # (C, H, W)
        x = (x * float(processor.rescale_factor) - mean) / std
        grid_h, grid_w = image.height // patch, image.width // patch
        x = x.reshape(3, grid_h // merge, merge, patch, grid_w // merge, merge, patch)
        x = x.permute(1, 4, 2, 5, 0, 3, 6)  # (gh/m, gw/m, m, m, C, p, p): merge groups stay contiguous
        x = x.unsqueeze(5).expand(*x.shape[:5], temporal, patch, patch)  # a still image fills both frames
        pieces.append(x.reshape(grid_h * grid_w, 3 * temporal * patch * patch))
        grids.append([1, grid_h, grid_w])
    return torch.cat(pieces), torch.tensor(grids, dtype=torch.long)


def _chunks(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive groups of `sizes` whose sum stays within `budget` (a single oversized item is its own group)."""
    groups: list[list[int]] = [[]]
    total = 0
    for size in sizes:
        if groups[-1] and total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(size)
        total += size
    return [group for group in groups if group]
