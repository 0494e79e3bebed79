"""One side of a (query, document) pair as it travels: text and image URLs, and its JSON form.

Shared by the server's wire format (newsrec/serving/protocol.py) and the clients (newsrec/remote_client.py,
the remote reranker and embedder), so a client never imports the server.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

__all__ = ["WireSide", "to_wire"]


@dataclass(frozen=True)
class WireSide:
    """One side of a pair as sent: its text and its image URLs, images first in the prompt."""

    text: str
    image_urls: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Identity of the side, to merge identical queries and documents across concurrent requests."""
        digest = hashlib.sha256(self.text.encode())
        for url in self.image_urls:
            digest.update(b"\x00" + url.encode())
        return digest.hexdigest()


def to_wire(side: WireSide) -> str | dict[str, Any]:
    """A plain string when there are no images, else the content list: images first, then the text."""
    if not side.image_urls:
        return side.text
    content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for url in side.image_urls]
    if side.text:
        content.append({"type": "text", "text": side.text})
    return {"content": content}
