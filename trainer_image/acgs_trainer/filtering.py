"""Constitutional filter: critique every example against the rules, then revise or drop it.

Revisable: a missing hash (stamped), a missing or disagreeing target (replaced by the rule-derived
one). Unrecoverable: a hash of another constitution, or a scenario the rules cannot be applied to.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .constitution import Constitution
from .datasets import REVISABLE, check_record, target_output

log = logging.getLogger(__name__)


@dataclass
class FilterReport:
    kept: list[dict[str, Any]] = field(default_factory=list)
    revised: Counter[str] = field(default_factory=Counter)  # problem kind -> records revised for it
    dropped: Counter[str] = field(default_factory=Counter)  # problem kind -> records dropped for it
    # first few (record index, problem kind), for the log and errors: never a record's values,
    # which are private (`acgs-data validate` shows them to the data's owner)
    examples: list[str] = field(default_factory=list)
    n_revised: int = 0

    @property
    def counts(self) -> dict[str, Any]:
        return {
            "input": len(self.kept) + sum(self.dropped.values()),
            "kept": len(self.kept),
            "revised": self.n_revised,
            "dropped": sum(self.dropped.values()),
            "revisedByReason": dict(sorted(self.revised.items())),
            "droppedByReason": dict(sorted(self.dropped.items())),
        }


def constitutional_filter(records: list[Any], constitution: Constitution, expected_hash: str
                          ) -> FilterReport:
    report = FilterReport()
    for index, record in enumerate(records):
        check = check_record(record, constitution, expected_hash)
        unrecoverable = [p for p in check.problems if p.kind not in REVISABLE]
        if unrecoverable or check.verdict is None:
            # Counted once per record, under its first unrecoverable problem.
            first = unrecoverable[0] if unrecoverable else check.problems[0]
            report.dropped[first.kind] += 1
            if len(report.examples) < 5:
                report.examples.append(f"dropped record {index}: {first.kind}")
            continue
        if not check.problems:
            report.kept.append(record)
            continue
        revised = copy.deepcopy(record)
        revised["constitutional_hash"] = expected_hash
        revised["input"].setdefault("constitutional_hash", expected_hash)
        revised["target_output"] = target_output(check.verdict, constitution)
        report.n_revised += 1
        for kind in sorted({p.kind for p in check.problems}):
            report.revised[kind] += 1
        if len(report.examples) < 5:
            report.examples.append(f"revised record {index}: {check.problems[0].kind}")
        report.kept.append(revised)
    log.info("constitutional filter: %s", report.counts)
    for line in report.examples:
        log.info("  %s", line)
    return report
