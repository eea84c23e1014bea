"""Issue 21, hostile flags and the operating system: nan and unbounded numbers, empty and too-long paths, a Ray address
where no head listens, a full disk under `report --out`, stdout on /dev/full or closed, Ctrl-C before the first case,
and gpu-check's own folder by its name. docs/reliability.md ("Issue 21: flags and the operating system") tabulates
what they prove."""

from __future__ import annotations

import errno
import importlib.util
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from suite.core.spec import RunSpec, SpecError
from suite.report import page
from tests.conftest import REPO, needs_data, run_cli
from tests.test_hostile import SKIPPED_PLAN, _mount_tmpfs, cli, one_line
from tests.test_report import STORE_A

TINY = ["run", "--framework", "torch", "--model", "dense", "--device", "cpu", "--epochs", "1", "--limit", "600",
        "--batch-size", "100", "--infer-batch-sizes", "4", "--threads", "1"]
LONG = "/tmp/" + "a" * 5000  # one part over NAME_MAX (255), the whole over PATH_MAX (4096)
TOO_LONG = f"path {LONG[:40]}… (5,005 characters) is too long (File name too long); pass a shorter path"


def error_line(code: int, err: str, expected: int = 2) -> str:
    """The one stderr line of a refused command, checked for its exit code and the shared prefix."""
    line = one_line(err)
    assert code == expected and line.startswith("fashionbench: error: "), (code, err)
    return line


# ------------------------------------------------------------------ 1-2. nan, inf and out-of-range numbers


@pytest.mark.parametrize("flag", ["--targets", "--dropout", "--lr"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_float_flags_are_refused_when_parsed(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str,
                                                        value: str):
    code, _, err = cli(capsys, *TINY, f"{flag}={value}", "--results", str(tmp_path / "r"))  # -inf is no option
    line = error_line(code, err)
    assert f"argument {flag}: {value} is not a finite number; see `fashionbench run --help`" in line
    assert not (tmp_path / "r").exists(), "nothing ran, nothing was written"


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--targets", "1.5", "--targets 1.5 is out of range; valid: 0.0..1.0"),
    ("--targets", "-0.1", "--targets -0.1 is out of range; valid: 0.0..1.0"),
    ("--dropout", "1", "--dropout 1.0 is out of range; valid: 0.0..0.95"),
    ("--lr", "0", "--lr 0.0 is out of range; valid: 0 < lr <= 100"),
    ("--lr", "abc", "argument --lr: 'abc' is not a number"),
])
def test_out_of_range_float_flags_name_the_range(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str,
                                                 expected: str):
    code, _, err = cli(capsys, *TINY, flag, value, "--results", str(tmp_path / "r"))
    assert expected in error_line(code, err) and not (tmp_path / "r").exists()


def test_a_spec_from_code_or_a_record_refuses_nan_too():
    for field, message in (("dropout", "--dropout nan is out of range; valid: 0.0..0.95"),
                           ("lr", "--lr nan is out of range; valid: 0 < lr <= 100")):
        with pytest.raises(SpecError, match=message):
            RunSpec(framework="torch", model="dense", **{field: math.nan})
    with pytest.raises(SpecError, match="--targets nan is out of range"):
        RunSpec(framework="torch", model="dense", targets=(0.8, math.nan))


def test_a_plan_file_with_nan_is_refused_by_the_same_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    plan = tmp_path / "plan.toml"
    plan.write_text("dropout = nan\n")  # TOML has nan and inf literals
    code, _, err = cli(capsys, *TINY, "--plan", str(plan), "--results", str(tmp_path / "r"))
    assert error_line(code, err) == f"fashionbench: error: plan {plan}: dropout = nan: nan is not a finite number"


# ------------------------------------------------------------------ 3. counts have an upper bound, in --help too


def test_repeats_has_an_upper_bound_checked_before_the_plan_is_expanded(capsys: pytest.CaptureFixture[str]):
    started = time.monotonic()
    code, _, err = cli(capsys, *TINY, "--repeats", "1000000000")
    assert error_line(code, err) == "fashionbench: error: --repeats 1000000000 is out of range; valid: 1..1000"
    assert time.monotonic() - started < 10, "refused at once, not after building a billion specs"


