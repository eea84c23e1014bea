"""Bad input on the command line: one clear line, exit 2, nothing already recorded lost."""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
from pathlib import Path

import pytest

from suite.cli import COMMANDS, build_parser, command_name, parse
from suite.cli.common import COMMON_EXIT_CODES
from suite.cli.planfile import builtin_plans
from suite.cli.run import plan_from_args
from suite.core import data
from tests.conftest import REPO, needs_data, run_cli


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


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_flag_of_every_command_has_help_and_shows_its_default():
    undocumented, no_default = [], []
    for name, parser in subcommand_parsers().items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            flag = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not (action.help or "").strip():
                undocumented.append(flag)
            switch = action.nargs == 0  # --help, --strict, --quick: on when given, the default is off
            if action.option_strings and not switch and "default" not in formatter._get_help_string(action):
                no_default.append(flag)
    assert not undocumented, f"flags without help text: {undocumented}"
    assert not no_default, f"flags whose help shows no default (say what leaving it out means): {no_default}"


def test_version_prints_the_installed_version():
    out = run_cli("--version")
    assert out.returncode == 0 and re.fullmatch(r"fashionbench \S+( \(git [0-9a-f]{7}\))?\n", out.stdout), out.stdout


def test_every_command_help_ends_with_its_exit_codes_and_docs_list_them():
    docs = (REPO / "docs" / "cli.md").read_text()
    for module in COMMANDS:
        name = command_name(module)
        text = subcommand_parsers()[name].format_help()
        codes = {**COMMON_EXIT_CODES, **getattr(module, "EXIT_CODES", {})}
        assert "exit codes:" in text and all(f"  {code} " in text for code in codes), (name, text)
        section = docs.split(f"### `fashionbench {name}`", 1)
        assert len(section) == 2, f"docs/cli.md has no section for {name}"
        body = section[1].split("\n### ", 1)[0]
        assert all(f"| {code} |" in body for code in getattr(module, "EXIT_CODES", {})), (name, body)


def run_args(*argv: str) -> argparse.Namespace:
    """What `fashionbench ARGV` parses to, a --plan's flags read in."""
    return parse(build_parser(), list(argv))


def test_plan_file_sets_run_flags_and_the_command_line_wins(tmp_path: Path):
    plan = tmp_path / "plan.toml"
    plan.write_text('description = "two models"\nframework = "torch"\nmodel = ["dense", "cnn"]\nbatch-size = [64, 128]\n'
                    'epochs = 2\nlimit = 600\naugment = true\nchannels_last = true\nquick = false\n')
    args = run_args("run", "--plan", str(plan), "--epochs", "3")
    assert (args.framework, args.model, args.batch_size, args.limit) == (["torch"], ["dense", "cnn"], [64, 128], 600)
    assert args.epochs == 3, "a flag typed on the command line overrides the plan"
    assert args.augment and args.channels_last == [True] and not args.quick
    assert args.plan_line == "plan " + str(plan) + ": two models"
    specs = plan_from_args(args)
    assert len(specs) == 4 and {s.epochs for s in specs} == {3} and all(s.channels_last == (s.model == "cnn") for s in specs)


def test_builtin_example_plan_is_listed_and_loads():
    assert "example" in builtin_plans() and "example" in subcommand_parsers()["run"].format_help()
    args = run_args("run", "--plan", "example")
    assert args.plan_line.startswith("plan example: ") and args.limit == 6000 and args.repeats == 2
    assert len(plan_from_args(args)) == 8
    (first,) = plan_from_args(run_args("run", "--plan", "first"))
    assert (first.framework, first.model, first.device, first.epochs, first.limit) == ("torch", "dense", "cpu", 1, 4000)


@pytest.mark.parametrize("text,needle", [
    ("epocs = 2", "'epocs' is not a flag of `fashionbench run`; did you mean 'epochs'?"),
    ("colour = 2", "'colour' is not a flag of `fashionbench run`; keys are `fashionbench run` flags without --"),
    ('epochs = "two"', "epochs = two: invalid int value: 'two'"),
    ('init = "random"', "init = random: invalid choice: 'random'"),
    ("epochs = [1, 2]", "epochs takes one value, not a list"),
    ("quick = 1", "quick = 1 must be true or false"),
    ("model = [[1]]", "a list may hold only plain values"),
    ("plan = 'other'", "'plan' is not a flag of `fashionbench run`"),
    ("epochs = 2 =", "not valid TOML"),
    ("epochs = 0", "--epochs 0 is out of range; valid: 1..10000"),
])
def test_bad_plan_file_is_one_line_naming_the_key_and_nothing_starts(tmp_path: Path, text: str, needle: str):
    plan = tmp_path / "bad.toml"
    plan.write_text(text + "\n")
    out = run_cli("run", "--plan", str(plan), "--results", str(tmp_path / "r"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and needle in lines[0], out.stderr
    assert lines[0].startswith("fashionbench: error:") and (str(plan) in lines[0] or "out of range" in lines[0])
    assert not (tmp_path / "r").exists()


def test_unknown_plan_name_lists_the_built_in_ones(tmp_path: Path):
    out = run_cli("run", "--plan", "nope", "--results", str(tmp_path / "r"))
    assert out.returncode == 2 and "--plan 'nope': no such file and no built-in plan of that name; built-in plans: " \
        "example, first" in out.stderr
