"""The text contract between data, trainer evaluation and the model server.

A prompt lists the scenario as ``field=value`` words (schema order, so equal scenarios give equal
text) and ends with ``decision:``; the model continues with ``DECISION principle ...``, e.g.
``DENY privacy fairness`` or ``APPROVE none``. One word per field and value (numbers are read digit
by digit) means a built-in base's word-level tokenizer gives each fact its own token: a tiny model
then learns the rules from a few thousand public examples, where ``field: value`` (a shared
``yes``/``no`` bound to a field name by position) took many times more. Free text a record
carries in ``input.text`` (the seeds' request bodies, see request_shapes) comes right after the
task as ``text:`` and at most MAX_TEXT_WORDS normalised words (lower case, no punctuation, so it
can never spell the ``decision:`` marker); a built-in base reads only its public words, the rest
is [UNK]. The server and the trainer's evaluation use these same functions, so a model is scored
on exactly what it will be asked in production.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from .constitution import DECISIONS
from .datasets import SCHEMAS

DECISION_MARKER = "decision:"
_DECISION_RE = re.compile(r"\b(" + "|".join(DECISIONS) + r")\b", re.IGNORECASE)
_WORD_RE = re.compile(r"[a-z_]+")
_TEXT_WORD_RE = re.compile(r"[a-z0-9_]+")
# Bounds the prompt whatever a client sends; the trainer truncates prompts from the front, so the
# text (before the scenario fields) is what a too-long prompt loses first.
MAX_TEXT_WORDS = 24


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def field_text(name: str, value: Any) -> str:
    return f"{name}={_value_text(value)}"


def scenario_of(record: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(dataset type, scenario) from a dataset record or a request body ``{type, scenario}``."""
    dataset_type = str(record.get("type") or record.get("dataset_type") or "constitutional_ai")
    inp = record.get("input")
    scenario = inp.get("scenario") if isinstance(inp, Mapping) else record.get("scenario")
    if not isinstance(scenario, Mapping):
        raise ValueError("record has no scenario: expected input.scenario or scenario (an object)")
    return dataset_type, scenario


def free_text_of(record: Mapping[str, Any]) -> str:
    """The prompted free text of a record (``input.text``) or request body (``text``), normalised."""
    inp = record.get("input")
    raw = inp.get("text") if isinstance(inp, Mapping) else record.get("text")
    if not isinstance(raw, str):
        return ""
    return " ".join(_TEXT_WORD_RE.findall(raw.lower())[:MAX_TEXT_WORDS])


def format_prompt(record: Mapping[str, Any]) -> str:
    dataset_type, scenario = scenario_of(record)
    known = list(SCHEMAS.get(dataset_type, {}))
    names = [n for n in known if n in scenario] + sorted(n for n in scenario if n not in known)
    parts = [f"task: {dataset_type}"]
    text = free_text_of(record)
    if text:
        parts.append(f"text: {text}")
    parts.extend(field_text(n, scenario[n]) for n in names)
    parts.append(DECISION_MARKER)
    return " ".join(parts)


def format_target(decision: str, principles: Iterable[str]) -> str:
    """The completion the model is trained to produce (without the leading space or EOS)."""
    names = sorted(principles)
    return f"{decision} {' '.join(names) if names else 'none'}"


def target_of(record: Mapping[str, Any]) -> str:
    target = record["target_output"]
    return format_target(target["decision"], target.get("principles") or [])


def parse_decision(generated_text: str) -> str | None:
    """The first decision word in the model's continuation, or None if it produced none."""
    m = _DECISION_RE.search(generated_text)
    return m.group(1).upper() if m else None


def parse_principles(generated_text: str, known: Iterable[str]) -> list[str]:
    """Known principle names after the decision word (sorted, unique)."""
    m = _DECISION_RE.search(generated_text)
    rest = generated_text[m.end():] if m else generated_text
    stop = _DECISION_RE.search(rest)  # a second decision word means the model rambled on
    rest = rest[: stop.start()] if stop else rest
    names = set(known)
    return sorted({w for w in _WORD_RE.findall(rest.lower()) if w in names})
