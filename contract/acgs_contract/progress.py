"""The progress report a trainer POSTs to the operator's progress endpoint.

    POST /v1/progress/<namespace>/<name>/<uid>
    Authorization: Bearer <token from env PROGRESS_TOKEN>
    {"phase": "Running", "step": 12, "totalSteps": 40, "percent": 30.0, "loss": 2.1,
     "epsilon": 1.3, "message": "step 12/40"}

Best effort: the newest report wins; a report with a terminal phase is the run's last.
"""

from __future__ import annotations

from pydantic import Field

from ._model import WireModel

RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"
TERMINAL_PHASES = (SUCCEEDED, FAILED)
MAX_MESSAGE_CHARS = 512


class ProgressReport(WireModel):
    phase: str = RUNNING
    step: int = Field(ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    percent: float | None = Field(default=None, ge=0, le=100)
    loss: float | None = None
    epsilon: float | None = Field(default=None, ge=0)
    message: str = ""

    @property
    def final(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @classmethod
    def at(cls, phase: str, step: int, total_steps: int, loss: float | None = None,
           epsilon: float | None = None, message: str = "") -> "ProgressReport":
        """The report of ``step`` out of ``total_steps``: percent derived, figures rounded."""
        percent = round(min(100.0, 100.0 * step / max(total_steps, 1)), 2)
        return cls(phase=phase, step=step, total_steps=total_steps, percent=percent,
                   loss=None if loss is None else round(float(loss), 6),
                   epsilon=None if epsilon is None else round(float(epsilon), 6),
                   message=message[:MAX_MESSAGE_CHARS])