@pytest.mark.parametrize(("command", "flag", "bound"), [
    ("run", "--repeats", "1..1000"), ("run", "--epochs", "1..10000"), ("run", "--batch-size", "1..60000"),
    ("run", "--devices", "1..1024"), ("run", "--threads", "1..1024"), ("run", "--infer-batch-sizes", "1..65536"),
    ("noise", "--runs", "3..10000"), ("noise", "--draws", "1..10000"), ("goals", "--rounds", "1..100"),
    ("calibrate", "--rounds", "1..100"), ("calibrate", "--epochs", "2..10000"),
])
def test_every_count_flag_documents_its_range(command: str, flag: str, bound: str):
    from tests.test_cli import subcommand_parsers

    parser = subcommand_parsers()[command]
    action = next(a for a in parser._actions if flag in a.option_strings)
    assert bound in (action.help or ""), action.help


def test_rounds_above_the_bound_is_one_line(capsys: pytest.CaptureFixture[str]):
    code, _, err = cli(capsys, "calibrate", "--rounds", "1000000")
    assert error_line(code, err) == "fashionbench: error: --rounds 1000000 is out of range; valid: 1..100"


# ------------------------------------------------------------------ 4-5. empty and too-long paths

EMPTY = "an empty path names no folder or file; pass a path (`.` for the current folder)"
PATH_COMMANDS = {
    "run --results": [*SKIPPED_PLAN, "--results", "{p}"],
    "show --results": ["show", "--results", "{p}"],
    "report --results": ["report", "--results", "{p}", "--out", "{tmp}/report"],
    "report --out": ["report", "--results", str(STORE_A), "--out", "{p}"],
    "doctor --results": ["doctor", "--results", "{p}"],
    "data --data-dir": ["data", "--data-dir", "{p}"],
    "compare BASE": ["compare", "{p}", str(STORE_A)],
    "noise --results": ["noise", "--results", "{p}", "--epochs", "3", "--limit", "600", "--runs", "3"],
    "goals --results": ["goals", "--results", "{p}", "--only", "quick"],
    "gpu-check OUTDIR": ["gpu-check", "{p}"],
}


def _args(name: str, path: str, tmp_path: Path) -> list[str]:
    return [arg.replace("{p}", path).replace("{tmp}", str(tmp_path)) for arg in PATH_COMMANDS[name]]


@pytest.mark.parametrize("name", list(PATH_COMMANDS))
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch, name: str):
    monkeypatch.chdir(tmp_path)  # where an empty path used to write
    code, _, err = cli(capsys, *_args(name, "", tmp_path))
    flag = name.split()[1]
    assert f"argument {flag}: {EMPTY}" in error_line(code, err)
    assert list(tmp_path.iterdir()) == [], "nothing written into the current folder"


@pytest.mark.parametrize("name", list(PATH_COMMANDS))
def test_a_path_too_long_for_the_os_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str):
    code, _, err = cli(capsys, *_args(name, LONG, tmp_path))
    assert f"argument {name.split()[1]}: {TOO_LONG}" in error_line(code, err)


@needs_data
@pytest.mark.parametrize("command", [["data"], ["calibrate", "--rounds", "1"]])
def test_a_too_long_path_from_the_environment_is_one_line(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch, command: list[str]):
    # No flag's check sees $FASHIONBENCH_DATA: the OS refuses it, and the dispatcher turns ENAMETOOLONG into the line.
    monkeypatch.setenv("FASHIONBENCH_DATA", LONG)
    code, _, err = cli(capsys, *command)
    assert error_line(code, err) == f"fashionbench: error: {TOO_LONG}"


# ------------------------------------------------------------------ 6. a Ray address where no head listens

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", "abc", "127.0.0.1:abc", ":6379"])
def test_a_bad_ray_address_is_refused_when_parsed(capsys: pytest.CaptureFixture[str], address: str):
    code, _, err = cli(capsys, *TINY, "--executor", "ray", "--ray-address", address)
    assert (f"argument --ray-address: {address} is not HOST:PORT (port 1..65535) or auto; the head prints its address "
            "at `ray start --head`") in error_line(code, err)


@pytest.fixture
def silent_port() -> Iterator[tuple[int, threading.Event]]:
    """A port that accepts connections and says nothing; the event is set once something connected."""
    connected = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)

        def accept() -> None:
            with server.accept()[0]:
                connected.set()
                time.sleep(30)

        threading.Thread(target=accept, daemon=True).start()
        yield server.getsockname()[1], connected


