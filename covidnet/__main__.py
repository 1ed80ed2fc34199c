"""``python -m covidnet``: the command-line interface."""

import sys

from covidnet.cli import main

sys.exit(main())
