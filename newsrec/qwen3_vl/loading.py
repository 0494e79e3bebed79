"""Loading Qwen3-VL checkpoints and their processor, the same way for real and random-weight models.

Real checkpoints (`Qwen/Qwen3-VL-Reranker-8B`, a local folder) and the random ones that tests and
benchmarks save with `random_model.make_random_checkpoint` go through one `from_pretrained` path, so the tests
exercise the loading code users run. Heavy imports stay inside the functions: importing this module
costs nothing on a machine that only runs the lite mode.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from newsrec.errors import ModelUnavailableError

__all__ = [
    "build_processor",
    "load_model",
    "default_device",
    "default_dtype",
    "attention_implementation",
]

log = logging.getLogger(__name__)

# Files a processor needs; a folder with a tokenizer.json can skip vocab/merges.
_TOKENIZER_FILES = ("vocab.json", "merges.txt")


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str):
    """bf16 on CUDA (what the checkpoints ship in), fp32 on CPU (bf16 matmuls are slow and inexact there)."""
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def attention_implementation(device: str) -> str:
    if str(device).startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _is_local(model_id_or_dir: str | Path) -> bool:
    return Path(model_id_or_dir).expanduser().exists()


def _missing_checkpoint(model_id_or_dir: str | Path, error: Exception) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"cannot load Qwen3-VL checkpoint {str(model_id_or_dir)!r} ({type(error).__name__}: {error}). "
        "Download it once with `huggingface-cli download <id>` on a machine with internet (it lands in the "
        "Hugging Face cache), or pass a local folder holding config.json, the safetensors weights and the "
        "tokenizer/processor files."
    )


def build_processor(files_dir: str | Path):
    """A Qwen3VLProcessor built from a model folder (or HF id): image processor + fast tokenizer, no video.

    `AutoProcessor` would also build the video processor, which needs torchvision; news has no video,
    so we assemble the processor from its two parts. The tokenizer comes from tokenizer.json when the
    folder has one, else from vocab.json + merges.txt (the public Qwen3-VL files ship no tokenizer.json).
    """
    from transformers import AutoImageProcessor, AutoTokenizer

    source = str(Path(files_dir).expanduser()) if _is_local(files_dir) else str(files_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        image_processor = _image_processor(AutoImageProcessor, source)
    except (OSError, ValueError) as error:
        raise _missing_checkpoint(files_dir, error) from error
    chat_template = getattr(tokenizer, "chat_template", None)
    template_file = Path(source) / "chat_template.jinja"
    if chat_template is None and template_file.exists():
        chat_template = template_file.read_text()
    return _processor_class()(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)


def _processor_class():
    from transformers import Qwen3VLProcessor

    class ImageTextQwen3VLProcessor(Qwen3VLProcessor):
        """Qwen3VLProcessor without a video processor (its class lookup imports torchvision)."""

        def check_argument_for_proper_class(self, argument_name, argument):
            if argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    return ImageTextQwen3VLProcessor


def _image_processor(auto_cls, source: str):
    # The fast (torchvision) image processor is the hub default; fall back to the PIL/numpy one where
    # torchvision is absent or broken. Both resize with the same smart_resize rule.
    try:
        return auto_cls.from_pretrained(source)
    except (ImportError, RuntimeError, ValueError):
        return auto_cls.from_pretrained(source, use_fast=False)


def load_model(
    model_id_or_dir: str | Path,
    device: str | None = None,
    dtype: Any = None,
    cls: Any = None,
    attn_implementation: str | None = None,
):
    """Load a Qwen3-VL checkpoint for inference: bf16 on CUDA / fp32 on CPU, sdpa or flash-attention-2.

    `cls` defaults to `Qwen3VLForConditionalGeneration` (the reranker needs its lm_head rows); the
    embedder passes `Qwen3VLModel`.
    """
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    cls = cls or Qwen3VLForConditionalGeneration
    device = device or default_device()
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailableError(
            "a CUDA device was requested but torch sees no GPU; use the lite models on CPU (--reranker lite)"
        )
    dtype = dtype or default_dtype(device)
    source = str(Path(model_id_or_dir).expanduser()) if _is_local(model_id_or_dir) else str(model_id_or_dir)
    attn = attn_implementation or attention_implementation(device)
    try:
        model = cls.from_pretrained(source, dtype=dtype, attn_implementation=attn, device_map=device)
    except (OSError, ValueError) as error:
        raise _missing_checkpoint(model_id_or_dir, error) from error
    model.eval()
    log.info("loaded %s (%s, %s, %s) on %s", source, cls.__name__, dtype, attn, device)
    return model
