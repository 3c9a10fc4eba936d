"""What the operator, the trainer and the server exchange, declared once.

Each value that crosses a process boundary lives here and nowhere else: the constitutional hash and
the content digest pinned to it (``constitution``), the trainer's exit codes and reasons
(``exitcodes``), the progress report (``progress``), the trainer's and the verifier's result
(``result``), the artifact manifest and its digest (``manifest``), environment variable names
(``env``) and the Kubernetes timestamp format (``timefmt``).

Dependencies: pydantic and the standard library only, so every image can import it without pulling
in kopf, torch or aiohttp.
"""
