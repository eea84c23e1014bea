"""Hardware selection: the named hardware plan, like-for-like recommendations (one recipe, several machines), host energy."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest

from suite.bench.named_plans import HARDWARE, hardware_plan
from suite.cli import build_parser, parse
from suite.cli.run import plan_from_args
from suite.core.models import CATALOG
from suite.measure.energy import HostEnergyMeter, wrapped_delta_uj
from suite.record.schema import Contention, RunRecord
from suite.record.store import read_store, write_record
from suite.report.cases import group_cases
from suite.report.hardware import (
    GPU_ENERGY,
    HOST_ENERGY,
    NOT_COMPARABLE,
    Recommendation,
    case_costs,
    energy_per_1k_j,
    recommend,
    record_energy_to_target_j,
)
from suite.report.page import ReportInputs, build_report
from tests.conftest import REPO, needs_data, run_cli


def plan_of(*flags: str) -> list:
    return plan_from_args(parse(build_parser(), ["run", *flags]))


def test_the_hardware_plan_is_one_recipe_per_model_on_each_device_given():
    plan = plan_of("--plan", "hardware", "--device", "cpu", "cuda", "--threads", "4", "--repeats", "2")
    assert plan == hardware_plan(["cpu", "cuda"], 4, repeats=2)  # the command line and the GPU check agree
    assert {s.model for s in plan} == set(CATALOG) and {s.device for s in plan} == {"cpu", "cuda"}
    assert all(s.framework == "torch" and s.precision == "fp32" and s.compile == "none" and s.batch_size == 500
               and s.limit is None and s.epochs == HARDWARE["epochs"] for s in plan)
    # One recipe per model whatever the device, thread count or seed: what a like-for-like verdict needs.
    assert len({s.recipe_key for s in plan}) == len(CATALOG)
    assert len({s.recipe_key for s in plan + hardware_plan(["cpu"], 192)}) == len(CATALOG)
    assert sorted({s.seed for s in plan}) == [0, 1]
    # A flag typed after --plan wins, and makes another recipe: the report will not compare it with this one.
    (other,) = {s.recipe_key for s in plan_of("--plan", "hardware", "--device", "cpu", "--epochs", "3", "--model", "cnn")}
    assert other not in {s.recipe_key for s in plan}


# ------------------------------------------------------------------ like-for-like verdicts

EVIDENCE = REPO / "reports" / "h200-2026-12-04" / "results"  # the first real GPU run: 2-epoch cases, one box
CPU_VM = {"machine_id": "904ab05c32f0", "hostname": "vm", "cpu_model": "Intel(R) Xeon(R) Processor", "cpu_cores_logical": 2,
          "cpu_cores_physical": 2, "gpus": []}
STORE_A = REPO / "tests" / "fixtures" / "store_a"  # a CPU machine's runs: 3 epochs, 3,000 samples, batch 128


def on_cpu_vm(record: RunRecord, **figures: object) -> RunRecord:
    """The run as if made on the 2-core CPU VM (also a host called vm), with some figures replaced."""
    machine = record.machine.model_copy(update=CPU_VM)
    return record.model_copy(update={"machine": machine, "run_id": uuid.uuid4().hex, "spec": {**record.spec, "threads": 2},
                                     **figures})


def verdict_rows(records: list[RunRecord], task: str = "10-class", target: float = 0.85) -> list[Recommendation]:
    costs = [case_costs(c, {}, target) for c in group_cases(records) if c.ok and c.task == task]
    return recommend(costs, task, prices_given=False)


def test_h200_records_merged_with_another_recipe_give_not_comparable_rows_only(tmp_path: Path):
    h200, _ = read_store([EVIDENCE])
    cpu, _ = read_store([STORE_A])
    rows = verdict_rows(h200 + [on_cpu_vm(r) for r in cpu])
    assert rows and all(r.verdict == "not comparable" and r.machine == NOT_COMPARABLE for r in rows)
    (row,) = rows
    assert row.why.startswith("no recipe ran on more than one machine/device: ")
    assert "vm (NVIDIA H200, 16 cores) on cuda ran " in row.why and "vm (NVIDIA H200, 16 cores) on cpu ran" in row.why
    assert "vm (Intel Xeon Processor, 2 cores) on cpu ran" in row.why
    # What the first merged report got wrong: the 2-core VM named fastest to 0.85 over 2-epoch GPU runs.
    assert not any(r.question.startswith("Fastest") for r in rows)
    for directory, records in (("h200", h200), ("cpu", [on_cpu_vm(r) for r in cpu])):
        for record in records:
            write_record(record, tmp_path / "merged" / directory)
    page, _ = build_report(ReportInputs(results=[tmp_path / "merged"], out=tmp_path / "report"))
    html = page.read_text(encoding="utf-8")
    assert "no recipe ran on more than one machine/device" in html and "Fastest to 0.85" not in html


def test_one_recipe_on_two_machines_gives_a_real_verdict_and_a_disturbed_case_never_wins():
    h200, _ = read_store([EVIDENCE])
    box_cpu = next(r for r in h200 if r.spec["device"] == "cpu" and r.status == "ok")  # torch/cnn/cpu, 6,000 samples
    slower = {"train_steady_samples_per_s": box_cpu.train_steady_samples_per_s / 30,
              "history": [e.model_copy(update={"train_s": e.train_s * 30}) for e in box_cpu.history],
              "time_to_accuracy_s": {}}
    vm_cpu = on_cpu_vm(box_cpu, **slower)
    assert vm_cpu.run_spec.recipe_key == box_cpu.run_spec.recipe_key  # threads (16 vs 2) belong to the machine
    rows = verdict_rows(h200 + [vm_cpu], target=0.6)  # 2 epochs on 6,000 samples reach 0.69 validation accuracy
    fastest = next(r for r in rows if r.question.startswith("Fastest to 0.6"))
    assert fastest.verdict == "winner" and fastest.machine == "vm (NVIDIA H200, 16 cores) on cpu"
    assert fastest.setup == "torch/cnn batch 500, 2 epochs, 6,000 samples"
    assert "next: vm (Intel Xeon Processor, 2 cores) on cpu" in fastest.why and "30.00× the best" in fastest.why
    energy = next(r for r in rows if r.question.startswith("Most energy") and r.setup == fastest.setup)
    assert energy.verdict == "not measured" and "no CPU package energy" in energy.why
    assert rows[-1].verdict == "not comparable"  # the CUDA cases ran 2-epoch recipes of their own
    # The same VM run made faster but DISTURBED (other work took 80 % of its cores) is left out, not crowned.
    busy = Contention(wall_s=10.0, cores_logical=2, case_cores=2, others_busy_cores=1.6, steal_cores=0.0,
                      own_busy_cores=0.4)
    faster = on_cpu_vm(box_cpu, train_steady_samples_per_s=box_cpu.train_steady_samples_per_s * 9,
                       history=[e.model_copy(update={"train_s": e.train_s / 9}) for e in box_cpu.history],
                       contention_train=busy)
    assert faster.disturbed
    (row,) = [r for r in verdict_rows(h200 + [faster], target=0.6) if r.setup == fastest.setup]
    assert row.verdict == "not comparable" and "only one place ran it undisturbed" in row.why and "DISTURBED" in row.why


# ------------------------------------------------------------------ host energy (RAPL / powercap)


def fake_powercap(root: Path, packages: dict[str, tuple[int, int]]) -> Path:
    """A powercap tree as Linux lays it out: package zones intel-rapl:N (name, energy_uj, max_energy_range_uj) with a
    core sub-zone each, and an mmio zone that is not a package counter."""
    for index, (name, (energy_uj, range_uj)) in enumerate(packages.items()):
        zone = root / f"intel-rapl:{index}"
        (zone / f"intel-rapl:{index}:0").mkdir(parents=True)
        (zone / f"intel-rapl:{index}:0" / "name").write_text("core\n")
        (zone / f"intel-rapl:{index}:0" / "energy_uj").write_text("5\n")
        (zone / "name").write_text(f"{name}\n")
        (zone / "energy_uj").write_text(f"{energy_uj}\n")
        (zone / "max_energy_range_uj").write_text(f"{range_uj}\n")
    (root / "intel-rapl-mmio:0").mkdir(parents=True, exist_ok=True)
    (root / "intel-rapl-mmio:0" / "name").write_text("package-0\n")
    return root


def set_energy(root: Path, index: int, energy_uj: int) -> None:
    (root / f"intel-rapl:{index}" / "energy_uj").write_text(f"{energy_uj}\n")


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_host_energy_sums_the_packages_and_undoes_a_counter_wrap(tmp_path: Path):
    root = fake_powercap(tmp_path / "powercap", {"package-0": (1_000_000, 262_143_328_850),
                                                 "package-1": (262_000_000_000, 262_143_328_850)})
    clock = Clock()
    meter = HostEnergyMeter(root, clock=clock)
    set_energy(root, 0, 31_000_000)  # +30 J
    set_energy(root, 1, 100_000_000)  # wrapped: +143.33 J to the top, +100 J after it
    meter.mark()
    set_energy(root, 0, 41_000_000)  # +10 J
    clock.now_s = 112.5
    result = meter.result()
    assert result.available and result.reason is None and result.source == "RAPL package energy (powercap)"
    assert result.zones == ["package-0", "package-1"]  # sub-zones and the mmio zone are not package counters
    assert result.energy_j == pytest.approx(30 + (262_143_328_850 - 262_000_000_000 + 100_000_000) / 1e6 + 10)
    assert result.wraps == 1 and result.duration_s == pytest.approx(12.5)
    assert wrapped_delta_uj(10, 4, 12) == 6


def test_host_energy_says_why_it_is_not_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    absent = HostEnergyMeter(tmp_path / "no-such-dir").result()
    assert not absent.available and absent.energy_j is None and absent.reason.startswith("no powercap interface")
    (tmp_path / "empty").mkdir()
    assert HostEnergyMeter(tmp_path / "empty").result().reason.startswith("no RAPL package zone under")
    root = fake_powercap(tmp_path / "powercap", {"package-0": (1, 1000)})
    counter = root / "intel-rapl:0" / "energy_uj"
    real_read_text = Path.read_text

    def root_only(path: Path, *args: object, **kwargs: object) -> str:
        if path == counter:  # what a non-root user meets since Linux 5.10 (root reads any file, so fake it)
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", root_only)
    denied = HostEnergyMeter(root).result()
    assert not denied.available and denied.reason.startswith(f"permission denied reading {counter}")
    assert "chmod a+r" in denied.reason


def test_cpu_energy_to_target_uses_the_packages_and_gpu_energy_the_board():
    h200, _ = read_store([EVIDENCE])
    cuda = next(r for r in h200 if r.spec["device"] == "cuda" and r.status == "ok")
    cpu = next(r for r in h200 if r.spec["device"] == "cpu" and r.status == "ok")
    assert energy_per_1k_j(cuda) == (cuda.energy_per_1k_train_samples_j, GPU_ENERGY)
    assert energy_per_1k_j(cpu) == (None, HOST_ENERGY)  # recorded before host energy existed
    metered = cpu.model_copy(update={"host_energy_per_1k_train_samples_j": 4.0})
    epochs = next(e.epoch for e in metered.history if e.val_accuracy >= 0.6)
    assert record_energy_to_target_j(metered, 0.6) == pytest.approx(4.0 * metered.train_samples * epochs / 1000)
    assert record_energy_to_target_j(metered, 0.99) == math.inf


@needs_data
def test_a_real_run_records_host_energy_or_why_not(tmp_path: Path, probe_cache: Path):
    done = run_cli("run", "--framework", "torch", "--model", "dense", "--device", "cpu", "--epochs", "2", "--limit", "500",
                   "--infer-batch-sizes", "1", "--results", str(tmp_path / "r"), cache=probe_cache)
    assert done.returncode == 0, done.stderr[-2000:]
    (record,) = read_store([tmp_path / "r"])[0]
    energy = record.host_energy_train
    assert energy is not None
    if energy.available:  # a bare-metal Linux box with readable counters
        assert energy.energy_j > 0 and energy.zones and record.host_energy_per_1k_train_samples_j > 0
    else:
        assert energy.reason and record.host_energy_per_1k_train_samples_j is None
        page, _ = build_report(ReportInputs(results=[tmp_path / "r"], out=tmp_path / "report"))
        assert energy.reason.split(" (")[0] in page.read_text(encoding="utf-8")  # the "not measured" list says why
