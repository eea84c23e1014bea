"""`python -m suite` is the same as `fashionbench`."""

import sys

from suite.cli import main

sys.exit(main())
