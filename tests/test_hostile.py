"""Issue 12, a hostile user: disk full, a gate that must not pass broken cases, odd records, a disturbed probe, pipes,
encodings, FIFOs and bad flags. Each test names the fault; docs/reliability.md tabulates what they prove."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from suite.cli import EXIT_BROKEN_PIPE, main
from suite.measure import machine, probe
from suite.record.store import read_record, read_store
from suite.report import page
from suite.report.sections import Images
from tests.conftest import REPO, needs_data, run_cli
from tests.test_faults import fault_env
from tests.test_report import STORE_A, fixture_records, setup_of, with_figures, write_all

# Cases the runner records as skipped without starting a worker (fp16-mixed needs CUDA): real plans, real records,
# real writes, no training, so the store-side faults run in about a second.
SKIPPED_PLAN = ["run", "--framework", "torch", "keras", "--model", "dense", "cnn", "binary", "--device", "cpu",
                "--precision", "fp16-mixed"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of an in-process `fashionbench ARGS`."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse rejects a flag value
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    """stderr must be exactly one line, and no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------ 1. disk full


def _mount_tmpfs(where: Path, size_kib: int) -> bool:
    where.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@needs_data
@pytest.mark.parametrize("disk", ["tmpfs", "injected"])
def test_disk_full_keeps_every_record_and_stops_with_one_line(tmp_path: Path, disk: str):
    full, cache = tmp_path / "full", tmp_path / "cache"
    env: dict[str, str] = {}
    if disk == "tmpfs":
        # 16 KiB: four 4-KiB pages, room for a few records (4-5 kB each) but not for six.
        if not _mount_tmpfs(full, 16):
            pytest.skip("mounting a tmpfs needs root; the injected variant covers this machine")
    else:
        full.mkdir()
        env = fault_env({}, FASHIONBENCH_FAULT_ENOSPC_DIR=str(full), FASHIONBENCH_FAULT_ENOSPC_AFTER="4")
    try:
        out = run_cli(*SKIPPED_PLAN, "--results", str(full / "results"), cache=cache, env=env)
        kept, problems = read_store([full / "results"])
        leftovers = list((full / "results").glob(".*.tmp"))
    finally:
        if disk == "tmpfs":
            subprocess.run(["umount", str(full)], check=True)
    assert out.returncode == 1
    line = one_line(out.stderr)
    assert line.startswith(f"fashionbench: error: cannot write to {full / 'results'}/ (No space left on device); "
                           "the plan stopped; the finished case was saved to ")
    assert line.endswith("and run the same command with --resume")
    assert 1 <= len(kept) < 6 and not problems and not leftovers, "every earlier record intact, no half-written file"
    assert disk == "tmpfs" or len(kept) == 4
    (saved,) = (cache / "unsaved-results").glob("*.json")
    assert str(saved) in line
    record = read_record(saved)
    assert record.case_id not in {r.case_id for r in kept} and record.status == "skipped"
    assert f"[{len(kept) + 1}/6]" in out.stdout and f"[{len(kept) + 2}/6]" not in out.stdout, "the plan stopped there"


# ------------------------------------------------------------------ 2. the gate


def _broken(tmp_path: Path, **figures: Any) -> Path:
    """NEW = the fixture store with keras/cnn/cpu's runs changed."""
    return write_all([with_figures(r, **figures) if setup_of(r) == "keras/cnn/cpu" else r for r in fixture_records()],
                     tmp_path / "new")


@pytest.mark.parametrize("status", ["timeout", "error", "diverged"])
def test_gate_fails_when_a_case_stops_working(tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str):
    new = _broken(tmp_path, status=status, error="it broke", test_accuracy=None, train_steady_samples_per_s=None)
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(new))
    assert code == 1
    assert f"FAILED keras/cnn/cpu: ok in BASE, {status} in NEW" in out
    assert out.rstrip().endswith("1 case(s) stopped working or lost a figure")


