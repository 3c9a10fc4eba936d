"""What ``acgs-data flywheel-collect`` reports about an interaction log, and how the operator
reads it back from the collector Job's termination message (``parse_collect_result``).

The collector reads only closed log files, keeps the records whose constitutional hash is present
and right and whose shape is a valid interaction record, and de-duplicates them by request
content. ``excluded`` counts every record left out, by one of the ``EXCLUDED_*`` reasons;
``snapshot_digest`` is sha256 over the usable records in a canonical order, so a flywheel run that
records it can be reproduced (and a changed log is noticed).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from ._model import WireModel

#: a line that is not a JSON object (say, a torn write)
EXCLUDED_UNPARSABLE = "unparsable"
#: no ``constitutional_hash`` on the record
EXCLUDED_MISSING_HASH = "missingHash"
#: a ``constitutional_hash`` (of the record or its input) other than the expected one
EXCLUDED_WRONG_HASH = "wrongHash"
#: not the interaction-record schema (version, fields, scenario of its type)
EXCLUDED_INVALID = "invalidSchema"
#: the same request content as a record already kept
EXCLUDED_DUPLICATE = "duplicate"
EXCLUSION_REASONS = (EXCLUDED_UNPARSABLE, EXCLUDED_MISSING_HASH, EXCLUDED_WRONG_HASH, EXCLUDED_INVALID,
                     EXCLUDED_DUPLICATE)


class CollectResult(WireModel):
    """One collection over an interaction-log directory."""

    phase: str = Field(description="Succeeded or Failed.")
    reason: str = Field(description="Collected, or why the collection failed.")
    message: str = ""
    constitutional_hash: str | None = None
    files_closed: int = Field(default=0, ge=0, description="Closed files read.")
    files_open: int = Field(default=0, ge=0, description="Files still being written (not read).")
    records_seen: int = Field(default=0, ge=0, description="Lines in the closed files.")
    records_usable: int = Field(default=0, ge=0, description="Records a flywheel run may use.")
    excluded: dict[str, int] = Field(default_factory=dict, description="Records left out, by reason.")
    snapshot_digest: str | None = Field(default=None, description="sha256 over the usable records.")


def parse_collect_result(data: dict[str, Any] | None) -> CollectResult | None:
    """The collector's result from its parsed termination message; None when it is not one."""
    if not data:
        return None
    try:
        return CollectResult.model_validate(data)
    except ValidationError:
        return None
