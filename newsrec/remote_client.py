"""The HTTP client side shared by the remote reranker and the remote embedder (newsrec serve or vLLM).

Retries with backoff on transient errors, the server's error message, the base URL, and photos as data
URLs of their original bytes (the server decodes and resizes the very bytes the in-process model reads).
It sits below both clients, so neither imports the other.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from newsrec.config import Settings
from newsrec.errors import InputError
from newsrec.types import ImageRef

__all__ = ["TRANSIENT", "base_url", "error_message", "image_data_url", "post_with_retries"]

log = logging.getLogger(__name__)

TRANSIENT = {408, 429, 500, 502, 503, 504}


def image_data_url(ref: ImageRef, settings: Settings, image_root: Path | None) -> str | None:
    """The image's original bytes as a data URL, or None when the in-process model would skip it too.

    Shared with the remote embedder: both servers decode and resize the very bytes the in-process model reads.
    """
    from PIL import Image

    from newsrec.images import fetch_remote_image, load_image, smart_resize

    try:
        if "://" in ref.uri:
            data = fetch_remote_image(ref.uri, settings)
            image = load_image(data)
        else:
            path = Path(ref.uri)
            if image_root is not None and not path.is_absolute():
                path = image_root / path
            image = load_image(path)  # the checks (existence, size) the in-process model applies
            data = path.read_bytes()
        smart_resize(image.height, image.width, max_pixels=1 << 30)  # Qwen3-VL's factor and minimum
        kind = (Image.open(io.BytesIO(data)).format or "jpeg").lower()
    except (InputError, OSError) as error:
        log.warning("skipping image %s: %s", ref.uri, error)
        return None
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


def post_with_retries(http: Any, path: str, body: dict[str, Any], retries: int, backoff: float) -> tuple[Any, str]:
    """(the first answer that is not a transient error, "") or, once the retries are spent, (None, last error).

    Transient: connection errors, timeouts and the TRANSIENT statuses, retried after backoff x 2^(n-1) s.
    Shared by the remote reranker and the remote embedder; each decides what a final non-200 answer means.
    """
    import httpx

    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            response = http.post(path, json=body)
        except httpx.HTTPError as error:
            last = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            continue
        if response.status_code in TRANSIENT:
            last = f"HTTP {response.status_code}"
            continue
        return response, ""
    return None, last


def error_message(response: Any) -> str:
    try:
        payload = response.json()
        error = payload.get("error", payload)
        return str(error.get("message", error) if isinstance(error, dict) else error)[:300]
    except ValueError:
        return response.text[:300]


def base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise InputError(f"reranker URL {url!r} is not http(s)://host[:port]")
    path = parsed.path.removesuffix("/v1")  # accept the OpenAI-style base URL too
    return f"{parsed.scheme}://{parsed.netloc}{path}"
