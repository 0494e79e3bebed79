"""The wire format of `newsrec serve`: vLLM's score and rerank APIs (Cohere/Jina-shaped), as pydantic models.

Request shapes (vLLM >= 0.14, pooling runner):
- POST /v1/score  {"model", "queries" | "text_1", "documents" | "text_2", ...}
  -> {"id", "object": "list", "created", "model", "data": [{"index", "object": "score", "score"}], "usage"}
- POST /v1/rerank, /rerank, /v2/rerank  {"model", "query", "documents", "top_n"?, "return_documents"?}
  -> {"id", "model", "usage", "results": [{"index", "relevance_score", "document"?}]} (best first)

A query or document is a string or {"content": [{"type": "text", "text"}, {"type": "image_url",
"image_url": {"url": "data:image/jpeg;base64,..."}}]}. Our one extension is `instruction`: vLLM ignores
unknown fields (its instruction is the chat template's default), `newsrec serve` uses it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from newsrec.wire import WireSide, to_wire  # the plain sides, shared with the clients

__all__ = [
    "ImageURL",
    "ContentPart",
    "MultiModal",
    "ScoreBody",
    "RerankBody",
    "WireSide",
    "to_side",
    "to_wire",
]


class ImageURL(BaseModel):
    url: str


class ContentPart(BaseModel):
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None


class MultiModal(BaseModel):
    content: list[ContentPart]


Item = str | MultiModal


class _Body(BaseModel):
    # Unknown fields (vLLM's truncate_prompt_tokens, priority, mm_processor_kwargs, ...) are accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    instruction: str | None = Field(default=None, description="newsrec extension; vLLM takes it from the template")


class ScoreBody(_Body):
    queries: Item | list[Item] | None = None
    text_1: Item | list[Item] | None = None  # vLLM's older names for queries/documents
    documents: Item | list[Item] | None = None
    text_2: Item | list[Item] | None = None

    def pairs(self) -> tuple[list[Item], list[Item]]:
        """(queries, documents) of equal length: one query is paired with every document (1:N), or N:N."""
        queries = _listed(self.queries if self.queries is not None else self.text_1)
        documents = _listed(self.documents if self.documents is not None else self.text_2)
        if not queries:
            raise ValueError("`queries` (or `text_1`) is required")
        if len(queries) == 1:
            queries = queries * len(documents)
        elif len(queries) != len(documents):
            raise ValueError(f"{len(queries)} queries for {len(documents)} documents: send 1 query or one per document")
        return queries, documents


class RerankBody(_Body):
    query: Item
    documents: Item | list[Item]
    top_n: int | None = Field(default=None, ge=0)  # 0 or None = all
    return_documents: bool = True

    def document_list(self) -> list[Item]:
        return _listed(self.documents)


def _listed(value: Any) -> list[Item]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def to_side(item: Item) -> WireSide:
    """Text parts joined in order (as vLLM's template renders them), image URLs in order."""
    if isinstance(item, str):
        return WireSide(item)
    texts, urls = [], []
    for part in item.content:
        if part.type == "text":
            texts.append(part.text or "")
        elif part.image_url is None:
            raise ValueError("an image_url part needs {'image_url': {'url': ...}}")
        else:
            urls.append(part.image_url.url)
    return WireSide("".join(texts), tuple(urls))
