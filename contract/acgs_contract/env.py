"""Environment variable names one program sets and another reads.

The operator writes these into the trainer's and the server's pod specs; the trainer and the server
read them. A server setting's variable is ``PREFIX + FIELD_NAME.upper()`` (``server_var``), with
``ARTIFACT`` as the one shorter historical spelling.
"""

from __future__ import annotations

PREFIX = "ACGS_"

# --- shared by the trainer, the verifier and the server ----------------------------------------
#: the constitution file (mounted from the operator's constitution ConfigMap)
CONSTITUTION_PATH = "ACGS_CONSTITUTION_PATH"
#: the content digest the operator pins for that constitution (sha256:<hex>)
CONSTITUTION_DIGEST = "ACGS_CONSTITUTION_DIGEST"
#: where a program writes its result (default /dev/termination-log)
TERMINATION_LOG = "ACGS_TERMINATION_LOG"
LOG_LEVEL = "ACGS_LOG_LEVEL"

# --- trainer --------------------------------------------------------------------------------------
#: the operator's progress endpoint for this run
PROGRESS_URL = "ACGS_PROGRESS_URL"
#: bearer token for PROGRESS_URL (from a per-job Secret, never in the Job spec)
PROGRESS_TOKEN = "ACGS_PROGRESS_TOKEN"
#: the address the trainer serves /metrics on (the pod IP, from the downward API)
METRICS_HOST = "ACGS_METRICS_HOST"

# --- server (one per ServerConfig field the operator sets) ----------------------------------------
ARTIFACT = "ACGS_ARTIFACT"
HOST = "ACGS_HOST"
PORT = "ACGS_PORT"
EXPECTED_DIGEST = "ACGS_EXPECTED_DIGEST"
CONSTITUTIONAL_HASH = "ACGS_CONSTITUTIONAL_HASH"
MODEL_NAME = "ACGS_MODEL_NAME"
MODEL_VERSION = "ACGS_MODEL_VERSION"
INTERACTION_LOG_DIR = "ACGS_INTERACTION_LOG_DIR"
TORCH_THREADS = "ACGS_TORCH_THREADS"
DEVICE = "ACGS_DEVICE"

_SERVER_SPELLINGS = {"artifact": ARTIFACT}


def server_var(field_name: str) -> str:
    """The environment variable of a server setting (``acgs_server.config.ServerConfig`` field)."""
    return _SERVER_SPELLINGS.get(field_name, PREFIX + field_name.upper())
