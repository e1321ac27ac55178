"""The command lines the benchmark scripts share.

architectures.py, fastest.py, latency.py and scaling.py race many setups and
take the same options with the same meaning (``parse_race_arguments``); each
adds its own (``--provisional``) through ``extend``. A run narrowed by
``--arch`` or by other connection counts than the default is never recorded:
it must not replace the full table. deploy_cost.py and metrics_cost.py measure
the setups of one architecture (``parse_one_architecture_arguments``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zenserve.servers import ARCHITECTURES


@dataclass(frozen=True, slots=True)
class RunLength:
    """How many rounds, each run how long."""

    rounds: int
    seconds: float

    def describe(self, per: str) -> str:
        return (f"{self.rounds} round{'s' if self.rounds != 1 else ''} of "
                f"{self.seconds:g} s {per}")


def parse_race_arguments(argv: Sequence[str] | None, description: str | None, *,
                         quick: RunLength, full: RunLength, arch_default: str,
                         per: str = "per point", connections: Sequence[int] = (),
                         extend: Callable[[argparse.ArgumentParser], None] | None = None
                         ) -> argparse.Namespace:
    """Parse the shared options; ``args.rounds``, ``args.seconds`` and ``args.provisional`` are set.

    ``connections``: the default connection counts, when the script takes
    ``--connections``. ``args.provisional`` says why the table is not final
    (a ``--quick`` run), or is None; ``args.no_record`` is set for narrowed runs.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help=f"{quick.describe(per)}; the table is marked provisional")
    parser.add_argument("--rounds", type=int,
                        help=f"rounds, every setup driven once in each (default {full.rounds})")
    parser.add_argument("--seconds", type=float,
                        help=f"length of each run (default {full.seconds:g})")
    parser.add_argument("--arch", action="append", default=[], metavar="NAME",
                        help=f"architecture (repeatable; default: {arch_default}); "
                             "implies --no-record")
    if connections:
        parser.add_argument("--connections", type=int, nargs="+", default=list(connections),
                            metavar="N", help=f"connection counts (default "
                                              f"{' '.join(map(str, connections))}); other than "
                                              "the default implies --no-record")
    parser.add_argument("--no-record", action="store_true",
                        help="print the table only; leave RESULTS.md alone")
    if extend is not None:
        extend(parser)
    args = parser.parse_args(argv)
    length = quick if args.quick else full
    args.rounds = args.rounds or length.rounds
    args.seconds = args.seconds or length.seconds
    args.provisional = getattr(args, "provisional", None) or _quick_note(args.quick, quick, per)
    narrowed = connections and tuple(args.connections) != tuple(connections)
    args.no_record = args.no_record or bool(args.arch) or bool(narrowed)
    unknown = [name for name in args.arch if name not in ARCHITECTURES]
    if unknown:
        parser.error(f"unknown architecture(s) {', '.join(unknown)}; "
                     f"registered: {', '.join(ARCHITECTURES)}")
    return args


def parse_one_architecture_arguments(argv: Sequence[str] | None, description: str | None, *,
                                     quick: RunLength, full: RunLength,
                                     default: str = "epoll") -> argparse.Namespace:
    """--quick, --arch NAME and --no-record; ``args.rounds``, ``.seconds``, ``.provisional`` set."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help=f"{quick.describe('per point')}; the table is marked provisional")
    parser.add_argument("--arch", default=default, choices=list(ARCHITECTURES))
    parser.add_argument("--no-record", action="store_true",
                        help="print the table only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    length = quick if args.quick else full
    args.rounds, args.seconds = length.rounds, length.seconds
    args.provisional = _quick_note(args.quick, quick, "per point")
    return args


def _quick_note(is_quick: bool, quick: RunLength, per: str) -> str | None:
    return f"--quick run ({quick.describe(per)})" if is_quick else None


def event_loop_architectures() -> list[str]:
    """Every registered event-loop architecture (the default of the event-loop benchmarks)."""
    return [name for name, architecture in ARCHITECTURES.items() if architecture.event_loop]
