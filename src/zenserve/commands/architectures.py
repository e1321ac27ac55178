"""`zenserve architectures`: list every registered architecture."""

from __future__ import annotations

import argparse

from zenserve.servers import ARCHITECTURES

HELP = "list the server architectures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    width = max(len(name) for name in ARCHITECTURES)
    for architecture in ARCHITECTURES.values():
        listing = architecture.book_listing
        listing = f" (listing {listing})" if listing != "-" else ""
        print(f"{architecture.name:<{width}}  {architecture.description}{listing}")
    return 0
