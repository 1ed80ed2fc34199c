"""The command-line interface, ``covidnet COMMAND``: one module per command or group of commands.

``listing`` (backbones), ``predict``, ``data`` (split), ``train``, ``evaluate``, ``gate`` (fit-gate,
gate-report) and ``model_card``; ``parser`` assembles them and ``common`` holds what they share.
Exit status: 0 when every scan was analysed, 1 when any scan could not be read, 2 for usage errors
(including a backbone without trained weights).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from covidnet.cli.common import EXIT_USAGE
from covidnet.cli.parser import build_parser
from covidnet.errors import CovidNetError


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CovidNetError as e:
        print(f"covidnet: {e}", file=sys.stderr)
        return EXIT_USAGE
