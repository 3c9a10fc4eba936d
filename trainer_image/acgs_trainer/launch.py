"""``acgs-torchrun``: torchrun (``torch.distributed.run``, the same arguments), exiting with the
failing worker's own exit code.

torchrun itself exits 1 whatever its workers' codes were, which would make every failure look
retriable to the Job's podFailurePolicy (a privacy-budget halt or a bad config would be retried
until the backoff limit). This wrapper runs torchrun in-process and, when a worker fails, exits
with the first failure's code (a signal becomes UNEXPECTED_ERROR). Everything else is torchrun's.

In an Indexed Job it also says which pod hosts the c10d rendezvous store: completion index 0 (the
pod whose stable DNS name is the rendezvous endpoint), so hosting does not depend on whether the
headless Service's DNS record already exists when that pod starts.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, Sequence

from acgs_contract.exitcodes import UNEXPECTED_ERROR

log = logging.getLogger("acgs_trainer.launch")
INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by the Job controller on every pod of an Indexed Job


def torchrun_args(argv: Sequence[str], environ: dict[str, str] | None = None) -> list[str]:
    """``argv`` plus ``--rdzv-conf is_host=...`` from the completion index, unless given."""
    e = os.environ if environ is None else environ
    args = list(argv)
    index = e.get(INDEX_ENV)
    if index is None or any(a.startswith("--rdzv-conf") or a.startswith("--rdzv_conf") for a in args):
        return args
    return [f"--rdzv-conf=is_host={'true' if index == '0' else 'false'}", *args]


def exit_code_of(failures: Mapping[int, object]) -> int:
    """The exit code of the worker that failed first (the root cause: its peers fail because it
    did); UNEXPECTED_ERROR for a signal."""
    first = sorted(failures.values(), key=lambda f: getattr(f, "timestamp", 0))
    code = getattr(first[0], "exitcode", None) if first else None
    return code if isinstance(code, int) and code > 0 else UNEXPECTED_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(torchrun_args(sys.argv[1:] if argv is None else argv))
    try:
        run(args)
    except ChildFailedError as exc:
        code = exit_code_of(exc.failures)
        log.error("torchrun: worker failed (%s); exiting with its code %d", exc.name, code)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
