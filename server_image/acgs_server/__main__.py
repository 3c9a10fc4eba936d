"""`python -m acgs_server` is `acgs-serve`."""

import sys

from acgs_server.cli import main

sys.exit(main())