@pytest.fixture
def ssh_like_port() -> Iterator[int]:
    """A port that greets like an ssh server (127.0.0.1:22 on most machines) and waits."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)

        def accept() -> None:
            connection = server.accept()[0]
            with connection:
                connection.sendall(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
                time.sleep(30)

        threading.Thread(target=accept, daemon=True).start()
        yield server.getsockname()[1]


def _ray_run(tmp_path: Path, address: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    out = run_cli(*TINY, "--executor", "ray", "--ray-address", address, "--results", str(tmp_path / "r"), timeout_s=90)
    return out, time.monotonic() - started


@needs_data
@needs_ray
def test_a_port_that_accepts_and_says_nothing_fails_in_seconds(tmp_path: Path, silent_port: tuple[int, threading.Event]):
    port, _ = silent_port
    out, took = _ray_run(tmp_path, f"127.0.0.1:{port}")
    line = error_line(out.returncode, out.stderr)
    assert line == (f"fashionbench: error: cannot reach the Ray cluster at 127.0.0.1:{port}: nothing answered within "
                    "5 s, so it is no Ray head; start its head with `ray start --head` or pass the right --ray-address")
    assert took < 20 and not (tmp_path / "r").exists()


@needs_data
@needs_ray
def test_a_port_that_is_no_ray_head_fails_in_seconds(tmp_path: Path, ssh_like_port: int):
    out, took = _ray_run(tmp_path, f"127.0.0.1:{ssh_like_port}")
    line = error_line(out.returncode, out.stderr)
    assert f"cannot reach the Ray cluster at 127.0.0.1:{ssh_like_port}: it answered b'SSH-2.0-O'" in line
    assert "not as a Ray head (a gRPC server) would" in line and took < 20


@needs_data
@needs_ray
def test_an_unknown_ray_host_is_one_line(tmp_path: Path):
    out, took = _ray_run(tmp_path, "no.such.host.invalid:6379")
    assert "cannot reach the Ray cluster at no.such.host.invalid:6379 (" in error_line(out.returncode, out.stderr)
    assert took < 30


# ------------------------------------------------------------------ 7. report --out on a full disk


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC once the PNGs are written, where summary.csv goes: the point a real full disk used to leave a half report."""
    def full(path: Path, cases: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(page, "write_summary_csv", full)


def test_report_on_a_full_disk_leaves_no_half_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch):
    _full_disk(monkeypatch)
    out = tmp_path / "new" / "report"
    code, stdout, err = cli(capsys, "report", "--results", str(STORE_A), "--out", str(out))
    assert error_line(code, err, expected=1) == (
        f"fashionbench: error: cannot write the report into {out}/ (No space left on device); no {out}/ was made — "
        "free space, or pass --out DIR on another disk")
    assert list(tmp_path.iterdir()) == [], "no report folder, no staged folder, no parent made for it"
    assert "report:" not in stdout


def test_report_on_a_full_disk_leaves_an_earlier_report_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "report"
    code, _, _ = cli(capsys, "report", "--results", str(STORE_A), "--out", str(out))
    assert code == 0
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _full_disk(monkeypatch)
    code, _, err = cli(capsys, "report", "--results", str(STORE_A), "--out", str(out))
    assert f"{out}/ is as it was" in error_line(code, err, expected=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["report"], "the staged folder is gone"


def test_report_into_an_existing_folder_replaces_its_files_and_keeps_the_others(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "index.html").write_text("old")
    code, stdout, _ = cli(capsys, "report", "--results", str(STORE_A), "--out", str(out))
    assert code == 0 and f"report: {out / 'index.html'}" in stdout
    assert (out / "notes.txt").read_text() == "mine" and "fashionbench report" in (out / "index.html").read_text()
    assert (out / "summary.csv").is_file() and [p.name for p in tmp_path.iterdir()] == ["report"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask()), "a folder made by it gets the umask's mode"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_report_on_a_real_full_disk(tmp_path: Path):
    full = tmp_path / "full"
    if not _mount_tmpfs(full, 64):  # 64 KiB: less than the PNGs of one report
        pytest.skip("mounting a tmpfs needs root; the injected tests cover this machine")
    try:
        (full / "old").mkdir()
        (full / "old" / "index.html").write_text("earlier report")
        fresh = run_cli("report", "--results", str(STORE_A), "--out", str(full / "report"))
        again = run_cli("report", "--results", str(STORE_A), "--out", str(full / "old"))
        left = sorted(p.name for p in full.iterdir())
        old = (full / "old" / "index.html").read_text()
    finally:
        subprocess.run(["umount", str(full)], check=True)
    assert "(No space left on device)" in error_line(fresh.returncode, fresh.stderr, expected=1)
    assert "is as it was" in error_line(again.returncode, again.stderr, expected=1)
    assert left == ["old"] and old == "earlier report"


# ------------------------------------------------------------------ 8. stdout on /dev/full, or closed


@pytest.mark.parametrize("rows", [[], ["--all", "--format", "json"]])
def test_show_into_dev_full_is_one_line(rows: list[str]):
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "suite", "show", "--results", str(STORE_A), *rows], cwd=REPO,
                             stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert error_line(out.returncode, out.stderr, expected=1) == (
        "fashionbench: error: cannot write the output (No space left on device)")


