"""The ``chronosdb`` command line."""
from __future__ import annotations

import argparse
import sys

import chronosdb


def _cmd_version(args) -> int:
    print(f"chronosdb {chronosdb.__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chronosdb", description="ChronosDB time-series database")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("version", help="print the version")
    v.set_defaults(func=_cmd_version)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
