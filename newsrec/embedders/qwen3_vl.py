"""Qwen3-VL-Embedding behind the Embedder protocol: news items (title + body + photos) and queries as vectors.

Input follows the model card: a chat with the task instruction as system message, the user turn holding
the images (before the text) and the text, then the assistant generation prompt; the embedding is the
final hidden state of the last token, L2-normalised. Matryoshka (MRL) training lets a prefix of the
vector stand on its own, so `dim` keeps the first `dim` values and re-normalises.

Batches are sorted by length and left-padded, so the last position of every row is its real last token
and padding never enters a row's attention; M-RoPE positions are computed per row from the attention
mask. Only the base model (vision tower + language model) is loaded: embeddings never need lm_head.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from newsrec.config import Settings
from newsrec.embedders import register_embedder
from newsrec.errors import InputError
from newsrec.models import get_spec, require_model
from newsrec.types import ImageRef, NewsItem

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["Qwen3VLEmbedder", "EmbedderConfig", "QUERY_INSTRUCTION", "DOCUMENT_INSTRUCTION"]

log = logging.getLogger(__name__)

QUERY_INSTRUCTION = "Retrieve news articles relevant to the user's query or interests."
DOCUMENT_INSTRUCTION = "Represent the user's input."  # the model card's default instruction
EMPTY_TEXT = "NULL"  # what the model card puts in an input with neither text nor image
IMAGE_FACTOR = 32  # patch 16 x merge 2: image sides must be multiples of this


@dataclass
class EmbedderConfig:
    query_instruction: str = QUERY_INSTRUCTION
    document_instruction: str = DOCUMENT_INSTRUCTION
    max_images: int = 3  # photos kept per news item
    image_min_pixels: int = 4 * IMAGE_FACTOR**2  # official minimum
    image_max_pixels: int = 256 * IMAGE_FACTOR**2  # 256 visual tokens: plenty for news thumbnails
    max_text_tokens: int = 1024  # longer document/query text is cut (title first, so it survives)
    batch_size: int = 16  # rows per forward pass
    max_batch_tokens: int = 32_768  # rows x padded length per forward pass, bounds activation memory
    chunk_size: int = 256  # documents decoded and processed ahead of the forward passes


@dataclass
class _Encoded:
    """One processed input: token ids (L,), M-RoPE modality ids (L,), its images' patches and grids."""

    input_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None


