"""The progress report a trainer POSTs to the operator's progress endpoint.

    POST /v1/progress/<namespace>/<name>/<uid>
    Authorization: Bearer <token from env PROGRESS_TOKEN>
    {"stream": "<random per trainer process>", "sequence": 7, "phase": "Running", "step": 12,
     "totalSteps": 40, "percent": 30.0, "loss": 2.1, "epsilon": 1.3, "message": "step 12/40"}

Best effort: the newest report wins; a report with a terminal phase is the run's last. The operator
refuses a replay: a report whose ``sequence`` is not above the last one accepted from its
``stream``, or from a stream a newer one of the same job replaced (a retried pod is a new stream).
Numbers are finite (NaN and Infinity are refused).
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from ._model import WireModel

RUNNING, SUCCEEDED, FAILED = "Running", "Succeeded", "Failed"
TERMINAL_PHASES = (SUCCEEDED, FAILED)
MAX_MESSAGE_CHARS = 512
STREAM_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


class ProgressReport(WireModel):
    model_config = ConfigDict(**{**WireModel.model_config, "allow_inf_nan": False})

    stream: str = Field(pattern=STREAM_PATTERN, description="Random per reporting process.")
    sequence: int = Field(ge=0, description="Rises with every report of the stream.")
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
           epsilon: float | None = None, message: str = "", *, stream: str,
           sequence: int) -> ProgressReport:
        """The report of ``step`` out of ``total_steps``: percent derived, figures rounded."""
        percent = round(min(100.0, 100.0 * step / max(total_steps, 1)), 2)
        return cls(stream=stream, sequence=sequence, phase=phase, step=step, total_steps=total_steps, percent=percent,
                   loss=None if loss is None else round(float(loss), 6),
                   epsilon=None if epsilon is None else round(float(epsilon), 6),
                   message=message[:MAX_MESSAGE_CHARS])
