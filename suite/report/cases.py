"""Records grouped into cases (case_key + machine), and the medians, bests and fronts of registry metrics over them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Iterable

import numpy as np

from suite.core.frameworks import SETTINGS as FRAMEWORK_SETTINGS
from suite.core.models import CATALOG
from suite.core.spec import SCALING_DEFAULTS, TRAIN_SAMPLES, RunSpec
from suite.record.machines import record_machine_labels
from suite.record.metrics import Metric
from suite.record.schema import Machine, RunRecord
from suite.record.stats import Summary, summarize


def epochs_to_target(record: RunRecord, target: float) -> int | None:
    """The first epoch (1-based) whose validation accuracy reaches the target."""
    return next((e.epoch for e in record.history if e.val_accuracy is not None and e.val_accuracy >= target), None)


def median_with_inf(values: Iterable[float | None]) -> float | None:
    """Median where inf means 'never reached': a majority of non-reaching runs makes the median inf."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return None
    return float(np.median(np.asarray(present, dtype=float)))


def default_targets() -> dict[str, float]:
    """Per task, the lowest model default target: one target per task keeps models comparable."""
    targets: dict[str, float] = {}
    for facts in CATALOG.values():
        targets[facts.task] = min(targets.get(facts.task, 1.0), *facts.targets)
    return targets


@dataclass
class Case:
    """All runs of one case on one machine: the unit every table and plot is made of."""

    case_key: str
    machine: Machine
    spec: RunSpec
    records: list[RunRecord] = field(default_factory=list)
    label: str = ""
    setup_label: str = ""  # the label without the host: what to run, as opposed to where
    kind: str | None = None  # the Ray machine kind its runs were placed on (`run --executor ray`), else None
    machine_label: str = ""  # host, GPU or CPU model and cores, unique among the report's machines (record.machines)

    @property
    def place(self) -> tuple[str, str | None]:
        """Where its runs were made: machine id and Ray machine kind (see place())."""
        return self.machine.machine_id, self.kind

    @property
    def where(self) -> str:
        """The place as a reader sees it: the machine's label, and /kind for runs placed on a Ray machine kind."""
        name = self.machine_label or self.machine.hostname
        return f"{name}/{self.kind}" if self.kind else name

    @property
    def ok(self) -> list[RunRecord]:
        """Runs that finished with status ok."""
        return [r for r in self.records if r.status == "ok"]

    @property
    def task(self) -> str:
        """The classification task."""
        return self.spec.task

    @property
    def setup(self) -> str:
        """framework/model/device without host or settings."""
        return f"{self.spec.framework}/{self.spec.model}/{self.spec.device}"

    @property
    def variant(self) -> str:
        """The variant column of RunRecord.to_row(): "default" or the non-default settings."""
        return self.records[0].to_row()["variant"]

    @property
    def variant_family(self) -> str:
        """The label without its variant flags: what the cases of one speed-variants table share."""
        # group_cases builds every label as spec.label (framework/model/device + variant flags) + settings + host.
        return self.setup + self.label[len(self.spec.label):]

    def values(self, metric: Metric) -> list[float]:
        """The metric over ok runs, missing ones dropped."""
        return [v for v in (metric.get(r) for r in self.ok) if v is not None]

    def stats(self, metric: Metric) -> Summary | None:
        """Median, quartiles and n of the metric over ok runs (finite values only)."""
        return summarize(self.values(metric))


# Settings shown in a label only when they vary between the cases of one report. Variant flags (lr, init,
# keras_backend, precision, ...) are not listed: spec.label already names them when they are not at their default.
LABEL_SETTINGS = ("epochs", "limit", "batch_size", "threads")


def place(record: RunRecord) -> tuple[str, str | None]:
    """Where a run counts as made: its machine, and the Ray machine kind it was placed on (kinds are what a user
    compares, and several nodes of one host may carry different kinds)."""
    return record.machine.machine_id, record.node_kind


def group_cases(records: list[RunRecord]) -> list[Case]:
    """Group runs by (case_key, machine_id, Ray kind) and give every case a label unique within the report."""
    cases: dict[tuple[str, str, str | None], Case] = {}
    names = record_machine_labels(records)
    for record in records:
        key = (record.case_key, *place(record))
        if key not in cases:
            cases[key] = Case(record.case_key, record.machine, RunSpec.from_dict(record.spec), kind=record.node_kind,
                              machine_label=names[record.machine.machine_id])
        cases[key].records.append(record)
    ordered = sorted(cases.values(), key=lambda c: (c.task, c.spec.model, c.spec.device, c.where, c.spec.framework,
                                                   c.case_key))
    hosts = {c.place for c in ordered}
    varying = [s for s in LABEL_SETTINGS if len({str(c.spec.to_dict().get(s)) for c in ordered}) > 1]
    for case in ordered:
        parts = [case.spec.label]
        parts += [_setting_text(s, case.spec.to_dict().get(s)) for s in varying]
        case.setup_label = " ".join(parts)
        case.label = f"{case.setup_label} @{case.where}" if len(hosts) > 1 else case.setup_label
    _disambiguate(ordered)
    return ordered


def _setting_text(name: str, value: object) -> str:
    # No --limit means the whole training split; "limit=None" reads as "no data".
    return f"{name}={'all' if value is None and name == 'limit' else value}"


