"""The oracle for the Qwen3-VL-Reranker engine: the plain algorithm, one pair at a time.

Written on purpose without anything from newsrec.qwen3_vl.engine/prompt: chat messages in the model
card's layout -> processor.apply_chat_template -> processor(text, images) -> Qwen3VLModel forward ->
last token's final hidden state -> sigmoid(h · (W_yes − W_no)). Slow and obviously right.

One deliberate difference from the official code: the official reranker passes the whole chat text to
the processor, which turns special-token strings anywhere in it (`<|im_end|>`, `<|image_pad|>` inside a
headline) into control tokens. Untrusted text must stay text, so here the template is rendered with
placeholders for the instruction, query and document texts; its own markup is tokenized as the
processor does, and the texts with a tokenizer that knows no added tokens. For text without such
strings the ids are the official ones (test_reference_ids_equal_the_official_ones_for_plain_text).
"""

from __future__ import annotations

import functools
import json
import re

import torch

SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
ASSISTANT_TAIL_TOKENS = 5  # <|im_end|> \n <|im_start|> assistant \n


def messages(instruction: str, query_text: str, query_images: list, doc_text: str, doc_images: list) -> list[dict]:
    def side(tag: str, text: str, images: list) -> list[dict]:
        content = [{"type": "text", "text": tag}]
        if not text.strip() and not images:
            return content + [{"type": "text", "text": "NULL"}]
        content += [{"type": "image", "image": image} for image in images]
        if text:
            content.append({"type": "text", "text": text})
        return content

    user = [{"type": "text", "text": "<Instruct>: " + instruction}]
    user += side("<Query>:", query_text, query_images) + side("\n<Document>:", doc_text, doc_images)
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": user},
    ]


@functools.cache
def _plain_tokenizer(processor):
    """The processor's tokenizer without its added tokens: every string is ordinary text to it."""
    from tokenizers import Tokenizer

    spec = json.loads(processor.tokenizer.backend_tokenizer.to_str())
    spec["added_tokens"] = []
    return Tokenizer.from_str(json.dumps(spec))


def literal_ids(processor, template: str, texts: list[str], grids: list[int]) -> list[int]:
    """Token ids of a prompt string whose untrusted texts are written as \ue000i\ue001 placeholders:
    the markup is tokenized as the processor does, each text with no added tokens at all.

    grids: visual tokens of each image in order (the processor's expansion of <|image_pad|>)."""
    added = {token.content: index for index, token in processor.tokenizer.added_tokens_decoder.items()}
    pattern = "(" + "|".join(re.escape(token) for token in sorted(added, key=len, reverse=True)) + ")"
    ids: list[int] = []
    images = iter(grids)
    for piece in re.split(pattern, template):
        if piece in added:
            ids += [added[piece]] * (next(images) if piece == "<|image_pad|>" else 1)
        elif piece:
            text = re.sub("\ue000(\\d+)\ue001", lambda match: texts[int(match.group(1))], piece)
            ids += _plain_tokenizer(processor).encode(text, add_special_tokens=False).ids
    return ids


def literal_text_ids(processor, chat: list[dict], grids: list[int]) -> list[int]:
    """Token ids of `chat` (with generation prompt) where every text part is tokenized as plain text."""
    texts: list[str] = []

    def hide(part: dict) -> dict:
        if part["type"] != "text":
            return part
        texts.append(part["text"])
        return {"type": "text", "text": f"\ue000{len(texts) - 1}\ue001"}

    hidden = [{**message, "content": [hide(part) for part in message["content"]]} for message in chat]
    template = processor.apply_chat_template(hidden, tokenize=False, add_generation_prompt=True)
    return literal_ids(processor, template, texts, grids)


def reference_inputs(
    processor,
    instruction,
    query_text,
    query_images,
    doc_text,
    doc_images,
    max_pixels=256 * 32 * 32,
    min_pixels=4 * 32 * 32,
    max_length=8192,
    official_tokens=False,
) -> dict:
    """official_tokens: tokenize the chat text as the official code does (special-token strings parsed)."""
    chat = messages(instruction, query_text, list(query_images), doc_text, list(doc_images))
    images = list(query_images) + list(doc_images)
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    if official_tokens:
        text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        inputs = processor(text=[text], images=images or None, size=size, return_tensors="pt")
        ids = inputs["input_ids"][0].tolist()
    else:
        inputs = processor.image_processor(images=images, size=size, return_tensors="pt") if images else {}
        merge = processor.image_processor.merge_size**2
        grids = [int(grid.prod()) // merge for grid in inputs["image_grid_thw"]] if images else []
        ids = literal_text_ids(processor, chat, grids)
    if len(ids) > max_length:
        special = set(processor.tokenizer.all_special_ids) | set(processor.tokenizer.added_tokens_decoder)
        head, tail = ids[:-ASSISTANT_TAIL_TOKENS], ids[-ASSISTANT_TAIL_TOKENS:]
        drop = len(ids) - max_length
        kept_reversed = []
        for token in reversed(head):
            if drop and token not in special:
                drop -= 1
                continue
            kept_reversed.append(token)
        ids = kept_reversed[::-1] + tail
    input_ids = torch.tensor([ids])
    image_token = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    out = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "mm_token_type_ids": (input_ids == image_token).long(),
    }
    if images:
        out["pixel_values"] = inputs["pixel_values"]
        out["image_grid_thw"] = inputs["image_grid_thw"]
    return out


@torch.inference_mode()
def reference_score(model, processor, instruction, query_text, query_images, doc_text, doc_images, **kwargs) -> float:
    inputs = reference_inputs(processor, instruction, query_text, query_images, doc_text, doc_images, **kwargs)
    device = model.get_input_embeddings().weight.device
    inputs = {key: value.to(device) for key, value in inputs.items()}
    model.model.rope_deltas = None  # no state carried over from the previous pair
    hidden = model.model(**inputs).last_hidden_state[0, -1]
    yes, no = processor.tokenizer.convert_tokens_to_ids(["yes", "no"])
    weight = model.lm_head.weight
    difference = weight[yes].float() - weight[no].float()
    return float(torch.sigmoid(hidden.float() @ difference))


def reference_scores(model, processor, instruction, query_text, query_images, documents, **kwargs) -> list[float]:
    """documents: (text, images) pairs."""
    return [
        reference_score(model, processor, instruction, query_text, query_images, text, images, **kwargs)
        for text, images in documents
    ]
