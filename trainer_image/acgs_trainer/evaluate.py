"""Held-out evaluation from the model's own generations.

compliance score = share of held-out scenarios where the decision parsed from the model's greedy
output equals the decision the constitution's rules derive. An output with no decision counts as
non-compliant. accuracy = the whole answer (decision and principles) matches the target.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Sequence

import torch

from .constitution import Constitution
from .modeling import generate_continuations
from .prompting import format_prompt, parse_decision, parse_principles, scenario_of
from .training import EncodedData, sequence_losses

log = logging.getLogger(__name__)


@torch.no_grad()
def mean_loss(model: Any, data: EncodedData, device: torch.device, batch_size: int = 64) -> float:
    model.eval()
    losses = []
    for start in range(0, len(data), batch_size):
        sl = slice(start, start + batch_size)
        batch = {"input_ids": data.input_ids[sl].to(device),
                 "attention_mask": data.attention_mask[sl].to(device),
                 "labels": data.labels[sl].to(device)}
        losses.append(sequence_losses(model, batch).cpu())
    return float(torch.cat(losses).mean()) if losses else float("nan")


def evaluate_generations(model: Any, tokenizer: Any, records: Sequence[dict[str, Any]],
                         constitution: Constitution, batch_size: int = 64) -> dict[str, Any]:
    prompts = [format_prompt(r) for r in records]
    outputs = generate_continuations(model, tokenizer, prompts, max_new_tokens=8,
                                     batch_size=batch_size)
    return score_generations(records, outputs, constitution)


def score_generations(records: Sequence[dict[str, Any]], outputs: Sequence[str],
                      constitution: Constitution) -> dict[str, Any]:
    """The scores of ``outputs`` (one continuation per record): what training reports and the
    flywheel compares candidates by, however the continuations were generated."""
    compliant = exact = decided = agree_target = 0
    confusion: Counter[str] = Counter()
    for record, text in zip(records, outputs, strict=True):
        predicted = parse_decision(text)
        rule = constitution.evaluate(scenario_of(record)[1])
        target = record["target_output"]
        decided += predicted is not None
        compliant += predicted == rule.decision
        agree_target += predicted == target["decision"]
        exact += (predicted == target["decision"] and parse_principles(text, constitution.principles)
                  == sorted(target.get("principles") or []))
        confusion[f"{rule.decision}->{predicted or 'NONE'}"] += 1
    n = max(1, len(records))
    metrics = {"evalExamples": len(records), "complianceScore": compliant / n,
               "accuracy": exact / n, "decisionAccuracy": agree_target / n,
               "parseRate": decided / n, "confusion": dict(sorted(confusion.items()))}
    # No sample of the prompts or outputs in the log: held-out records are private too.
    return metrics
