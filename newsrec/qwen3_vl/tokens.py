"""Prompt pieces -> token ids, with untrusted text always tokenized as text.

The Qwen tokenizer matches its added tokens (`<|im_end|>`, `<|image_pad|>`, `<think>`, ...) anywhere in a
string before running BPE on what lies between them. We keep that structure but decide ourselves where
control tokens go: text pieces are encoded by a copy of the tokenizer that knows no added tokens, and
the markers of `prompt.pair_pieces` are looked up by id. Text that holds no added-token string gets
exactly the ids of tokenizing the rendered prompt in one go (BPE never merges across an added token,
and adjacent text pieces are joined into one segment before encoding), so scores stay the official ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from newsrec.qwen3_vl.prompt import Marker, Piece

__all__ = ["PromptTokenizer"]


class PromptTokenizer:
    """Encodes many prompts at once: one batched call for all distinct text segments."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.marker_ids = {token.content: int(index) for index, token in tokenizer.added_tokens_decoder.items()}
        self._plain = _plain_backend(tokenizer)

    def encode_text(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of each text, every added-token string in it kept as literal characters."""
        if not texts:
            return []
        if self._plain is not None:
            return [encoding.ids for encoding in self._plain.encode_batch(list(texts), add_special_tokens=False)]
        # A tokenizer without a Rust backend: special tokens are split, non-special added ones are not.
        encoded = self.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)
        return encoded["input_ids"]

    def decode_text(self, ids: Sequence[int]) -> str:
        if self._plain is not None:
            return self._plain.decode(list(ids))
        return self.tokenizer.decode(list(ids))

    def encode(self, prompts: Sequence[Sequence[Piece]]) -> list[list[int]]:
        """Token ids of each prompt: markers as their control tokens, text runs as text."""
        layouts: list[list[int | str]] = []
        for pieces in prompts:
            layout: list[int | str] = []
            for piece in pieces:
                if isinstance(piece, Marker):
                    layout.append(self.marker_ids[piece.token])
                elif piece:
                    if layout and isinstance(layout[-1], str):
                        layout[-1] += piece
                    else:
                        layout.append(piece)
            layouts.append(layout)
        distinct = list(dict.fromkeys(item for layout in layouts for item in layout if isinstance(item, str)))
        ids = dict(zip(distinct, self.encode_text(distinct), strict=True))
        out = []
        for layout in layouts:
            row: list[int] = []
            for item in layout:
                if isinstance(item, str):
                    row.extend(ids[item])
                else:
                    row.append(item)
            out.append(row)
        return out


def _plain_backend(tokenizer: Any):
    """A copy of the fast tokenizer's Rust backend with no added tokens (None for a slow tokenizer)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    spec = json.loads(backend.to_str())
    spec["added_tokens"] = []
    return Tokenizer.from_str(json.dumps(spec))
