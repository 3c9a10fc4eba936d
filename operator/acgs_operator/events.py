"""Kubernetes events as values: decisions return them, handlers post them (truncated, one way)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kopf

NORMAL, WARNING = "Normal", "Warning"
# Below 1024 characters (kubeflow/trainer's limit): longer messages are cut by event sinks and
# `kubectl describe`; status keeps the full text.
EVENT_MESSAGE_LIMIT = 1000


def truncate(message: str, limit: int) -> str:
    return message if len(message) <= limit else message[:limit - 3] + "..."


@dataclass(frozen=True)
class Event:
    type: str  # NORMAL or WARNING
    reason: str  # a CamelCase constant from conditions.py
    message: str


def post(obj: Any, event: Event) -> None:
    kopf.event(obj, type=event.type, reason=event.reason, message=truncate(event.message, EVENT_MESSAGE_LIMIT))