def _disambiguate(cases: list[Case]) -> None:
    # Two machines can share a hostname (cloud images): add the machine id so labels stay unique.
    seen: dict[str, int] = {}
    for case in cases:
        seen[case.label] = seen.get(case.label, 0) + 1
    for case in cases:
        if seen[case.label] > 1:
            case.label = f"{case.label} [{case.machine.machine_id}]"


def contender(case: Case) -> str:
    """The framework with its own non-default settings (`keras keras_backend=jax`): what a frameworks comparison ranks."""
    own = [f"{k}={v}" for k, v in case.spec.variant_flags().items() if k in FRAMEWORK_SETTINGS]
    return " ".join([case.spec.framework, *own])


def comparison_group(case: Case) -> str:
    """The label without the framework and its own settings: cases sharing it ran one recipe on one machine."""
    shared = [f"{k}={v}" for k, v in case.spec.variant_flags().items() if k not in FRAMEWORK_SETTINGS]
    # group_cases builds every label as spec.label + settings + host, so the tail after spec.label is the rest.
    return " ".join([f"{case.spec.model}/{case.spec.device}", *shared]) + case.label[len(case.spec.label):]


def framework_groups(cases: list[Case]) -> dict[str, dict[str, Case]]:
    """comparison group → contender → case, report order kept; only groups where two frameworks ran."""
    groups: dict[str, dict[str, Case]] = {}
    for case in cases:
        groups.setdefault(comparison_group(case), {})[contender(case)] = case
    return {g: by for g, by in groups.items() if len({c.spec.framework for c in by.values()}) > 1}


def model_rank(model: str) -> int:
    """A model's place in the catalog (dense, cnn, binary, …): the order every per-model figure uses."""
    return list(CATALOG).index(model) if model in CATALOG else len(CATALOG)


def training_volume(case: Case) -> int:
    """Training samples one run sees: epochs × the samples of its split (or its --limit)."""
    split = TRAIN_SAMPLES[case.task]
    return case.spec.epochs * min(case.spec.limit or split, split)


def representatives(cases: list[Case], metric: Metric) -> dict[tuple[str, str, str], Case]:
    """(task, model, framework) → the case that stands for it in small multiples: the most training, then the
    default variant, then the most runs, then the best median of the metric."""
    best: dict[tuple[str, str, str], Case] = {}
    for case in (c for c in cases if c.ok):
        key = (case.task, case.spec.model, case.spec.framework)
        if key not in best or _standing(case, metric) > _standing(best[key], metric):
            best[key] = case
    return best


def _standing(case: Case, metric: Metric) -> tuple[int, bool, int, float]:
    stats = case.stats(metric)
    return training_volume(case), not case.spec.variant_flags(), len(case.ok), stats.median if stats else -math.inf


def variant_base(spec: RunSpec) -> RunSpec:
    """The spec with every variant flag at its default: cases sharing it differ only in variant settings."""
    defaults = RunSpec(framework=spec.framework, model=spec.model)
    # --devices is not a variant: its cases meet in the scaling section, measured against the 1-device case.
    return replace(spec, **{name: getattr(defaults, name) for name in spec.variant_flags() if name not in SCALING_DEFAULTS})


def variant_families(cases: list[Case]) -> list[list[Case]]:
    """Cases that differ only in variant flags, on one machine, where there is more than one; report order kept."""
    families: dict[tuple[str, str, str | None], list[Case]] = {}
    for case in cases:
        families.setdefault((variant_base(case.spec).case_key, *case.place), []).append(case)
    return [members for members in families.values() if len(members) > 1]


def best_values(cases: list[Case], metrics: Iterable[Metric]) -> dict[str, float]:
    """Per metric, the best median among the cases (only when at least two cases have a value)."""
    best: dict[str, float] = {}
    for metric in metrics:
        medians = [s.median for s in (c.stats(metric) for c in cases) if s is not None]
        if len(medians) >= 2:
            best[metric.key] = max(medians) if metric.higher_is_better else min(medians)
    return best


def beyond_noise(a: Summary | None, b: Summary | None) -> bool | None:
    """True when the two IQRs do not overlap; None without repeats on both sides (nothing to judge noise by)."""
    if a is None or b is None or a.n < 2 or b.n < 2:
        return None
    return a.q3 < b.q1 or b.q3 < a.q1


def pareto_front(cases: list[Case], x: Metric, y: Metric) -> list[Case]:
    """Cases no other case beats on both medians (both higher-is-better), ordered by x."""
    points = [(c, sx.median, sy.median) for c in cases if (sx := c.stats(x)) and (sy := c.stats(y))]
    front = [(c, px, py) for c, px, py in points
             if not any(qx >= px and qy >= py and (qx > px or qy > py) for _, qx, qy in points)]
    return [c for c, _, _ in sorted(front, key=lambda item: item[1])]


def launch_hint(records: list[RunRecord]) -> str:
    """'launch-bound' when a CUDA run's step launch took most of its synced step time, '—' where not judged (CPU, Keras)."""
    judged = [r.launch_bound for r in records if r.launch_bound is not None]
    if not judged:
        return "—"
    return "launch-bound" if any(judged) else "device-bound"
