"""Kubernetes timestamps (RFC 3339, UTC, whole seconds: ``2026-01-02T03:04:05Z``)."""

from __future__ import annotations

import datetime as dt

K8S_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(epoch: float) -> str:
    """``epoch`` (seconds) as a Kubernetes timestamp."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime(K8S_TIME_FORMAT)


def parse_time(stamp: str) -> float:
    """A Kubernetes timestamp as epoch seconds; ValueError names the value and the format."""
    try:
        return dt.datetime.strptime(stamp, K8S_TIME_FORMAT).replace(tzinfo=dt.UTC).timestamp()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"timestamp {stamp!r}: expected {K8S_TIME_FORMAT} (UTC)") from exc


def now() -> str:
    """The current time as a Kubernetes timestamp."""
    return dt.datetime.now(dt.UTC).strftime(K8S_TIME_FORMAT)