def test_gate_fails_when_new_lost_a_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    new = _broken(tmp_path, test_accuracy=None)
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(new))
    assert code == 1 and "FAILED keras/cnn/cpu: test_accuracy measured in BASE, missing in NEW" in out


def test_gate_fails_on_a_nan_accuracy_in_new_and_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    new = write_all(fixture_records(), tmp_path / "new")
    victim = next(p for p in sorted(new.glob("*.json")) if "keras-cnn-cpu" in p.name)
    data = json.loads(victim.read_text())
    data["test_accuracy"] = math.nan  # json writes NaN, which Python (and so any hand-edit) reads back
    victim.write_text(json.dumps(data))
    for extra in ([], ["--allow-missing"]):  # a NaN is not a case dropped on purpose
        code, out, err = cli(capsys, "compare", str(STORE_A), str(new), *extra)
        assert code == 1
        assert f"FAILED NEW file skipped: {victim}: invalid record (test_accuracy is nan)" in out
        assert victim.name in err


def test_gate_threshold_line_shows_the_threshold_the_user_set(capsys: pytest.CaptureFixture[str]):
    code, out, _ = cli(capsys, "compare", str(STORE_A), str(STORE_A), "--threshold", "1000%", "--metric", "test_accuracy")
    assert code == 0 and "0 regression(s) beyond the threshold (1000%)" in out and "default" not in out


# ------------------------------------------------------------------ 3. records that pass the schema but not a reader

ODD_RECORDS: dict[str, tuple[Callable[[dict], None], str]] = {
    "framework": (lambda d: d["spec"].update(framework="jax"), "spec.framework 'jax' is not known; choose from: torch, keras"),
    "unknown-spec-field": (lambda d: d["spec"].update(colour="red"), "spec: unknown field(s) ['colour']"),
    "epochs-string": (lambda d: d["spec"].update(epochs="3"), "spec.epochs: Input should be a valid integer"),
    "nan-accuracy": (lambda d: d.update(test_accuracy=math.nan), "test_accuracy is nan"),
    "accuracy-above-1": (lambda d: d.update(test_accuracy=3.5), "test_accuracy is 3.5, outside 0..1"),
    "ragged-confusion": (lambda d: d["confusion_matrix"][0].pop(), "confusion_matrix is not 10×10 (10 rows of [9, 10] columns)"),
    "slash-machine-id": (lambda d: d["machine"].update(machine_id="../../etc/x"),
                         "machine.machine_id '../../etc/x' is not a plain id (letters, digits, . _ - only)"),
}


def _odd_store(tmp_path: Path, names: list[str]) -> Path:
    store = tmp_path / "odd"
    shutil.copytree(STORE_A, store)
    good = json.loads(sorted(STORE_A.glob("*cnn*.json"))[0].read_text())
    for name in names:
        data = json.loads(json.dumps(good))
        ODD_RECORDS[name][0](data)
        data["run_id"] = f"{name}-run"
        (store / f"odd-{name}.json").write_text(json.dumps(data))
    return store


@needs_data
@pytest.mark.parametrize("name", list(ODD_RECORDS))
def test_odd_record_is_skipped_by_name_and_listed_by_doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str):
    store, reason = _odd_store(tmp_path, [name]), ODD_RECORDS[name][1]
    code, out, err = cli(capsys, "show", "--results", str(store))
    assert code == 0 and "keras" in out
    assert one_line(err) == f"skipped {store / f'odd-{name}.json'}: invalid record ({reason})"
    code, out, _ = cli(capsys, "doctor", "--results", str(store))
    assert code == 1 and f"FAIL corrupt: {store / f'odd-{name}.json'}: invalid record ({reason})" in out
    assert f"{len(fixture_records())} readable record(s)" in out


PROVENANCE = {"measured_utc": "2026-12-01T13:56:16+00:00", "cached": False, "threads": 2, "cpu_cores_logical": 2,
              "spread_pct": 8.4, "disturbed": "other processes kept 1.41 cores busy"}
