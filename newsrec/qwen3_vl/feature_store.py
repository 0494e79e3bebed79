"""Photo features computed at index time and kept on disk, so a request runs only the decoder.

A document photo's vision-tower output (merged embeddings + deepstack features, see vision_cache.py)
never depends on the query. `index` computes it once per photo and pixel budget and writes it here; the
reranker then loads it by key instead of decoding, resizing and encoding the photo.

Layout under NEWSREC_HOME/vision_features/<model fingerprint>/<budget and dtype>/:
- shard-*.safetensors: safetensors files (a maintained format read through mmap, no pickle), tensors
  `<image key>.embeds` and `<image key>.deepstack`, the grids in the header metadata. Each write is a new
  shard written to a temporary name, fsynced and renamed, so a crash never leaves half a shard and
  concurrent writers never clash. Stored in the tower's dtype: bf16 on GPU, fp32 on CPU.
- files.jsonl: which image key each indexed photo file has (resolved path, size, mtime), appended after
  each shard, so a request maps a candidate's photo file to its features with one stat() and never
  decodes it; a file changed since (size or mtime) is simply decoded and encoded again.

The model fingerprint is the checkpoint's revision (hub commit) when known plus a hash of vision weights,
so another checkpoint, or a retrained one in the same folder, never reads these features.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

import torch

from newsrec.qwen3_vl.vision_cache import VisionFeatures

try:
    from safetensors import SafetensorError
except ImportError:  # older safetensors: its errors are plain exceptions
    SafetensorError = OSError  # type: ignore[misc,assignment]

__all__ = ["FeatureStore", "StoredImage", "model_fingerprint"]

log = logging.getLogger(__name__)

STORE_DIR = "vision_features"
SHARD_GLOB = "shard-*.safetensors"
FILES_FILE = "files.jsonl"
PARTS = ("embeds", "deepstack")
MERGE = 4  # patches per visual token: Qwen3-VL merges 2 x 2 patches


def _checked_grids(handle) -> dict[str, tuple[int, int, int]]:
    """The shard's grids, checked against its tensors' shapes from the header alone (no tensor is read):
    metadata that disagrees with its tensors would fail deep in the decoder ("expanded size ...")."""
    grids = json.loads((handle.metadata() or {}).get("grids", "{}"))
    if not isinstance(grids, dict):
        raise ValueError("grids metadata is not a mapping")
    names = set(handle.keys())
    checked = {}
    for key, grid in grids.items():
        if not (isinstance(grid, list) and len(grid) == 3 and all(isinstance(n, int) and n > 0 for n in grid)):
            raise ValueError(f"{key}: grid {grid!r} is not three positive integers")
        if not {f"{key}.{part}" for part in PARTS} <= names:
            raise ValueError(f"{key}: tensors missing")
        embeds = handle.get_slice(f"{key}.embeds").get_shape()
        deepstack = handle.get_slice(f"{key}.deepstack").get_shape()
        tokens = grid[0] * grid[1] * grid[2] // MERGE
        if len(embeds) != 2 or embeds[0] != tokens or len(deepstack) != 3 or list(deepstack[1:]) != list(embeds):
            raise ValueError(f"{key}: tensors of shape {embeds} / {deepstack} do not fit grid {grid}")
        checked[key] = (grid[0], grid[1], grid[2])
    return checked


class StoredImage:
    """A photo whose features are in the store: the engine loads them instead of encoding pixels."""

    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key

    def __repr__(self) -> str:
        return f"StoredImage({self.key!r})"


def model_fingerprint(model) -> str:
    """Revision of the checkpoint plus a hash of vision weights that every feature depends on."""
    visual = model.model.visual
    digest = hashlib.blake2b(digest_size=8)
    config = model.config
    digest.update(f"{getattr(config, '_commit_hash', None)}|{config.name_or_path}|{visual.dtype}".encode())
    for weight in (visual.patch_embed.proj.weight, visual.merger.linear_fc2.weight):
        digest.update(weight.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


class FeatureStore:
    """Features of one model at one pixel budget; safe to share between threads and processes."""

    def __init__(self, home: str | Path, fingerprint: str, min_pixels: int, max_pixels: int, dtype: torch.dtype):
        dtype_name = str(dtype).replace("torch.", "")
        self.dir = Path(home) / STORE_DIR / fingerprint / f"px{min_pixels}-{max_pixels}-{dtype_name}"
        self.dtype = dtype
        self._lock = threading.Lock()
        self._where: dict[str, tuple[Path, tuple[int, int, int]]] = {}  # image key -> (shard, grid)
        self._handles: dict[Path, object] = {}
        self._known_shards: set[Path] = set()
        self._files: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> image key
        self._files_offset = 0
        self._finite: set[str] = set()  # keys whose tensors were loaded and found finite
        self.loads = 0
        self.refresh()

    # --- reading ------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up shards and document records written since the last look (by this or another process)."""
        from safetensors import safe_open

        if not self.dir.exists():
            return
        with self._lock:
            for shard in sorted(self.dir.glob(SHARD_GLOB)):
                if shard in self._known_shards:
                    continue
                try:
                    handle = safe_open(str(shard), framework="pt", device="cpu")  # memory-mapped
                    grids = _checked_grids(handle)
                except (SafetensorError, OSError, ValueError, TypeError) as error:
                    self._move_aside(shard, f"{type(error).__name__}: {error}")
                    continue
                for key, grid in grids.items():
                    self._where[key] = (shard, grid)
                self._handles[shard] = handle
                self._known_shards.add(shard)
            self._read_files()

    def _move_aside(self, shard: Path, reason: str) -> None:
        """A damaged shard is renamed out of SHARD_GLOB (kept for a post-mortem); its photos are encoded again
        from their pixels by requests, and stored again by the next `index`. Call with the lock held."""
        for key in [key for key, (where, _) in self._where.items() if where == shard]:
            del self._where[key]
        self._handles.pop(shard, None)
        self._known_shards.discard(shard)
        aside = shard.with_name(f"damaged-{shard.name}")
        try:
            shard.replace(aside)
        except OSError as error:  # read-only store, or another process moved it first: skip it all the same
            log.debug("cannot move %s aside: %s", shard, error)
        log.warning("photo-feature shard %s is damaged (%s): moved aside; its photos are encoded again", shard, reason)

    def _read_files(self) -> None:
        path = self.dir / FILES_FILE
        if not path.exists():
            return
        with open(path, "rb") as handle:
            handle.seek(self._files_offset)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being appended is read next time
        self._files_offset += len(complete)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
                self._files[(record["path"], int(record["size"]), int(record["mtime_ns"]))] = record["key"]
            except (ValueError, KeyError, TypeError):
                log.warning("skipping a damaged line in %s", path)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def __len__(self) -> int:
        return len(self._where)

    def get(self, key: str) -> VisionFeatures | None:
        found = self._where.get(key)
        if found is None:
            return None
        shard, grid = found
        handle = self._handles[shard]
        self.loads += 1
        return VisionFeatures(grid, handle.get_tensor(f"{key}.embeds"), handle.get_tensor(f"{key}.deepstack"))

    def file_key(self, path: str | Path) -> str | None:
        """The image key of a local photo file indexed before and unchanged since, else None."""
        try:
            resolved = Path(path).resolve()
            stat = resolved.stat()
        except OSError:
            return None
        key = self._files.get((str(resolved), stat.st_size, stat.st_mtime_ns))
        if key not in self._where:
            return None
        return key if self._verified(key) else None

    def _verified(self, key: str) -> bool:
        """Load the key's tensors once and require finite values: NaN features are never scored. A shard
        holding any is moved aside (its other photos are encoded again too: one bad write spoils the shard)."""
        if key in self._finite:
            return True
        with self._lock:
            found = self._where.get(key)
            if found is None:
                return False
            shard = found[0]
            try:
                handle = self._handles[shard]
                finite = all(bool(torch.isfinite(handle.get_tensor(f"{key}.{part}")).all()) for part in PARTS)
            except (SafetensorError, OSError, RuntimeError, KeyError) as error:
                self._move_aside(shard, f"{type(error).__name__}: {error}")
                return False
            if not finite:
                self._move_aside(shard, f"non-finite features for {key}")
                return False
            self._finite.add(key)
            return True

    @staticmethod
    def file_record(path: str | Path, key: str) -> dict | None:
        try:
            resolved = Path(path).resolve()
            stat = resolved.stat()
        except OSError:
            return None
        return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "key": key}

    def bytes_per_image(self) -> float:
        """Mean stored size of one photo's features (embeds + deepstack), from the shard files."""
        if not self._where:
            return 0.0
        return sum(shard.stat().st_size for shard in self._known_shards) / len(self._where)

    # --- writing ------------------------------------------------------------------------------------------

    def put(self, features: dict[str, VisionFeatures], files: Iterable[dict] = ()) -> None:
        """Write new features as one shard (atomically), then append the photo-file records."""
        from safetensors.torch import save_file

        fresh = {key: value for key, value in features.items() if key not in self._where}
        self.dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            tensors = {}
            for key, value in fresh.items():
                tensors[f"{key}.embeds"] = value.embeds.detach().to("cpu", self.dtype).contiguous()
                tensors[f"{key}.deepstack"] = value.deepstack.detach().to("cpu", self.dtype).contiguous()
            grids = {key: list(value.grid) for key, value in fresh.items()}
            name = f"shard-{uuid.uuid4().hex}.safetensors"
            temporary = self.dir / f".{name}.tmp"
            save_file(tensors, str(temporary), metadata={"grids": json.dumps(grids)})
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, self.dir / name)
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in files)
        if lines:
            with open(self.dir / FILES_FILE, "a", encoding="utf-8") as handle:
                handle.write(lines)  # one write: concurrent appenders do not interleave within it
                handle.flush()
                os.fsync(handle.fileno())
        self.refresh()
