"""Greedy generation from a batch of prompts: the one implementation the trainer's evaluation and
the server both run, so a served model answers exactly as it was scored.

Batched decoder-only generation continues from the right edge of each row, so prompts are padded
on the left (``left_pad``) and the continuation is everything past the padded width.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


def left_pad(token_ids: Sequence[Sequence[int]], pad_token_id: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of the prompts, each row ending at its prompt's end."""
    width = max((len(ids) for ids in token_ids), default=0)
    input_ids = torch.full((len(token_ids), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        if ids:
            input_ids[row, width - len(ids):] = torch.tensor(list(ids), dtype=torch.long)
            attention_mask[row, width - len(ids):] = 1
    return input_ids, attention_mask


def encode_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt, unpadded, as the trainer tokenizes (no special tokens)."""
    return [list(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]


def generate_from_ids(model: Any, tokenizer: Any, token_ids: Sequence[Sequence[int]],
                      max_new_tokens: int, min_new_tokens: int = 0,
                      inference_only: bool = False) -> list[str]:
    """Greedy continuations (decoded, prompt removed) of prompts given as token ids.

    ``inference_only`` uses ``torch.inference_mode`` (a little cheaper); only a process that never
    trains the model may ask for it, because tensors made under it cannot enter autograd later.
    """
    if not token_ids:
        return []
    device = next(model.parameters()).device
    input_ids, attention_mask = left_pad(token_ids, tokenizer.pad_token_id)
    width = input_ids.shape[1]
    with torch.inference_mode() if inference_only else torch.no_grad():
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens or None,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    return [str(text) for text in tokenizer.batch_decode(output[:, width:],
                                                          skip_special_tokens=True)]