PROVENANCE_TEXT = "fresh, 2026-12-01 13:56, ±8%, 2 threads, DISTURBED (other processes kept 1.41 cores busy)"


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture runs with a disturbed probe's provenance, beside every odd record."""
    from suite.record.schema import PeakProbe

    tmp = tmp_path_factory.mktemp("hostile")
    store = _odd_store(tmp, list(ODD_RECORDS))
    for path in STORE_A.glob("*.json"):
        (store / path.name).unlink()
    write_all([with_figures(r, peak_probe=PeakProbe(**PROVENANCE), peak_flops_dtype="fp32") for r in fixture_records()],
              store)
    return store


@pytest.fixture(scope="module")
def hostile_report(hostile_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The report of that store, built with every warning an error (matplotlib's used to reach stderr)."""
    inputs = page.ReportInputs(results=[hostile_store], out=tmp_path_factory.mktemp("report"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return page.build_report(inputs)


def test_report_skips_every_odd_record_and_names_it(hostile_store: Path, hostile_report: tuple[Path, list[str]]):
    _, problems = hostile_report
    assert sorted(line.split(": invalid record")[0] for line in problems) == sorted(
        str(hostile_store / f"odd-{name}.json") for name in ODD_RECORDS)


def test_figure_file_names_from_record_fields_stay_in_the_report_folder(tmp_path: Path):
    from matplotlib.figure import Figure

    image = Images(tmp_path)
    saved = image.add("confusion-x-../../../escape/y", Figure(figsize=(1, 1)))
    assert saved is not None and "/" not in saved["file"] and (tmp_path / saved["file"]).is_file()
    assert [p.parent for p in tmp_path.rglob("*.png")] == [tmp_path]


# ------------------------------------------------------------------ 4. the GEMM probe


def test_disturbance_names_every_sign_of_contention():
    quiet = {"others_busy_cores": 0.05, "own_share_pct": 97.0}
    assert probe.disturbance({"fp32": 3.0}, quiet, "cpu") is None
    assert probe.disturbance({"fp32": 35.0}, quiet, "cpu") == "fp32 rounds 35% apart (limit 10%)"
    busy = {"others_busy_cores": 1.4, "own_share_pct": 30.0}
    assert probe.disturbance({"fp32": 3.0}, busy, "cpu") == ("other processes kept 1.40 cores busy; "
                                                            "its threads got 30% of their cores")
    # On a GPU the host threads wait on the device, so their CPU share says nothing.
    assert probe.disturbance({"fp32": 3.0}, {"others_busy_cores": 0.0, "own_share_pct": 5.0}, "cuda") is None


def _hogs(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


@needs_data
def test_probe_under_contention_is_used_but_never_cached(tmp_path: Path):
    hogs = _hogs(1)  # one busy core is contention enough: more than OTHERS_LIMIT_CORES
    try:
        out = run_cli("probe", cache=tmp_path)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert out.returncode == 0, out.stderr
    assert "NOT cached: disturbed (" in out.stdout and "other processes kept" in out.stdout
    assert "re-run `fashionbench probe --force` on an idle machine" in out.stdout
    assert not (tmp_path / "peak_flops.json").exists()


def _cached_probe(threads: int) -> None:
    entry = {"device": "cpu", "threads": threads, "size": 1024, "flops_per_s": {"fp32": 1.0e11, "bf16": None},
             "spread_pct": {"fp32": 2.5}, "probe_version": probe.PROBE_VERSION, "measured_utc": "2026-12-01T10:00:00+00:00",
             "cpu_cores_logical": os.cpu_count(), "disturbed": None, "emulated": {"bf16": "no bf16 here"}}
    probe.store(machine.fingerprint().machine_id, "cpu", threads, entry)


def test_probe_says_cached_and_how_to_measure_again(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FASHIONBENCH_CACHE", str(tmp_path))
    _cached_probe(2)
    code, out, _ = cli(capsys, "probe", "--threads", "2")
    assert code == 0 and "fp32=100.0 GFLOP/s (rounds ±2%)" in out
    assert "cached, measured 2026-12-01T10:00:00+00:00; `fashionbench probe --force` measures again" in out


@needs_data
def test_threads_above_the_cores_are_warned_about_and_recorded(tmp_path: Path):
    threads = str((os.cpu_count() or 1) * 8)
    out = run_cli(*SKIPPED_PLAN, "--threads", threads, "--results", str(tmp_path / "r"), cache=tmp_path)
    assert f"fashionbench: warning: --threads {threads} is more than the {os.cpu_count()} logical cores here" in out.stderr
    records, _ = read_store([tmp_path / "r"])
    assert records and all(r.threads == int(threads) and r.machine.cpu_cores_logical == os.cpu_count() for r in records)


def test_mfu_is_shown_with_its_probe_provenance(hostile_store: Path, hostile_report: tuple[Path, list[str]],
                                               capsys: pytest.CaptureFixture[str]):
    code, out, _ = cli(capsys, "show", "--all", "--results", str(hostile_store))
    # Said once under the table; every run's MFU cell points to it.
    marker = next(line for line in out.splitlines() if PROVENANCE_TEXT in line).split(" ", 1)[0]
    assert code == 0 and out.count(PROVENANCE_TEXT) == 1
    assert out.count(f" {marker}") == sum(r.mfu_pct is not None for r in fixture_records())
    code, out, _ = cli(capsys, "show", "--results", str(hostile_store))
    assert code == 0 and PROVENANCE_TEXT in out
    html = hostile_report[0].read_text(encoding="utf-8")
    cases_with_mfu = {setup_of(r) for r in fixture_records() if r.mfu_pct is not None}
    assert html.count(PROVENANCE_TEXT) >= len(cases_with_mfu), "next to the MFU of every case in the summary"


# ------------------------------------------------------------------ 5. pipes, paths, hostnames, encodings, FIFOs


def test_show_into_a_closed_pipe_exits_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has already gone
    run = subprocess.run([sys.executable, "-m", "suite", "show", "--all", "--results", str(STORE_A)], cwd=REPO,
                         stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write_end)
    assert run.returncode == EXIT_BROKEN_PIPE and run.stderr == ""


@pytest.mark.parametrize("where", ["at", "below"])
def test_report_out_at_or_below_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out_dir = blocker if where == "at" else blocker / "report"
    code, _, err = cli(capsys, "report", "--results", str(STORE_A), "--out", str(out_dir))
    expected = "is a file" if where == "at" else f"is below the file {blocker}"
    assert code == 2 and one_line(err) == f"fashionbench: error: --out {out_dir} {expected}; pass --out DIR with a folder"


def test_non_utf8_hostname_gets_a_fingerprint(monkeypatch: pytest.MonkeyPatch):
    # What Python hands back for the hostname bytes b"h\xffst": the undecodable byte as a surrogate escape.
    monkeypatch.setattr(socket, "gethostname", lambda: b"h\xffst".decode("utf-8", "surrogateescape"))
    machine.fingerprint.cache_clear()
    try:
        found = machine.fingerprint()
        assert found.hostname == "h\ufffdst" and len(found.machine_id) == 12
        assert json.loads(found.model_dump_json())["hostname"] == "h\ufffdst"
    finally:
        machine.fingerprint.cache_clear()


UNSHARE_HOSTNAME = """
import socket, subprocess, sys
socket.sethostname(b"h\\xffst")  # a UTS namespace of its own: the machine's hostname is untouched
plan = ["run", "--framework", "torch", "--model", "dense", "--device", "cpu", "--precision", "fp16-mixed", "--results", "r"]
for args in (plan, ["show", "--results", "r"], ["report", "--results", "r"]):
    out = subprocess.run([sys.executable, "-m", "suite", *args], capture_output=True, text=True, errors="replace")
    print(args[0], out.returncode, "Traceback" in out.stderr)
"""


@needs_data
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="a hostname of its own needs root and unshare")
def test_real_non_utf8_hostname_runs_shows_and_reports(tmp_path: Path):
    out = subprocess.run(["unshare", "--uts", sys.executable, "-c", UNSHARE_HOSTNAME], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, FASHIONBENCH_CACHE=str(tmp_path / "cache")))
    assert out.stdout.split() == ["run", "0", "False", "show", "0", "False", "report", "0", "False"], out.stderr
    (record,), _ = read_store([tmp_path / "r"])
    assert record.machine.hostname == "h\ufffdst" and "_h-st_" in next((tmp_path / "r").glob("*.json")).name
    assert [p.name[11:] for p in (tmp_path / "reports").iterdir()] == ["h-st"]


def test_ascii_terminal_gets_the_table_not_a_traceback():
    out = run_cli("show", "--results", str(STORE_A), env={"PYTHONIOENCODING": "ascii"})
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert "torch" in out.stdout and " ?" in out.stdout  # "±" became "?"


def test_fifo_named_json_is_skipped_not_waited_on(tmp_path: Path):
    store = tmp_path / "store"
    shutil.copytree(STORE_A, store)
    os.mkfifo(store / "pipe.json")
    out = run_cli("show", "--results", str(store), timeout_s=60)
    assert out.returncode == 0 and one_line(out.stderr) == f"skipped {store / 'pipe.json'}: a FIFO, not a record file"


# ------------------------------------------------------------------ 6. small ones


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_timeout_must_be_a_finite_positive_number(capsys: pytest.CaptureFixture[str], value: str):
    code, _, err = cli(capsys, "run", "--timeout", value)
    assert code == 2 and f"argument --timeout: {value} is not a finite number > 0" in one_line(err)


@needs_data
def test_limit_above_the_split_is_capped_and_said(tmp_path: Path):
    out = run_cli(*SKIPPED_PLAN, "--limit", "70000", "--results", str(tmp_path / "r"), cache=tmp_path)
    assert ("fashionbench: note: --limit 70,000 is more than the 48,000 training samples of the dense split; "
            "using all 48,000 (recorded as no limit)") in out.stderr
    assert "9,600 training samples of the binary split" in out.stderr
    records, _ = read_store([tmp_path / "r"])
    assert len(records) == 6 and all(r.spec["limit"] is None for r in records)


def test_show_on_a_missing_folder_exits_2_like_report(capsys: pytest.CaptureFixture[str]):
    for command in ("show", "report"):
        code, _, err = cli(capsys, command, "--results", "/nonexistent/results")
        assert code == 2 and one_line(err) == ("fashionbench: error: results path /nonexistent/results does not exist; "
                                               "pass --results DIR with records from `fashionbench run`")


@needs_data
def test_resume_summary_includes_the_records_already_there(tmp_path: Path):
    first = run_cli(*SKIPPED_PLAN, "--results", str(tmp_path / "r"), cache=tmp_path)
    again = run_cli(*SKIPPED_PLAN, "--results", str(tmp_path / "r"), "--resume", cache=tmp_path)
    assert first.returncode == again.returncode == 0
    assert "--resume: 6 case(s) already finished were not run again" in again.stdout
    table = again.stdout.split("not run again", 1)[1]
    # Every row is skipped, so the table says it once above the rows ("every row: … status skipped"), then one row
    # per case finished before.
    assert "status skipped" in table.splitlines()[1]
    rows = {tuple(line.split()) for line in table.splitlines() if line.split()[:1] in (["torch"], ["keras"])}
    assert rows == {(f, m) for f in ("torch", "keras") for m in ("dense", "cnn", "binary")}


def test_report_writes_no_warning(hostile_report: tuple[Path, list[str]]):
    assert hostile_report[0].is_file()  # built under warnings.simplefilter("error") by the fixture


@needs_data
def test_results_that_is_a_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    blocker = tmp_path / "results"
    blocker.write_text("x")
    code, _, err = cli(capsys, *SKIPPED_PLAN, "--results", str(blocker))
    assert code == 2 and one_line(err) == f"fashionbench: error: --results {blocker} is a file; pass --results DIR with a folder"
