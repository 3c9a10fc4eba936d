"""Kubernetes timestamps (RFC 3339, UTC, whole seconds): the one place that formats and parses them."""

from __future__ import annotations

import datetime as dt
import time

FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_epoch(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime(FORMAT)


def now() -> str:
    return format_epoch(time.time())


def parse(stamp: str | None) -> float | None:
    """Seconds since the epoch of a stamp written by `format_epoch` (None stays None)."""
    if not stamp:
        return None
    return dt.datetime.strptime(stamp, FORMAT).replace(tzinfo=dt.UTC).timestamp()
