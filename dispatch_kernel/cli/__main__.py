"""`python -m dispatch_kernel.cli`: the `dispatch` command."""

import sys

from . import main

sys.exit(main())
