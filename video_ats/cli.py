"""`video-ats` console command: a thin dispatcher over one module per subcommand.

Each module in ``video_ats.commands`` defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported lazily so ``video-ats --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import UserError, unwrap_worker_error
from .fileio import DISK_ERRNOS, describe_os_error

# subcommand -> module under video_ats.commands
COMMANDS = {
    "make-synthetic": "make_synthetic",
    "check-data": "check_data",
    "train": "train",
    "test": "test",
    "predict": "predict",
    "quickstart": "quickstart",
    "profile": "profile",
    "calibrate": "calibrate",
    "sweep": "sweep",
    "bench-accuracy": "bench_accuracy",
    "benchmark": "benchmark",
    "models": "models",
    "export-hf": "export_hf",
}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (what was wrong, where the help is) instead of the whole usage block;
    subcommand parsers are made from this class too."""

    def parse_known_args(self, args=None, namespace=None):
        # An empty option value (`--json ''`, `--device ''`) would silently mean "not given" or a path of
        # nothing: refused here, once for every command, instead of in each command
        ns, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(ns, action.dest, None) if action.option_strings else None
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and not v.strip() for v in values):
                self.error(f"{action.option_strings[-1]} is empty; give a value or leave the option out")
        return ns, rest

    def error(self, message: str):
        if message.startswith("unrecognized arguments") and "=" in message:
            message += "; put all key=value overrides together, before or after the options, not between them"
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _command_modules():
    return {name: importlib.import_module(f"video_ats.commands.{mod}") for name, mod in COMMANDS.items()}


def build_parser(commands=None) -> argparse.ArgumentParser:
    commands = _command_modules() if commands is None else commands
    parser = _Parser(
        prog="video-ats",
        description="Adaptive Token Sampling for video transformers (TimeSformer, X-ViT).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in commands.items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        exc = unwrap_worker_error(exc) or exc           # raised in a DataLoader worker
        print(f"video-ats {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        inner = unwrap_worker_error(exc)
        if inner is None:
            raise
        print(f"video-ats {args.command}: error: {inner}", file=sys.stderr)
        return 2
    except BrokenPipeError:    # before OSError, of which it is a subclass
        # the reader went away (`video-ats train --help-config | head`): stop quietly. stdout is pointed at
        # devnull so the interpreter's final flush does not raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 0
    except OSError as exc:      # a full disk / read-only folder outside the places that say so themselves
        if exc.errno not in DISK_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"video-ats {args.command}: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"video-ats {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
