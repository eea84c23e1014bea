"""GPU readiness: the suite runs on a GPU image as it comes (no TensorFlow, no asv, another torch), the GPU speed
settings, the GPU sanity rules (synthetic records here, real ones where a GPU is present) and the one-shot GPU check."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from suite.bench import gpucheck
from suite.bench.named_plans import hardware_plan
from suite.core.frameworks import TORCH_COMPILE_MODES
from suite.core.spec import RunSpec, SpecError, grid
from suite.measure.machine import fingerprint
from suite.record.schema import GpuStats, RunRecord
from suite.record.store import read_store, write_record
from suite.report.gpu_summary import CheckRun, summary_markdown
from suite.report.page import ReportInputs, build_report
from suite.report.sanity import gpu_checks, overall
from suite.run.worker import LAUNCH_BOUND_SHARE, step_balance
from tests.conftest import REPO, needs_data, run_cli

GPU_IMAGE = REPO / "tests" / "helpers" / "no_tensorflow"
EVIDENCE = REPO / "reports" / "h200-2026-12-04"  # the first real GPU run (its README says what ran where)
OTHER_TORCH = "2.11.0+cu130"  # the torch of the target H200 image, not the pinned one


def image_env() -> dict[str, str]:
    """PYTHONPATH with the blocker first: tensorflow, asv and ray cannot be imported, torch says it is 2.11."""
    return {"PYTHONPATH": f"{GPU_IMAGE}:{REPO}", "FASHIONBENCH_FAKE_TORCH_VERSION": OTHER_TORCH}


def test_the_image_helper_really_blocks():
    code = ("import importlib.util as u, torch; print(u.find_spec('tensorflow'), u.find_spec('asv'), u.find_spec('ray'), "
            "torch.__version__)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **image_env()}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["None", "None", "None", OTHER_TORCH]


@needs_data
def test_cli_runs_without_tensorflow_asv_or_ray_and_with_another_torch(tmp_path: Path, probe_cache: Path):
    results, report = tmp_path / "results", tmp_path / "report"
    out = run_cli("run", "--framework", "torch", "keras", "--keras-backend", "tensorflow", "torch", "jax",
                  "--model", "dense", "--device", "cpu", "--epochs", "2", "--limit", "300", "--infer-batch-sizes", "1",
                  "--results", str(results), cache=probe_cache, env=image_env())
    assert out.returncode == 0, out.stderr[-3000:]
    records = {(r.spec["framework"], r.spec["keras_backend"] if r.spec["framework"] == "keras" else None): r
               for r in read_store([results])[0]}
    assert set(records) == {("torch", None), ("keras", "tensorflow"), ("keras", "torch"), ("keras", "jax")}
    tf_case = records.pop(("keras", "tensorflow"))
    assert tf_case.status == "skipped" and "needs TensorFlow, which cannot be imported here" in tf_case.error
    for key, record in records.items():
        assert record.status == "ok", (key, record.error, record.stderr_tail)
    assert records[("torch", None)].framework_info["torch_version"] == OTHER_TORCH
    assert records[("keras", "torch")].framework_info["torch_version"] == OTHER_TORCH
    for command in (["show", "--results", str(results)], ["report", "--results", str(results), "--out", str(report)]):
        done = run_cli(*command, env=image_env())
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert "Keras backend tensorflow needs TensorFlow" in (report / "index.html").read_text()


def test_reduce_overhead_and_large_batches_are_plan_settings():
    assert "reduce-overhead" in TORCH_COMPILE_MODES
    plan = grid({"framework": ["torch", "keras"], "model": ["cnn"], "compile": ["none", "reduce-overhead"],
                 "batch_size": [512, 8192]})
    assert {(s.framework, s.compile, s.batch_size) for s in plan} == {
        ("torch", "none", 512), ("torch", "reduce-overhead", 512), ("torch", "none", 8192),
        ("torch", "reduce-overhead", 8192), ("keras", "none", 512), ("keras", "none", 8192)}
    with pytest.raises(SpecError, match="--batch-size 16384 is larger than the 9600 training samples of --model binary"):
        grid({"framework": ["torch"], "model": ["binary"], "batch_size": [16384]})
    with pytest.raises(SpecError, match="--compile reduce-overhead applies to torch"):
        RunSpec(framework="keras", model="cnn", compile="reduce-overhead")


def _timed_record(device: str, step_ms: float, launch_ms: float | None) -> RunRecord:
    spec = RunSpec(framework="torch", model="dense", device=device, batch_size=100)
    return RunRecord(case_id=spec.id, case_key=spec.case_key, machine=fingerprint(), spec=spec.to_dict(), status="ok",
                     steady_epoch_s=0.5, train_samples=1000, step_time_ms_p50=step_ms, step_launch_ms_p50=launch_ms)


def test_step_balance_puts_synced_steps_next_to_the_sync_free_loop():
    spec = RunSpec(framework="torch", model="dense", device="cuda", batch_size=100)
    launch_bound = _timed_record("cuda", step_ms=2.0, launch_ms=LAUNCH_BOUND_SHARE * 2.0)
    step_balance(launch_bound, spec)
    assert launch_bound.sync_free_step_ms == pytest.approx(50.0)  # 0.5 s over 10 steps
    assert launch_bound.synced_step_ratio == pytest.approx(2.0 / 50.0) and launch_bound.launch_bound is True
    device_bound = _timed_record("cuda", step_ms=2.0, launch_ms=0.2)
    step_balance(device_bound, spec)
    assert device_bound.launch_bound is False
    on_cpu = _timed_record("cpu", step_ms=2.0, launch_ms=2.0)
    step_balance(on_cpu, RunSpec(framework="torch", model="dense", batch_size=100))
    assert on_cpu.launch_bound is None and math.isclose(on_cpu.sync_free_step_ms, 50.0)


CARD_BYTES = 141 * 2**30


def _gpu_record(device: str = "cuda", model: str = "cnn", **figures) -> RunRecord:
    """A synthetic ok run whose figures all satisfy the GPU sanity rules, with `figures` overriding them."""
    spec = RunSpec(framework="torch", model=model, device=device)
    machine = fingerprint().model_copy(update={"gpus": [{"index": 0, "name": "NVIDIA H200", "memory_total_bytes": CARD_BYTES}]})
    good = {"gpu_train": GpuStats(available=True, samples=20, util_mean_pct=63.0, energy_j=250.0, energy_source="counter"),
            "torch_peak_allocated_bytes": 80 * 2**20, "nvml_used_peak_bytes": 900 * 2**20, "mfu_pct": 9.5,
            "peak_flops_dtype": "fp32", "train_data_device": "cuda:0", "train_steady_samples_per_s": 400_000.0}
    if device == "cpu":
        good = {"train_steady_samples_per_s": 9_000.0, "mfu_pct": 30.0, "train_data_device": "cpu"}
    return RunRecord(case_id=spec.id, case_key=spec.case_key, machine=machine, spec=spec.to_dict(), status="ok",
                     **{**good, **figures})


def test_gpu_sanity_passes_a_healthy_run_and_is_na_without_gpu_runs():
    checks = gpu_checks([_gpu_record(), _gpu_record(model="dense"), _gpu_record("cpu")])
    assert [c.verdict for c in checks] == ["pass"] * len(checks), checks
    assert overall(checks) == "pass" and "(44.4×)" in checks[3].detail
    cpu_only = gpu_checks([_gpu_record("cpu")])
    assert {c.verdict for c in cpu_only} == {"n/a"} and overall(cpu_only) == "n/a"


@pytest.mark.parametrize(("broken", "rule", "evidence"), [
    ({"gpu_train": GpuStats(available=True, samples=3, util_mean_pct=0.0, energy_j=1.0, energy_source="counter")},
     "NVML utilisation", "utilisation 0.0 % over 3 sample(s)"),
    ({"gpu_train": GpuStats(available=False, reason="NVML library not found")}, "NVML utilisation GPU energy",
     "NVML library not found"),
    ({"gpu_train": GpuStats(available=True, samples=9, util_mean_pct=50.0, energy_j=0.0, energy_source="counter")},
     "GPU energy", "did not increase"),
    ({"gpu_train": GpuStats(available=True, samples=9, util_mean_pct=50.0, energy_j=9.0, energy_source="power_x_time")},
     "GPU energy", "not the total-energy counter"),
    ({"torch_peak_allocated_bytes": 0}, "device memory", "allocator peak is 0"),
    ({"nvml_used_peak_bytes": CARD_BYTES}, "device memory", "not below the card's 144,384 MiB"),
    ({"train_steady_samples_per_s": 5_000.0}, "CUDA training", "cuda 5,000 vs cpu 9,000"),
    ({"mfu_pct": 130.0}, "MFU against", "MFU 130.0 % against the fp32 probe"),
    ({"train_data_device": "cpu"}, "torch training", "training tensors on cpu"),
])
def test_gpu_sanity_fails_each_broken_figure_naming_the_run(broken: dict, rule: str, evidence: str):
    checks = gpu_checks([_gpu_record(**broken), _gpu_record("cpu")])
    failed = [c for c in checks if c.verdict == "fail"]
    assert [c.rule for c in failed] == [c.rule for c in checks if " ".join(c.rule.split()[:2]) in rule], checks
    assert evidence in failed[0].detail and overall(checks) == "fail"
    if not rule.startswith("CUDA"):
        assert failed[0].detail.startswith("torch/cnn/cuda: ")


def test_report_shows_the_gpu_sanity_list_only_for_gpu_runs(tmp_path: Path):
    for record in (_gpu_record(mfu_pct=130.0), _gpu_record("cpu")):
        write_record(record, tmp_path / "gpu")
    page, _ = build_report(ReportInputs(results=[tmp_path / "gpu"], out=tmp_path / "out"))
    html = page.read_text()
    assert 'id="gpu-sanity"' in html and "MFU 130.0 % against the fp32 probe" in html
    page, _ = build_report(ReportInputs(results=[tmp_path / "gpu" / next(p.name for p in (tmp_path / "gpu").iterdir()
                                                                          if "-cpu-" in p.name)], out=tmp_path / "cpu"))
    assert 'id="gpu-sanity"' not in page.read_text()


def test_gpu_check_dry_run_prints_the_plan_within_its_budget_and_writes_nothing(tmp_path: Path):
    out_dir = tmp_path / "out"
    done = subprocess.run(["bash", str(REPO / "tools" / "gpu-check.sh"), str(out_dir), "--dry-run"], cwd=tmp_path,
                          env={**os.environ, **image_env(), "PYTHON": sys.executable}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tensorflow 2" in done.stdout and "gpu: no GPU listed by NVML" in done.stdout  # found, though not importable
    total_s = float(done.stdout.split("estimated total: ")[1].split(" s")[0])
    assert 0 < total_s <= gpucheck.BUDGET_S
    cases = gpucheck.planned()
    assert total_s == pytest.approx(gpucheck.total_estimate_s(cases), abs=1)
    for case in cases:
        assert f" s  {case.spec.label}" in done.stdout
    assert f"{gpucheck.BUDGET_S - total_s:.0f} s left for new parts" in done.stdout
    assert not out_dir.exists()


def test_gpu_check_plan_runs_the_comparison_cases_first_then_the_hardware_plan_and_the_variants():
    cases = gpucheck.planned(threads=2)
    assert [c.part for c in cases] == sorted((c.part for c in cases), key=[p.name for p in gpucheck.PLAN_PARTS].index)
    assert [c.spec.label for c in cases if c.part == "comparison"] == [
        "torch/cnn/cpu", "keras/cnn/cuda keras_backend=torch", "keras/cnn/cuda keras_backend=jax"]
    assert [c.spec for c in cases if c.part == "hardware"] == hardware_plan(["cuda"], 2)
    torch_cuda = {(s.model, s.precision, s.compile) for s in gpucheck.plan(2) if s.framework == "torch" and s.device == "cuda"}
    assert torch_cuda >= {("dense", "fp32", "none"), ("cnn", "fp32", "none"), ("cnn", "fp32", "reduce-overhead")}
    # The launch part measures training only (its inference is the eager model's).
    assert all(c.spec.infer_batch_sizes == (() if c.part == "launch" else (1, 1024)) and c.spec.epochs >= 2 for c in cases)
    assert len({c.spec.id for c in cases}) == len(cases)


def test_the_whole_check_fits_its_budget_with_the_gpu_tests_training():
    cases = gpucheck.planned()
    steps = gpucheck.steps_s()
    assert steps["gpu-marked tests"] > 120  # they train now: 9 cases in 5 `fashionbench run` calls
    assert gpucheck.total_estimate_s(cases) <= gpucheck.BUDGET_S
    assert gpucheck.total_estimate_s(cases) == pytest.approx(sum(c.estimate_s for c in cases) + sum(steps.values()))


def _committed_records() -> dict[str, RunRecord]:
    records, problems = read_store([EVIDENCE / "results"])
    assert not problems
    return {r.run_id[:8]: r for r in records}


def test_the_measured_walls_are_those_of_the_committed_h200_records():
    records = _committed_records()
    assert len(gpucheck.MEASURED_2026_12_04) == sum(r.status == "ok" for r in records.values())
    for run_id, framework, model, device, backend, compile_mode, samples, wall_s, epoch_s in gpucheck.MEASURED_2026_12_04:
        record = records[run_id]
        assert gpucheck.part_key(record.run_spec) == (framework, model, device, backend, compile_mode)
        assert (record.train_samples, record.spec["epochs"]) == (samples, gpucheck.MEASURED_EPOCHS)
        assert record.process_wall_s == pytest.approx(wall_s, abs=0.05)
        assert record.steady_epoch_s == pytest.approx(epoch_s, abs=5e-4)


def test_estimates_fitted_to_the_h200_walls_reproduce_them():
    records = [r for r in _committed_records().values() if r.status == "ok"]
    # The launch figures (floor, profiled steps) came after that run: its walls hold none of their cost.
    estimates = [gpucheck.estimate_s(r.run_spec) - gpucheck.launch_extras_s(r.run_spec) for r in records]
    walls = [r.process_wall_s for r in records]
    # Each part's figure is a median over its precisions, so single cases scatter around it (reduce-overhead CNN:
    # 28.9-40.0 s) but the plan as a whole is what the budget spends.
    assert all(abs(e - w) / w < 0.3 for e, w in zip(estimates, walls)), list(zip(estimates, walls))
    assert sum(estimates) == pytest.approx(sum(walls), rel=0.05)
    keras_jax = next(r for r in records if r.spec["keras_backend"] == "jax" and r.spec["model"] == "dense")
    assert gpucheck.estimate_s(keras_jax.run_spec) > 35  # 20 s was estimated before the run; it took 41 s
    # More epochs cost their steady epochs (and validation); more steps on a GPU cost steps.
    spec = records[0].run_spec
    ten = dataclasses.replace(spec, epochs=10)
    assert gpucheck.estimate_s(ten) - gpucheck.estimate_s(spec) == pytest.approx(
        gpucheck.PARTS_S[gpucheck.part_key(spec)][1] * (8 + 8 * gpucheck.VALIDATION_SHARE))
    with pytest.raises(gpucheck.PlanError, match=r"no measured figures for keras/cnn/cuda \(part \('keras', 'cnn', 'cuda', 'tensorflow'"):
        gpucheck.estimate_s(RunSpec(framework="keras", model="cnn", device="cuda"))


def test_the_budgeted_gpu_test_runs_are_the_runs_the_gpu_tests_make(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import tests.test_cuda_paths as cuda_paths
    import tests.test_variants as variants
    from suite.cli import build_parser
    from suite.cli.run import plan_from_args

    modules = {"tests/test_gpu_ready.py": sys.modules[__name__], "tests/test_cuda_paths.py": cuda_paths,
               "tests/test_variants.py": variants}
    for test_id, runs in gpucheck.gpu_test_runs().items():
        path, name = test_id.split("::")
        made: list[list[str]] = []

        def record(*args: str, made: list[list[str]] = made, **_: object) -> subprocess.CompletedProcess[str]:
            made.append([a for a in args[1:] if a != str(tmp_path)])  # "run" and --results DIR are not the plan
            return subprocess.CompletedProcess(args, 0, "", "")

        class Recorded(Exception):
            """The test got to reading its records: every run it makes has been made."""

        monkeypatch.setattr(modules[path], "run_cli", record)
        monkeypatch.setattr(modules[path], "read_store", lambda *_: (_ for _ in ()).throw(Recorded()))
        with pytest.raises(Recorded):
            getattr(modules[path], name)(tmp_path, tmp_path)
        specs = [plan_from_args(build_parser().parse_args(["run", *[a for a in args if a != "--results"]]))
                 for args in made]
        assert specs == runs, test_id
def test_gpu_check_usage_errors_exit_2():
    done = subprocess.run(["bash", str(REPO / "tools" / "gpu-check.sh")], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stderr.startswith("usage: bash tools/gpu-check.sh OUTDIR")


def test_gpu_summary_is_one_page_with_the_verdict_and_every_case():
    cases = gpucheck.planned(threads=2)
    first_cuda = next(i for i, c in enumerate(cases) if c.spec.device == "cuda")
    ran = replace_spec(_gpu_record(), cases[first_cuda].spec)
    run = CheckRun(found=gpucheck.environment(), tests_line="5 passed in 80.1s", probes={"cuda": {"unavailable": "x"}},
                   cases=cases, records=[ran], checks=gpu_checks([ran]), wall_s=400.0)
    page = summary_markdown(run)
    assert page.startswith("# fashionbench GPU check\n\n**GPU sanity: pass** · gpu-marked tests: 5 passed in 80.1s")
    rows = [line for line in page.splitlines() if line.startswith("| torch/") or line.startswith("| keras/")]
    assert len(rows) == len(cases) and sum("| not run |" in row for row in rows) == len(cases) - 1
    assert rows[first_cuda].startswith(f"| {cases[first_cuda].spec.label} | ok |") and "| cuda:0 |" in rows[first_cuda]
    assert len(page.splitlines()) < 70


def test_gpu_check_records_cases_past_its_budget_and_writes_at_most_8_files(tmp_path: Path):
    from suite.cli.gpucheck import run_cases, write_outputs

    cases, results, out = gpucheck.planned(threads=2), tmp_path / "results", tmp_path / "out"
    records = run_cases(cases, results, None, deadline=time.monotonic())  # no time left: nothing may start
    assert [r.status for r in records] == ["skipped"] * len(cases)
    assert all(r.error == "not run: the check's 480 s budget would be exceeded" for r in records)
    out.mkdir()
    info = {"found": gpucheck.environment(), "tests_line": "1 passed", "probes": {}, "cases": cases, "wall_s": 1.0}
    assert write_outputs(out, results, info) == "n/a"
    assert sorted(p.name for p in out.iterdir()) == ["records.tar.gz", "report.html", "summary.csv", "summary.md"]
    with tarfile.open(out / "records.tar.gz") as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    assert len(read_store([tmp_path / "unpacked" / "results"])[0]) == len(cases)
    assert "**GPU sanity: n/a**" in (out / "summary.md").read_text()


def replace_spec(record: RunRecord, spec: RunSpec) -> RunRecord:
    """The synthetic record re-labelled as one case of the plan."""
    return record.model_copy(update={"case_id": spec.id, "case_key": spec.case_key, "spec": spec.to_dict()})


# ---------------------------------------------------------------- real GPU

@pytest.mark.gpu
@needs_data
def test_real_gpu_run_passes_the_sanity_rules(tmp_path: Path, probe_cache: Path):
    # The GPU trains on all 48,000 samples for 3 epochs: a phase of a few NVML periods (150 ms), not a single one.
    for device, limit in (("cuda", []), ("cpu", ["--limit", "6000"])):
        out = run_cli("run", "--framework", "torch", "--model", "cnn", "--device", device, "--epochs", "3", *limit,
                      "--batch-size", "500", "--infer-batch-sizes", "1", "--results", str(tmp_path), cache=probe_cache)
        assert out.returncode == 0, out.stderr[-3000:]
    records = read_store([tmp_path])[0]
    checks = {c.rule: c for c in gpu_checks(records)}
    assert all(c.verdict == "pass" for c in checks.values()), checks
    cuda = next(r for r in records if r.spec["device"] == "cuda")
    assert cuda.train_data_device == "cuda:0" and cuda.launch_bound is not None and cuda.step_launch_ms_p50 > 0


@pytest.mark.gpu
@needs_data
def test_real_gpu_reduce_overhead_replays_cuda_graphs(tmp_path: Path, probe_cache: Path):
    out = run_cli("run", "--framework", "torch", "--model", "dense", "--device", "cuda", "--compile", "reduce-overhead",
                  "--epochs", "2", "--limit", "4000", "--batch-size", "500", "--infer-batch-sizes", "1", "1024",
                  "--results", str(tmp_path), cache=probe_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    (record,) = read_store([tmp_path])[0]
    assert record.status == "ok", (record.error, record.stderr_tail)
    # Measured by the profiler over the steady steps, not copied from the flag (docs/gpu-speed.md).
    assert record.framework_info["cuda_graphs"] is True and record.graph_launches_per_step > 0
    assert record.test_accuracy > 0.5
    assert record.sync_free_step_ms and record.step_time_ms_p50 and record.inference_at(1024)


def test_driver_versions_from_nvml_and_what_is_missing():
    from suite.measure.nvml import driver_versions
    from tests.test_nvml import FakeNvml, NVMLError_LibraryNotFound

    class NewDriver(FakeNvml):
        def nvmlSystemGetNVMLVersion(self) -> str:
            return "13.580.82"

        def nvmlSystemGetCudaDriverVersion(self) -> int:
            return 13000

    fake = NewDriver()
    assert driver_versions(fake) == {"nvml": "13.580.82", "driver": "550.54.15", "cuda_driver": "13.0"}
    assert fake.calls["shutdown"] == 1
    assert driver_versions(FakeNvml())["nvml"].startswith("query failed: ")  # a driver without the CUDA query
    assert driver_versions(FakeNvml(init_error=NVMLError_LibraryNotFound))["nvml"].startswith("unavailable: ")


def test_cuda_graph_calls_mark_each_step_and_clone_what_is_kept(monkeypatch):
    """The reduce-overhead call path with a stand-in for the compiled model: no GPU or compile needed to check the rule
    that each call starts a graph step and kept outputs survive the next replay."""
    torch_backend = pytest.importorskip("suite.backends.torch_backend")
    torch = torch_backend.torch
    marks: list[int] = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    replay = torch.zeros(2, 10)  # a graph replay writes its outputs into the same static buffer each time
    backend = torch_backend.TorchBackend()
    backend.run_model = lambda x: replay.fill_(float(x.sum()))
    backend.cuda_graphs = True
    kept = backend._call(torch.ones(2, 1), keep=True)
    used_now = backend._call(torch.full((2, 1), 3.0))
    assert len(marks) == 2 and kept[0, 0] == 2.0 and used_now is replay and replay[0, 0] == 6.0
    backend.cuda_graphs = False
    assert backend._call(torch.ones(2, 1), keep=True) is replay and len(marks) == 2


def test_cuda_beats_cpu_compares_the_cpu_of_the_same_machine_only():
    gpu_box = _gpu_record()
    other_cpu = _gpu_record("cpu", train_steady_samples_per_s=900_000.0)  # another box's CPU, faster than this GPU
    other_cpu = other_cpu.model_copy(update={"machine": other_cpu.machine.model_copy(
        update={"machine_id": "0ther0ther00", "gpus": [], "cpu_cores_logical": 192})})
    rule = next(c for c in gpu_checks([gpu_box, other_cpu]) if c.rule.startswith("CUDA training"))
    assert rule.verdict == "n/a" and "on one machine" in rule.detail
    own_cpu = _gpu_record("cpu")
    rule = next(c for c in gpu_checks([gpu_box, other_cpu, own_cpu]) if c.rule.startswith("CUDA training"))
    assert rule.verdict == "pass" and rule.detail.count("cuda ") == 1 and "(NVIDIA H200," in rule.detail
    assert "cuda 400,000 vs cpu 9,000" in rule.detail


def test_gpu_check_hands_its_data_dir_and_fresh_probes_to_the_gpu_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from suite.cli import gpucheck as command

    seen: dict[str, object] = {}

    def fake_pytest(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.update(kwargs)
        return subprocess.CompletedProcess(argv, 0, "5 passed in 1.0s\n", "")

    monkeypatch.setattr(command.subprocess, "run", fake_pytest)
    assert command.run_gpu_tests(tmp_path, tmp_path / "data", threads=2) == "5 passed in 1.0s"
    env = seen["env"]
    assert isinstance(env, dict) and env["FASHIONBENCH_DATA"] == str(tmp_path / "data")
    assert env[gpucheck.PROBE_SEED_ENV] == str(tmp_path / "probe.json")
    assert seen["timeout"] == pytest.approx(2 * gpucheck.gpu_tests_estimate_s(2))


def test_the_tests_look_for_the_data_where_fashionbench_data_points(tmp_path: Path):
    # What gpu-check's pytest sees: $FASHIONBENCH_DATA decides, so a wrong one skips the training tests naming it.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "tests/test_gpu_ready.py",
                           "-k", "cli_runs_without_tensorflow"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FASHIONBENCH_DATA": str(tmp_path / "nowhere")})
    assert "1 skipped" in done.stdout, done.stdout[-2000:]
    assert f"data dir {tmp_path / 'nowhere'} (from $FASHIONBENCH_DATA) does not exist" in done.stdout


@needs_data
def test_gpu_check_resolves_a_relative_data_dir_before_the_tests_run_elsewhere(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch):
    from suite.cli import gpucheck as command
    from suite.core import data

    (tmp_path / "fm").mkdir()
    for base in data.FILES.values():
        (tmp_path / "fm" / f"{base}.gz").symlink_to(data.find_data_dir() / f"{base}.gz")
    handed: list[Path] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(command, "run_probes", lambda out, threads: {})
    monkeypatch.setattr(command, "run_gpu_tests", lambda out, data_dir, threads: handed.append(data_dir) or "0 passed")
    monkeypatch.setattr(command, "run_cases", lambda cases, results, data_dir, deadline: handed.append(data_dir) or [])
    monkeypatch.setattr(command, "write_outputs", lambda out, results, info: "n/a")
    args = command.argparse.Namespace(outdir=tmp_path / "out", dry_run=False, data_dir="fm")
    assert command.main(args) == 0
    assert handed == [tmp_path / "fm", tmp_path / "fm"] and handed[0].is_absolute()


def test_the_tests_probe_cache_starts_from_the_checks_steady_probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from suite.measure import probe
    from tests.conftest import seed_probes

    steady = {"device": "cpu", "threads": 16, "flops_per_s": {"fp32": 1.0e12}, "probe_version": probe.PROBE_VERSION,
              "disturbed": None, "cached": False}
    seed = tmp_path / "probe.json"
    seed.write_text(json.dumps({"cpu": steady, "cuda": {**steady, "device": "cuda", "disturbed": "rounds 30% apart"}}))
    monkeypatch.setenv("FASHIONBENCH_CACHE", str(tmp_path / "cache"))
    assert seed_probes(str(seed)) == 1 and seed_probes(None) == 0
    machine_id = fingerprint().machine_id
    assert probe.cached(machine_id, "cpu", 16) == {k: v for k, v in steady.items() if k != "cached"}
    assert probe.cached(machine_id, "cuda", 16) is None  # a disturbed probe is measured again, never trusted
