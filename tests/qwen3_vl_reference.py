"""The oracle for the Qwen3-VL-Reranker engine: the plain algorithm, one pair at a time.

Written on purpose without anything from newsrec.qwen3_vl.engine/prompt: chat messages in the model
card's layout -> processor.apply_chat_template -> processor(text, images) -> Qwen3VLModel forward ->
last token's final hidden state -> sigmoid(h · (W_yes − W_no)). Slow and obviously right.
"""

from __future__ import annotations

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
) -> dict:
    chat = messages(instruction, query_text, list(query_images), doc_text, list(doc_images))
    text = processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    images = list(query_images) + list(doc_images)
    inputs = processor(
        text=[text],
        images=images or None,
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        return_tensors="pt",
    )
    ids = inputs["input_ids"][0].tolist()
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
