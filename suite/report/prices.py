"""Hourly prices of machines/devices from a small YAML or CSV file, and the lookup that matches them to runs."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from suite.record.schema import Machine


class PriceError(ValueError):
    """A prices file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Price:
    """A price matched to one machine and device, with the key that matched (shown in the report)."""

    usd_per_hour: float
    key: str


FORMAT_HINT = "expected `KEY: USD_PER_HOUR` lines (YAML) or a CSV with header `key,usd_per_hour`; see reports/README.md"


def _number(path: Path, key: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PriceError(f"{path}: price of {key!r} is {value!r}, not a number of USD per hour") from None
    if not math.isfinite(number) or number < 0:
        raise PriceError(f"{path}: price of {key!r} is {value!r}; use a finite number >= 0 (USD per hour)")
    return number


def load_prices(path: Path) -> dict[str, float]:
    """Read `key → USD/hour` from YAML (mapping, optionally under `usd_per_hour:`) or CSV (`key,usd_per_hour`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceError(f"{path}: cannot read prices file ({exc}); pass --prices with a readable file") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or not {"key", "usd_per_hour"} <= set(rows[0]):
            raise PriceError(f"{path}: {FORMAT_HINT}")
        raw: dict = {row["key"].strip(): row["usd_per_hour"] for row in rows if row.get("key")}
    else:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PriceError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); {FORMAT_HINT}") from None
        if isinstance(raw, dict) and isinstance(raw.get("usd_per_hour"), dict):
            raw = raw["usd_per_hour"]
        if not isinstance(raw, dict) or not raw:
            raise PriceError(f"{path}: {FORMAT_HINT}")
    return {str(key).strip(): _number(path, str(key), value) for key, value in raw.items()}


def candidate_keys(machine: Machine, device: str, kind: str | None = None, label: str | None = None,
                   shared_hosts: frozenset[str] = frozenset()) -> list[str]:
    """Keys tried in order, most specific first: machine id, label (`vm (NVIDIA H200, 16 cores)`) or host with device,
    then alone, the Ray machine kind (kind:NAME, as at `ray start --resources`), GPU name, device. A host name in
    `shared_hosts` (two machines of the report answer to it) is never tried: it would price both alike."""
    names = [machine.machine_id, *([label] if label else [])]
    if machine.hostname not in shared_hosts:
        names.append(machine.hostname)
    keys = [f"{name}/{device}" for name in names] + names
    if kind:
        keys += [f"kind:{kind}/{device}", f"kind:{kind}"]
    if device == "cuda":
        keys += [str(gpu.get("name")) for gpu in machine.gpus if gpu.get("name")]
    keys.append(device)
    return keys


def price_for(prices: dict[str, float], machine: Machine, device: str, kind: str | None = None,
              label: str | None = None, shared_hosts: frozenset[str] = frozenset()) -> Price | None:
    """The price of running on this machine (of that Ray kind) and device, or None when no key matches."""
    folded = {key.casefold(): (key, value) for key, value in prices.items()}
    for key in candidate_keys(machine, device, kind, label, shared_hosts):
        if key.casefold() in folded:
            original, value = folded[key.casefold()]
            return Price(value, original)
    return None


def shared_hostnames(machines: list[Machine]) -> frozenset[str]:
    """Host names that two or more distinct machines answer to (every cloud VM may be called `vm`)."""
    ids: dict[str, set[str]] = {}
    for machine in machines:
        ids.setdefault(machine.hostname, set()).add(machine.machine_id)
    return frozenset(host for host, found in ids.items() if len(found) > 1)


def cost_usd(seconds: float | None, price: Price | None) -> float | None:
    """USD for `seconds` of use at the hourly price."""
    if seconds is None or price is None or not math.isfinite(seconds):
        return None
    return seconds / 3600.0 * price.usd_per_hour
