"""Random-weight Qwen3-VL models with the real architecture, for tests and benchmarks without weights.

Sizes:
- "2b", "8b": the published configs (../shared/models/qwen3-vl-2b/config.json, qwen3-vl-8b/config.json);
  speed does not depend on weight values, so these give honest throughput figures.
- "tiny", "small": shrunken configs that keep every architectural feature the engine must get right
  (M-RoPE with interleaved sections, grouped-query attention, the vision tower with deepstack mergers,
  the real 151,936-token vocabulary) so CPU tests run in seconds.

Shrinking rules the config must keep: sum(mrope_section) == head_dim / 2; vision out_hidden_size ==
text hidden_size; num_position_embeddings a perfect square; deepstack indexes < vision depth and
no more of them than text layers. Patch size, merge size and temporal patch stay as the processor expects.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from newsrec.errors import InputError

__all__ = ["SIZES", "config_dict", "make_random_model", "make_random_checkpoint"]

log = logging.getLogger(__name__)

SIZES = ("tiny", "small", "2b", "8b")

# Overrides applied on top of the 2B config. initializer_range is larger than the hub's 0.02 so that a
# random model's scores actually depend on the input (with tiny weights every pair scores ~0.5 and an
# equivalence test could not tell a right engine from a wrong one).
_SHRINK: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "text": dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            initializer_range=0.3,
            rope_scaling={"rope_type": "default", "mrope_section": [4, 2, 2], "mrope_interleaved": True},
        ),
        "vision": dict(
            hidden_size=32,
            intermediate_size=64,
            depth=2,
            num_heads=2,
            num_position_embeddings=64,
            out_hidden_size=64,
            deepstack_visual_indexes=[0, 1],
            initializer_range=0.3,
        ),
    },
    "small": {
        "text": dict(
            hidden_size=512,
            intermediate_size=1536,
            num_hidden_layers=4,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=64,
            initializer_range=0.1,
            rope_scaling={"rope_type": "default", "mrope_section": [12, 10, 10], "mrope_interleaved": True},
        ),
        "vision": dict(
            hidden_size=256,
            intermediate_size=1024,
            depth=4,
            num_heads=4,
            num_position_embeddings=576,
            out_hidden_size=512,
            deepstack_visual_indexes=[1, 2, 3],
            initializer_range=0.1,
        ),
    },
}


def _config_file(size: str, files_dir: Path) -> Path:
    if size == "8b":
        for candidate in (files_dir / "config-8b.json", files_dir.parent / "qwen3-vl-8b" / "config.json"):
            if candidate.exists():
                return candidate
        raise InputError(f"no 8B config next to {files_dir} (looked for ../qwen3-vl-8b/config.json)")
    path = files_dir / "config.json"
    if not path.exists():
        raise InputError(f"{path} is missing: pass the folder with the Qwen3-VL-2B config and tokenizer files")
    return path


def config_dict(size: str, files_dir: str | Path) -> dict[str, Any]:
    """The config of `size` as a plain dict (the published one for 2b/8b, a shrunken 2B for tiny/small)."""
    if size not in SIZES:
        raise InputError(f"unknown model size {size!r}; choose one of: {', '.join(SIZES)}")
    files_dir = Path(files_dir)
    config = json.loads(_config_file(size, files_dir).read_text())
    if size in _SHRINK:
        config = copy.deepcopy(config)
        config["text_config"].update(_SHRINK[size]["text"])
        config["vision_config"].update(_SHRINK[size]["vision"])
        config["text_config"]["rope_parameters"] = {
            **config["text_config"]["rope_scaling"],
            "rope_theta": config["text_config"].get("rope_theta", 5_000_000),
        }
    return config


def make_random_model(
    size: str,
    files_dir: str | Path,
    device: str = "cpu",
    dtype: Any = None,
    seed: int = 0,
    init_std: float | None = None,
):
    """Build a random-weight Qwen3VLForConditionalGeneration of `size` directly on `device`.

    Weights are created on the target device in the target dtype (no CPU fp32 detour), so the 8B shape
    takes seconds on a GPU instead of minutes.
    """
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from newsrec.qwen3_vl.loading import attention_implementation, default_dtype

    dtype = dtype or default_dtype(device)
    values = config_dict(size, files_dir)
    if init_std:
        values["text_config"]["initializer_range"] = values["vision_config"]["initializer_range"] = init_std
    config = Qwen3VLConfig(**values)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = Qwen3VLForConditionalGeneration._from_config(
                config, attn_implementation=attention_implementation(device), dtype=dtype
            )
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def make_random_checkpoint(out_dir: str | Path, size: str, files_dir: str | Path, seed: int = 0) -> Path:
    """save_pretrained a random model of `size` (fp32) and the real processor files into `out_dir`."""
    import torch

    from newsrec.qwen3_vl.loading import build_processor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = make_random_model(size, files_dir, device="cpu", dtype=torch.float32, seed=seed)
    model.save_pretrained(out_dir)
    # Tokenizer, image processor and chat template saved separately: build_processor reassembles them.
    processor = build_processor(files_dir)
    processor.tokenizer.save_pretrained(out_dir)
    processor.image_processor.save_pretrained(out_dir)
    (out_dir / "chat_template.jinja").write_text(processor.chat_template)
    log.info("saved random %s Qwen3-VL to %s", size, out_dir)
    return out_dir
