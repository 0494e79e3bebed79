"""Batched attention for the Qwen3-VL vision tower.

Every photo attends only within itself. With flash-attn, transformers runs all photos of a call as one
variable-length kernel; without it (sdpa: every CPU, GPUs without flash-attn) it loops over the photos
and calls attention once per photo per layer: 100 photos x 24 layers = 2,400 small kernels. Here photos
of the same length are stacked and attended in one sdpa call per group (news photos resized to the same
budget mostly share a handful of grids), in chunks that bound the attention scratch memory. When
flash-attn is importable and the tower is on CUDA, its varlen kernel runs all photos in one call.

Installed around the encoder's own tower calls only (`batched_vision_attention`), so anyone else
running the same model object (a reference scorer, the embedder) sees transformers' code unchanged.
Checked equal to the per-photo path in tests/test_qwen3_vl_engine_parts.py.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from types import MethodType

import torch
import torch.nn.functional as F

__all__ = ["batched_vision_attention", "attention_groups"]

# Elements of the attention scratch (photos x heads x n x n) one sdpa call may need: 64 Mi floats.
SCORE_BUDGET = 64 * 2**20


def attention_groups(lengths: list[int], heads: int, budget: int = SCORE_BUDGET) -> list[tuple[int, list[int]]]:
    """(length, photo indices) groups of equal-length photos, each small enough for one sdpa call."""
    by_length: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_length.setdefault(length, []).append(index)
    groups = []
    for length, members in by_length.items():
        size = max(1, budget // max(1, heads * length * length))
        groups += [(length, members[i : i + size]) for i in range(0, len(members), size)]
    return groups


def _flash_varlen():
    if importlib.util.find_spec("flash_attn") is None:
        return None
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:  # installed but built for another torch/CUDA
        return None
    return flash_attn_varlen_func


def _forward(self, hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None, **kwargs):
    """Qwen3VLVisionAttention.forward with the photos batched (same projections, rotary and scaling)."""
    from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb_vision

    seq_length = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(seq_length, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)  # (tokens, heads, head_dim)
    flash = _flash_varlen() if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) else None
    if flash is not None:
        cu = cu_seqlens.to(torch.int32)
        longest = int((cu[1:] - cu[:-1]).max())
        out = flash(q, k, v, cu, cu, longest, longest, softmax_scale=self.scaling, causal=False)
    else:
        out = torch.empty_like(v)
        starts = cu_seqlens[:-1].tolist()
        lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
        for length, members in attention_groups(lengths, self.num_heads):
            if len(members) == 1:
                rows = slice(starts[members[0]], starts[members[0]] + length)
            else:
                first = torch.tensor([starts[i] for i in members], device=q.device)
                rows = (first[:, None] + torch.arange(length, device=q.device)).reshape(-1)
            shape = (len(members), length, self.num_heads, -1)
            qg, kg, vg = (t[rows].reshape(shape).transpose(1, 2) for t in (q, k, v))  # (photos, heads, n, d)
            og = F.scaled_dot_product_attention(qg, kg, vg, scale=self.scaling)
            out[rows] = og.transpose(1, 2).reshape(len(members) * length, self.num_heads, -1)
    return self.proj(out.reshape(seq_length, -1).contiguous())


@contextlib.contextmanager
def batched_vision_attention(visual) -> Iterator[None]:
    """Within the block, the tower's attention layers run photos batched (no-op for flash_attention_2,
    whose transformers path is already one varlen call)."""
    if "flash" in str(getattr(visual.config, "_attn_implementation", "")):
        yield
        return
    layers = [block.attn for block in visual.blocks]
    for layer in layers:
        layer.forward = MethodType(_forward, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward  # back to the class's forward
