"""`python -m mailpush.cli`: the same as the `mailpush` console script."""

import sys

from .main import main

sys.exit(main())
