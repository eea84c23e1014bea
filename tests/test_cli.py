"""Bad input on the command line: one clear line, exit 2, nothing already recorded lost."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from suite.core import data
from tests.conftest import needs_data, run_cli


@pytest.mark.parametrize("args,needle", [
    (["run", "--framework", "jax"], "--framework 'jax' is not known; choose from: torch, keras"),
    (["run", "--model", "resnet"], "--model 'resnet' is not known"),
    (["run", "--device", "tpu"], "--device 'tpu' is not known"),
    (["run", "--epochs", "0"], "--epochs 0 is out of range; valid: 1..10000"),
    (["run", "--epochs", "-2"], "--epochs -2 is out of range"),
    (["run", "--limit", "0"], "--limit 0 is out of range"),
    (["run", "--threads", "0"], "--threads 0 is out of range"),
    (["run", "--limit", "100", "--batch-size", "128"], "--batch-size 128 is larger than --limit 100"),
    (["run", "--repeats", "0"], "--repeats 0 is out of range"),
    (["run", "--framework", "torch", "torch"], "--framework lists a value twice"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--timeout", "-1"], "argument --timeout"),
    (["run", "--on", "kindA"], "--on needs --executor ray"),
    (["run", "--executor", "ray", "--on", "kindA", "--every-kind"], "--on and --every-kind both choose the kinds"),
    (["run", "--executor", "ray", "--per-node", "0"], "--per-node 0 / --retries 1 out of range"),
])
def test_bad_flags_are_rejected_before_any_case(tmp_path: Path, args: list[str], needle: str):
    out = run_cli(*args, "--results", str(tmp_path / "r"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert not (tmp_path / "r").exists(), "nothing may start for a rejected plan"


def corrupt_data_dir(tmp_path: Path, how: str) -> Path:
    """A copy of the real data set with one file damaged."""
    target = tmp_path / "fm"
    shutil.copytree(data.SYSTEM_DATA_DIR, target)
    labels = target / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(labels.read_bytes())
    if how == "truncated-gz":
        labels.write_bytes(labels.read_bytes()[:200])
    elif how == "bit-flip":
        labels.write_bytes(gzip.compress(raw[:-1] + bytes([(raw[-1] + 1) % 10])))
    elif how == "bad-magic":
        labels.write_bytes(gzip.compress(b"\x00\x00\x09\x99" + raw[4:]))
    elif how == "missing":
        labels.unlink()
    return target


@needs_data
@pytest.mark.parametrize("how,needle", [
    ("truncated-gz", "truncated"),
    ("bit-flip", "checksum mismatch"),
    ("bad-magic", "magic"),
    ("missing", "t10k-labels-idx1-ubyte"),
])
def test_corrupt_data_set_is_one_line_and_keeps_existing_results(tmp_path: Path, how: str, needle: str):
    results = tmp_path / "results"
    results.mkdir()
    kept = results / "earlier.json"
    kept.write_text('{"kept": true}')
    out = run_cli("run", "--data-dir", str(corrupt_data_dir(tmp_path, how)), "--results", str(results))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert [p.name for p in results.iterdir()] == ["earlier.json"] and kept.read_text() == '{"kept": true}'


@needs_data
def test_results_dir_below_a_file(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = run_cli("run", "--results", str(blocker / "results"))
    assert out.returncode == 2
    assert f"is below the file {blocker}; pass --results DIR with a folder" in out.stderr


def test_show_on_an_empty_store_says_what_to_do(tmp_path: Path):
    out = run_cli("show", "--results", str(tmp_path))
    assert out.returncode == 1 and "run `fashionbench run` first" in out.stderr


def test_list_names_models_and_devices():
    out = run_cli("list")
    assert out.returncode == 0
    assert "dense" in out.stdout and "params=101,770" in out.stdout and "params=225,034" in out.stdout
    assert "cpu" in out.stdout and "cuda" in out.stdout


@needs_data
def test_data_command_verifies_checksums():
    out = run_cli("data")
    assert out.returncode == 0 and "verified" in out.stdout and "60,000 train" in out.stdout
