"""`python -m acgs_server` is `acgs-serve`."""

import sys

from acgs_server.cli import main

# The guard matters: the model process is spawned, and spawn re-imports the parent's main module.
if __name__ == "__main__":
    sys.exit(main())
