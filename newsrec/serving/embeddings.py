"""`newsrec serve --serve-embedder`: the configured embedder behind an OpenAI/vLLM-compatible /v1/embeddings.

Request: {"model"?, "input": str | [str | {"content": [image_url and text parts]}], "encoding_format"?:
"float" | "base64", "input_type"?: "document" | "query"} -> {"object": "list", "data": [{"object":
"embedding", "index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}.

`input_type` is our extension (vLLM ignores unknown fields): newsrec embedders embed a news item
(`embed_documents`: text, photos) differently from a reader's query (`embed_queries`: an instruction
for Qwen3-VL-Embedding). It defaults to "document". A document's photos arrive as data URLs; they are
written, as the bytes sent, to a scratch folder of the call and handed to the embedder as ImageRefs, so it decodes and
resizes them exactly as in-process (the remote embedder sends each photo's original bytes); the folder
is removed after the call. Each photo is held to the server's per-image byte limit and its pixels (read from the
header) are charged to the request's pixel budget before the embedder decodes anything. Base64
output is the little-endian float32 bytes, as OpenAI's and vLLM's. `usage` counts words.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import tempfile
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from newsrec.errors import InputError
from newsrec.serving.protocol import Item, to_side
from newsrec.serving.scorers import PixelBudget
from newsrec.types import ImageRef, NewsItem

__all__ = ["EmbeddingBody", "EmbeddingService"]


class EmbeddingBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # user, dimensions, truncate_prompt_tokens, ...

    model: str | None = None
    input: Item | list[Item]
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["document", "query"] = "document"


class EmbeddingService:
    """One embedder, one caller at a time (embedders are not thread-safe), photos via a scratch folder."""

    def __init__(
        self,
        embedder: Any,
        max_inputs: int = 1000,
        max_text_chars: int = 20_000,
        max_images: int = 8,
        max_image_bytes: int = 10 * 2**20,
        max_request_pixels: int = 256 * 2**20,
    ):
        self.embedder = embedder
        self.name = embedder.name
        self.max_inputs, self.max_text_chars, self.max_images = max_inputs, max_text_chars, max_images
        self.max_image_bytes, self.max_request_pixels = max_image_bytes, max_request_pixels
        self._lock = threading.Lock()

    def validate(self, body: EmbeddingBody) -> list[Any]:
        """The inputs as wire sides; InputError (a 400) for what cannot be embedded."""
        items = body.input if isinstance(body.input, list) else [body.input]
        if not items:
            raise InputError("`input` is empty: send a string or a list of at least one input")
        if len(items) > self.max_inputs:
            raise InputError(f"{len(items)} inputs; the limit is {self.max_inputs} per request")
        try:
            sides = [to_side(item) for item in items]
        except ValueError as error:
            raise InputError(str(error)) from None
        for side in sides:
            if len(side.text) > self.max_text_chars:
                raise InputError(f"an input has {len(side.text):,} characters; the limit is {self.max_text_chars:,}")
            if len(side.image_urls) > self.max_images:
                raise InputError(f"an input has {len(side.image_urls)} images; the limit is {self.max_images}")
            if side.image_urls and body.input_type == "query":
                raise InputError("a query is text only; send photos as documents (input_type 'document')")
        return sides

    def embed(self, body: EmbeddingBody, sides: list[Any]) -> dict[str, Any]:
        """The response body (runs in a worker thread)."""
        with self._lock, tempfile.TemporaryDirectory(prefix="newsrec-embed-") as scratch:
            if body.input_type == "query":
                vectors = self.embedder.embed_queries([side.text for side in sides])
            else:
                folder, budget = Path(scratch), PixelBudget(self.max_request_pixels)
                items = [
                    NewsItem(
                        id=str(i),
                        title=side.text,
                        images=[_stored(url, folder, budget, self.max_image_bytes) for url in side.image_urls],
                    )
                    for i, side in enumerate(sides)
                ]
                vectors = self.embedder.embed_documents(items)
        vectors = np.asarray(vectors, dtype=np.float32)
        data = [
            {"object": "embedding", "index": i, "embedding": _encoded(vector, body.encoding_format)}
            for i, vector in enumerate(vectors)
        ]
        words = sum(len(side.text.split()) for side in sides)
        return {
            "object": "list",
            "data": data,
            "model": self.name,
            "usage": {"prompt_tokens": words, "total_tokens": words},
        }


def _stored(url: str, folder: Path, budget: PixelBudget, max_bytes: int) -> ImageRef:
    """A data URL's bytes in `folder`, named by their digest, as an absolute ImageRef.

    Every photo is charged to the request's pixel budget (the embedder decodes each reference it is given),
    from its header alone: over the budget, the request is refused before any pixel is decoded."""
    from PIL import Image

    header, sep, payload = url.partition(",")
    if not (sep and header.startswith("data:image/") and header.endswith(";base64")):
        raise InputError("images must be data:image/...;base64 URLs (the server fetches nothing)")
    if len(payload) * 3 // 4 > max_bytes:
        raise InputError(f"an image is over {max_bytes // 2**20} MB")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("an image data URL is not valid base64") from None
    try:
        with Image.open(io.BytesIO(data)) as picture:  # reads the header only
            size = picture.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        size = (0, 0)  # not an image: the embedder's load_image says why
    budget.charge(*size)
    path = folder / hashlib.sha256(data).hexdigest()
    if not path.exists():
        path.write_bytes(data)
    return ImageRef(uri=str(path))


def _encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector.tolist()