class Qwen3VLEmbedder:
    """Embeds with a loaded Qwen3-VL base model; build it with `get_embedder("qwen3-vl-embedding-2b", ...)`."""

    def __init__(
        self,
        name: str,
        model: Any,  # transformers Qwen3VLModel (no lm_head)
        processor: Any,  # transformers Qwen3VLProcessor
        *,
        dim: int | None = None,
        image_root: str | Path | None = None,
        settings: Settings | None = None,
        config: EmbedderConfig | None = None,
    ):
        full_dim = int(model.config.text_config.hidden_size)
        if dim is not None and not 1 <= int(dim) <= full_dim:
            raise InputError(f"embedding dim must be between 1 and {full_dim}, got {dim}")
        self.name = name
        self.model = model
        self.processor = processor
        self.dim = int(dim) if dim else full_dim
        self.image_root = Path(image_root) if image_root else None
        self.settings = settings or Settings()  # remote-image policy (allow_remote_images, SSRF guard)
        self.config = config or EmbedderConfig()
        self.pad_token_id = processor.tokenizer.pad_token_id or 0
        from newsrec.qwen3_vl.tokens import PromptTokenizer

        self.prompt_tokens = PromptTokenizer(processor.tokenizer)

    # --- Embedder protocol ---------------------------------------------------------------------------

    def embed_documents(self, items: Sequence[NewsItem]) -> np.ndarray:
        # Chunks bound the decoded pixels held at once (a caller may pass a whole corpus); length sorting
        # happens within a chunk, which is plenty for bucketing.
        chunks = [np.zeros((0, self.dim), dtype=np.float32)]
        for begin in range(0, len(items), self.config.chunk_size):
            encoded = [
                self._encode(self.config.document_instruction, item.text, self._load_images(item.images))
                for item in items[begin : begin + self.config.chunk_size]
            ]
            chunks.append(self._embed(encoded))
        return np.concatenate(chunks)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self._encode(self.config.query_instruction, text, []) for text in texts])

    # --- input formatting ----------------------------------------------------------------------------

    def conversation(self, instruction: str, text: str, n_images: int) -> list[dict]:
        """Chat messages in the model card's layout: system instruction, then images before text."""
        instruction = instruction.strip()
        # The model card ends every instruction with punctuation; instructions were trained that way.
        if instruction and not unicodedata.category(instruction[-1]).startswith("P"):
            instruction += "."
        content: list[dict] = [{"type": "image"} for _ in range(n_images)]
        if text or not n_images:
            content.append({"type": "text", "text": text or EMPTY_TEXT})
        return [
            {"role": "system", "content": [{"type": "text", "text": instruction}]},
            {"role": "user", "content": content},
        ]

    def _encode(self, instruction: str, text: str, images: list[Image.Image]) -> _Encoded:
        """The chat of `conversation` as token ids, instruction and text always tokenized as text.

        Untrusted text must never become markup (a headline holding `<|im_end|>` or `<|image_pad|>`), so
        the prompt is assembled from pieces: control tokens placed here, text encoded with no added tokens
        (newsrec/qwen3_vl/tokens.py); for ordinary text the ids equal the chat template's.
        """
        import torch

        from newsrec.qwen3_vl.prompt import IM_END, IM_START, IMAGE_PAD, VISION_END, VISION_START, Marker

        text = self._truncate(text.strip())
        system, user = self.conversation(instruction, text, len(images))
        pieces: list = [Marker(IM_START), "system\n" + system["content"][0]["text"], Marker(IM_END), "\n"]
        pieces += [Marker(IM_START), "user\n"]
        for part in user["content"]:
            if part["type"] == "image":
                pieces += [Marker(VISION_START), Marker(IMAGE_PAD), Marker(VISION_END)]
            else:
                pieces.append(part["text"])
        pieces += [Marker(IM_END), "\n", Marker(IM_START), "assistant\n"]
        ids = torch.tensor(self.prompt_tokens.encode([pieces])[0])
        image_pad = self.prompt_tokens.marker_ids[IMAGE_PAD]
        pixel_values = grids = None
        if images:
            # Images arrive already resized to multiples of 32 within the pixel budget (as the model card does).
            processed = self.processor.image_processor(images=images, do_resize=False, return_tensors="pt")
            pixel_values, grids = processed["pixel_values"], processed["image_grid_thw"]
            merge = self.processor.image_processor.merge_size**2
            repeats = torch.ones_like(ids)
            repeats[ids == image_pad] = grids.prod(-1) // merge  # one <|image_pad|> per merged patch
            ids = ids.repeat_interleave(repeats)
        return _Encoded(
            input_ids=ids,
            mm_token_type_ids=(ids == image_pad).long(),
            pixel_values=pixel_values,
            image_grid_thw=grids,
        )

    def _truncate(self, text: str) -> str:
        ids = self.prompt_tokens.encode_text([text])[0]
        if len(ids) <= self.config.max_text_tokens:
            return text
        return self.prompt_tokens.decode_text(ids[: self.config.max_text_tokens])

    def _load_images(self, refs: Sequence[ImageRef]) -> list[Image.Image]:
        from newsrec.images import load_image_uri, smart_resize

        images = []
        for ref in refs[: self.config.max_images]:
            try:
                image = load_image_uri(ref.uri, self.settings, base=self.image_root)
                height, width = smart_resize(
                    image.height,
                    image.width,
                    factor=IMAGE_FACTOR,
                    min_pixels=self.config.image_min_pixels,
                    max_pixels=self.config.image_max_pixels,
                )
            except (InputError, OSError) as error:  # one unusable photo must not stop an index build
                log.warning("skipping image %s: %s", ref.uri, error)
                continue
            images.append(image.resize((width, height), resample=_bicubic()))
        return images

    # --- batched forward -----------------------------------------------------------------------------

    def _embed(self, encoded: list[_Encoded]) -> np.ndarray:
        out = np.zeros((len(encoded), self.dim), dtype=np.float32)
        if not encoded:
            return out
        import torch

        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids), reverse=True)
        with torch.inference_mode():
            for batch in self._batches(order, encoded):
                out[batch] = self._forward([encoded[i] for i in batch])
        return out

    def _batches(self, order: list[int], encoded: list[_Encoded]) -> list[list[int]]:
        """Consecutive runs of the length-sorted order within the row and token budgets."""
        batches: list[list[int]] = []
        for i in order:
            if batches:
                batch = batches[-1]
                longest = len(encoded[batch[0]].input_ids)  # sorted longest first
                if len(batch) < self.config.batch_size and longest * (len(batch) + 1) <= self.config.max_batch_tokens:
                    batch.append(i)
                    continue
            batches.append([i])
        return batches

    def _forward(self, rows: list[_Encoded]) -> np.ndarray:
        """(B, dim) normalised embeddings; on CUDA out-of-memory the batch is halved and retried."""
        import torch

        try:
            return self._forward_batch(rows)
        except torch.OutOfMemoryError:
            if len(rows) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(rows) // 2
            log.warning("out of GPU memory for %d rows; retrying as %d + %d", len(rows), half, len(rows) - half)
            return np.concatenate([self._forward(rows[:half]), self._forward(rows[half:])])

    def _forward_batch(self, rows: list[_Encoded]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        device = self.model.device
        length = max(len(row.input_ids) for row in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        mm_token_type_ids = torch.zeros((len(rows), length), dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for b, row in enumerate(rows):  # left padding: every row's last token sits at position -1
            n = len(row.input_ids)
            input_ids[b, length - n :] = row.input_ids
            mm_token_type_ids[b, length - n :] = row.mm_token_type_ids
            attention_mask[b, length - n :] = 1
        with_images = [row for row in rows if row.pixel_values is not None]
        pixel_values = torch.cat([row.pixel_values for row in with_images]).to(device) if with_images else None
        grid_thw = torch.cat([row.image_grid_thw for row in with_images]).to(device) if with_images else None
        input_ids, mm_token_type_ids, attention_mask = (
            input_ids.to(device),
            mm_token_type_ids.to(device),
            attention_mask.to(device),
        )
        # (3, B, L) M-RoPE positions counted from each row's first real token, so padding shifts nothing.
        position_ids, _ = self.model.get_rope_index(
            input_ids, mm_token_type_ids, image_grid_thw=grid_thw, attention_mask=attention_mask
        )
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            pixel_values=pixel_values,
            image_grid_thw=grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            use_cache=False,
        )
        last = outputs.last_hidden_state[:, -1, :].float()  # (B, D)
        last = last[:, : self.dim]  # Matryoshka prefix, then back to unit length
        return F.normalize(last, p=2, dim=-1).cpu().numpy()


def _bicubic() -> int:
    from PIL import Image

    return Image.Resampling.BICUBIC


# --- registry ------------------------------------------------------------------------------------------


def build(
    name: str,
    *,
    model: str = "",
    dim: int | None = None,
    device: str | None = None,
    settings: Settings | None = None,
    image_root: str | Path | None = None,
    config: EmbedderConfig | None = None,
    **unused: Any,
) -> Qwen3VLEmbedder:
    """Load `name` from `model` (hub id or local folder; default: the spec's hub id) onto `device`.

    Like every factory it ignores options meant for other models (the pipeline passes one set to all).
    """
    if unused:
        log.debug("%s ignores options %s", name, sorted(unused))
    resolved = require_model(name, model or (settings.embedder_model if settings else ""), device)
    from transformers import Qwen3VLModel

    from newsrec.qwen3_vl.loading import build_processor, load_model

    config = config or EmbedderConfig()
    if settings is not None:
        config = replace(config, max_images=settings.max_images, image_max_pixels=settings.image_max_pixels)
    processor = build_processor(resolved.source)
    loaded = load_model(resolved.source, device=resolved.device, cls=Qwen3VLModel)
    loaded.eval()
    suffix = f"-d{dim}" if dim else ""
    if resolved.source != get_spec(name).hf_id:  # another checkpoint must never share a Chroma collection
        identity = str(Path(resolved.source).resolve()) if resolved.local else resolved.source
        suffix += "-" + hashlib.sha1(identity.encode()).hexdigest()[:8]
    log.info("loaded %s from %s on %s", name, resolved.source, resolved.device)
    return Qwen3VLEmbedder(
        name + suffix,
        loaded,
        processor,
        dim=dim,
        image_root=image_root,
        settings=settings,
        config=config,
    )


@register_embedder("qwen3-vl-embedding-2b")
def qwen3_vl_embedding_2b(**options) -> Qwen3VLEmbedder:
    return build("qwen3-vl-embedding-2b", **options)


@register_embedder("qwen3-vl-embedding-8b")
def qwen3_vl_embedding_8b(**options) -> Qwen3VLEmbedder:
    return build("qwen3-vl-embedding-8b", **options)
