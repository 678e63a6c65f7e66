"""Kiosk entry point: ``python main.py --help`` lists the commands."""

import sys

from assistant.cli import main

if __name__ == "__main__":
    sys.exit(main())
