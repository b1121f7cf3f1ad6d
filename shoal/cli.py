"""Command line: ``shoal demo`` (more commands arrive with multi-node support)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shoal", description="shoal distributed runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the demo on a local embedded cluster")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from shoal.demo import main as demo

        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
