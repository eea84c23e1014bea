"""`fashionbench data`: find and verify Fashion-MNIST, or download it into the cache."""

from __future__ import annotations

import argparse

from suite.cli.common import add_data_dir_argument
from suite.core import data

HELP = "find and verify Fashion-MNIST (or download it into the cache)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to look; whether to download."""
    add_data_dir_argument(parser)
    parser.add_argument("--download", action="store_true", help="fetch from the upstream mirrors into the cache")


def main(args: argparse.Namespace) -> int:
    """Locate (or download) the data set and verify its checksums."""
    if args.download:
        data.download()
    dataset = data.load(args.data_dir)
    print(f"Fashion-MNIST verified (sha256 of decompressed IDX) in {dataset.source_dir}: "
          f"{len(dataset.train_labels):,} train / {len(dataset.test_labels):,} test images")
    return 0