def test_show_with_stdout_closed_is_one_line():
    command = f"{shlex.quote(sys.executable)} -m suite show --results {shlex.quote(str(STORE_A))} >&-"
    out = subprocess.run(["bash", "-c", command], cwd=REPO, stderr=subprocess.PIPE, text=True, timeout=120)
    assert error_line(out.returncode, out.stderr, expected=1) == (
        "fashionbench: error: cannot write the output (stdout is closed); run it with stdout open (`> /dev/null` to "
        "discard it)")


# ------------------------------------------------------------------ 9. Ctrl-C before the first case

EARLY = "fashionbench: interrupted before the first case; nothing was run"


@needs_data
@needs_ray
def test_ctrl_c_while_connecting_is_one_line_and_nothing_is_run(tmp_path: Path, silent_port: tuple[int, threading.Event]):
    port, connected = silent_port
    driver = subprocess.Popen([sys.executable, "-m", "suite", *TINY, "--executor", "ray", "--ray-address",
                               f"127.0.0.1:{port}", "--results", str(tmp_path / "r")], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert connected.wait(60), "the run reached the cluster check (data loaded, imports done)"
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 130 and one_line(stderr) == EARLY
    assert not (tmp_path / "r").exists()


# The first module the commands' import loads inside suite.cli's try block: from its line on, Ctrl-C is the suite's.
FIRST_GUARDED_IMPORT = "suite.cli.calibrate"


@needs_data
@pytest.mark.parametrize("delay_s", [0.0, 0.1, 0.25, 0.4, 0.8, 1.5])
def test_ctrl_c_early_in_a_run_never_prints_a_traceback(tmp_path: Path, probe_cache: Path, delay_s: float):
    # While the modules load, the data set loads or the first case starts: whichever it is, one line and exit 130,
    # under `python -m` too. The clock starts once -X importtime shows the suite's code running (before that it is the
    # interpreter's own start-up, which prints Python's traceback whatever a program does).
    driver = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "suite", *TINY, "--results",
                               str(tmp_path / "r")], cwd=REPO, env=dict(os.environ, FASHIONBENCH_CACHE=str(probe_cache)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    guarded = threading.Event()

    def drain() -> None:
        for line in driver.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if line.rsplit("|", 1)[-1].strip() == FIRST_GUARDED_IMPORT:
                guarded.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert guarded.wait(120), "".join(lines)
        time.sleep(delay_s)
        driver.send_signal(signal.SIGINT)
        driver.wait(timeout=120)
    finally:  # a run that never reached the suite's code, or ignored the signal, is not left behind
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    reader.join(timeout=30)
    stderr = "".join(line for line in lines if not line.startswith("import time:"))
    assert driver.returncode == 130, stderr
    line = one_line(stderr)
    assert line == EARLY or line.startswith("interrupted: 0 finished case(s) kept"), line
    if line == EARLY:
        assert not list((tmp_path / "r").glob("*.json"))


# ------------------------------------------------------------------ 10. gpu-check names its own folder


@needs_data
@pytest.mark.parametrize("where", ["at", "below"])
def test_gpu_check_outdir_that_is_a_file_is_named_as_outdir(tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    outdir = blocker if where == "at" else blocker / "check"
    code, _, err = cli(capsys, "gpu-check", str(outdir))
    expected = "is a file" if where == "at" else f"is below the file {blocker}"
    line = error_line(code, err)
    assert line == f"fashionbench: error: OUTDIR {outdir} {expected}; pass `fashionbench gpu-check DIR` with a folder"
    assert "--results" not in line
