"""The Qwen3-VL-Reranker input format, and how a news request becomes one.

The model was trained on this chat (official Qwen3-VL-Reranker usage):

    <|im_start|>system
    Judge whether the Document meets the requirements based on the Query and the Instruct provided. Note that
    the answer can only be "yes" or "no".<|im_end|>
    <|im_start|>user
    <Instruct>: {instruction}<Query>:{query images}{query text}
    <Document>:{document images}{document text}<|im_end|>
    <|im_start|>assistant
    (the score is read at this last token: sigmoid(h · (W_yes − W_no)))

Images come before the text of their side, each as <|vision_start|><|image_pad|><|vision_end|> (the
processor expands the pad to one token per merged 32×32 patch); a side with neither text nor images is
the text "NULL". Text parts are joined without separators, as the chat template renders them.

Personalisation (our choice). The query side is what the reader wants, so it carries:
- the typed query, if any, first: it is the strongest signal and the model was trained on search queries;
- then "Reader interests: {profile.summary}", the profile's one-paragraph summary of recent reading
  (clusters, keywords, favourite categories), so the "For you" feed (no typed query) is still a
  well-formed relevance judgement;
- optionally up to N representative images of the reader's history (profile.images), placed before the
  text as the format requires; they tell a VL model what the reader looks at, and they sit in the
  shared prefix, so they cost one encoding per request, not one per candidate.
The document side is the news item: up to `max_images` photos, then "title\nbody".
Everything query-side is identical for all candidates of a request: the engine computes it once.

Untrusted text is text. Instruction, query, profile summary and document come from users and corpora;
the official format has no escaping, so a headline holding `<|im_end|>` or `<|image_pad|>` would become
markup if the prompt were tokenized as one string. `pair_pieces` therefore keeps the prompt as pieces:
`Marker`s are the control tokens the engine itself inserts, plain strings are always tokenized as text
(newsrec/qwen3_vl/tokens.py). `render_pair` joins them into the chat-template string, for tests and logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
QUERY_TAG = "<Query>:"
DOCUMENT_TAG = "\n<Document>:"
EMPTY_SIDE = "NULL"
INTERESTS_LABEL = "Reader interests: "

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, IMAGE_PAD, VISION_END = "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"
# Tokens the truncation must never cut: the prompt's last tokens `<|im_end|>\n<|im_start|>assistant\n`.
ASSISTANT_TAIL = f"{IM_END}\n{IM_START}assistant\n"
YES_TOKEN, NO_TOKEN = "yes", "no"


@dataclass(frozen=True)
class Side:
    """One side of a pair: text plus images (PIL images, already loaded), images first in the prompt."""

    text: str = ""
    images: Sequence[Any] = field(default_factory=tuple)

    @property
    def is_empty(self) -> bool:
        return not self.text.strip() and not self.images


@dataclass(frozen=True)
class ScoreRequest:
    """One query's documents to score (one HTTP request, one feed): what `RerankEngine.score_many` takes."""

    instruction: str
    query: Side
    documents: Sequence[Side]


@dataclass
class ScoreResult:
    scores: list[float]
    tokens: list[int]  # each pair's prompt tokens as the model reads them (images expanded, after truncation)


def query_text(query: str, summary: str = "") -> str:
    """The reader's side as text: typed query first, then the interest summary (see module docstring)."""
    parts = [query.strip()]
    if summary.strip():
        parts.append(INTERESTS_LABEL + summary.strip())
    return "\n".join(part for part in parts if part)


def document_text(title: str, body: str = "") -> str:
    return f"{title.strip()}\n{body.strip()}".strip()


@dataclass(frozen=True)
class Marker:
    """A control token placed by the engine (chat turn, image slot); text never turns into one."""

    token: str


Piece = str | Marker
_IMAGE = (Marker(VISION_START), Marker(IMAGE_PAD), Marker(VISION_END))


def _side(tag: str, side: Side) -> list[Piece]:
    if side.is_empty:
        return [tag + EMPTY_SIDE]
    return [tag, *(_IMAGE * len(side.images)), side.text]


def prefix_pieces(instruction: str, query: Side) -> list[Piece]:
    """Everything before the document: identical for all candidates of one request."""
    return [
        Marker(IM_START),
        f"system\n{SYSTEM_PROMPT}",
        Marker(IM_END),
        "\n",
        Marker(IM_START),
        f"user\n<Instruct>: {instruction}",
        *_side(QUERY_TAG, query),
    ]


def pair_pieces(instruction: str, query: Side, document: Side) -> list[Piece]:
    """The whole prompt of one pair, one image placeholder per image (expanded later by the engine)."""
    tail = [Marker(IM_END), "\n", Marker(IM_START), "assistant\n"]
    return prefix_pieces(instruction, query) + _side(DOCUMENT_TAG, document) + tail


def render(pieces: Sequence[Piece]) -> str:
    return "".join(piece.token if isinstance(piece, Marker) else piece for piece in pieces)


def render_pair(instruction: str, query: Side, document: Side) -> str:
    """The chat-template string of one pair (for tests and logs; the engine tokenizes the pieces)."""
    return render(pair_pieces(instruction, query, document))


def truncate(ids: list[int], protected: set[int], max_length: int, tail: int) -> list[int]:
    """Drop the last unprotected tokens before the final `tail` tokens until `ids` fits `max_length`.

    Special tokens (chat markers, image placeholders) are `protected` and stay, so the prompt keeps its
    structure and its images; what goes first is the end of the document text (then, for absurd budgets,
    the query text). The assistant tail always stays: the score is read at its last token.
    """
    excess = len(ids) - max_length
    if excess <= 0:
        return ids
    body, end = ids[: len(ids) - tail], ids[len(ids) - tail :]
    keep = [True] * len(body)
    for index in range(len(body) - 1, -1, -1):
        if excess == 0:
            break
        if body[index] not in protected:
            keep[index] = False
            excess -= 1
    return [token for token, kept in zip(body, keep, strict=True) if kept] + end
