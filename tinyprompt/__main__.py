"""`python -m tinyprompt ...` is the `tinyprompt` command."""

import sys

from .cli import main

sys.exit(main())
