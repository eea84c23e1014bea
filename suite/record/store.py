"""The results store: one JSON file per RunRecord, written atomically, read back with one clear line per bad file."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

import platformdirs
from pydantic import ValidationError

from suite.record.checks import record_problem
from suite.record.safe_load import LoadProblem, parse_json
from suite.record.schema import SCHEMA_VERSION, RecordError, RunRecord

# `run --trace` keeps each case's profiler trace here, inside the results folder; RunRecord.trace_file names it
# relative to the folder (trace files end in .trace.json.gz, so reading the store never takes one for a record).
TRACE_FOLDER = "traces"


def safe_name(text: str, limit: int = 40, empty: str = "host") -> str:
    """`text` as one file-name part: runs of anything but letters, digits, . _ - become one dash."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:limit] or empty


def cache_root() -> Path:
    """The per-user cache folder (FASHIONBENCH_CACHE overrides, for tests)."""
    return Path(os.environ.get("FASHIONBENCH_CACHE") or platformdirs.user_cache_dir("fashionbench"))


def fallback_dirs() -> list[Path]:
    """Where a finished record goes when its results folder cannot take it (disk full): the cache, then the temp dir."""
    return [cache_root() / "unsaved-results", Path(tempfile.gettempdir()) / "fashionbench-unsaved-results"]


def printable(text: str | os.PathLike[str]) -> str:
    """A path, or a line naming one, as text any page or file takes: the bytes of a name that are not UTF-8 (which
    Python keeps as surrogate escapes, b"\xff" as "\udcff") become U+FFFD."""
    line = os.fspath(text)
    try:
        raw = line.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name makes: from text, not from the file system
        raw = line.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def missing_results(paths: list[Path]) -> str | None:
    """One line for the first results path that does not exist, or None."""
    missing = next((p for p in paths if not p.exists()), None)
    if missing is None:
        return None
    return f"results path {missing} does not exist; pass --results DIR with records from `fashionbench run`"


def file_in_the_way(path: Path) -> Path | None:
    """The file at `path` or above it that stops `path` being a folder, or None."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def folder_problem(path: Path, flag: str, usage: str | None = None) -> str | None:
    """One line when `path` cannot be a folder because it is a file or lies below one; `flag` names where the path came
    from (--results, OUTDIR) and `usage` how to give another (default: `flag` DIR)."""
    blocker = file_in_the_way(path)
    if blocker is None:
        return None
    where = "is a file" if blocker == path else f"is below the file {blocker}"
    return f"{flag} {path} {where}; pass {usage or flag + ' DIR'} with a folder"


def record_filename(record: RunRecord) -> str:
    """File name unique across machines: time, host, case and run id."""
    stamp = record.created_utc.replace(":", "").replace("-", "").replace("+0000", "Z")
    return f"{stamp}_{safe_name(record.machine.hostname)}_{record.case_id}_{record.run_id[:8]}.json"


def ensure_writable(results_dir: Path, flag: str = "--results", usage: str | None = None) -> Path:
    """Create the results dir or raise a one-line error naming the fix; `flag` and `usage` as in folder_problem (a
    command whose folder is no --results names its own)."""
    if problem := folder_problem(results_dir, flag, usage):
        raise RecordError(problem)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=results_dir, prefix=".probe-", suffix=".tmp", delete=True)
        probe.close()
    except OSError as exc:
        named = "results dir" if flag == "--results" else flag
        raise RecordError(
            f"{named} {results_dir} is not writable ({exc.strerror or exc}); pass {usage or flag + ' DIR'} with a writable folder"
        ) from None
    return results_dir


def write_record(record: RunRecord, results_dir: Path) -> Path:
    """Write one record atomically (temp file in the same dir, fsync, rename): readers never see half a file."""
    results_dir.mkdir(parents=True, exist_ok=True)
    final = results_dir / record_filename(record)
    fd, tmp = tempfile.mkstemp(dir=results_dir, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(record.model_dump_json(indent=1))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def save_elsewhere(record: RunRecord) -> Path | None:
    """Write a record its results folder refused (disk full) into the first fallback folder that takes it; None: none did."""
    for directory in fallback_dirs():
        try:
            return write_record(record, directory)
        except OSError:
            continue
    return None


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A new folder beside `final` to write into; when the block ends well its files are renamed into `final` (made if
    absent); when it fails (disk full) the staged folder is removed, so `final` is as it was and never half-written."""
    created = [p for p in (final.parent, *final.parent.parents) if not p.exists()]  # deepest first
    # A plain mkdir, not mkdtemp: the folder keeps the umask's permissions once it is renamed into place.
    stage = final.parent / f".{final.name[:200]}.{os.getpid()}-{secrets.token_hex(4)}.tmp"  # within NAME_MAX
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
        yield stage
        if final.is_dir():
            for item in sorted(stage.iterdir()):
                os.replace(item, final / item.name)  # a rename writes no data: the full disk refused the writes before
            stage.rmdir()
        else:
            os.rename(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:  # the parents made for `final`, deepest first, if nothing else went in
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def refused_message(results_dir: Path, error: OSError, saved: list[Path], unsaved: int) -> str:
    """The one line for a plan stopped because its results folder refused a record: where the finished cases went."""
    line = f"cannot write to {results_dir}/ ({error.strerror or error}); the plan stopped"
    if len(saved) == 1:
        line += f"; the finished case was saved to {saved[0]}"
    elif saved:
        line += f"; {len(saved)} finished cases were saved to {saved[0].parent}/"
    if saved:
        line += f" — free space, move {'it' if len(saved) == 1 else 'them'} into {results_dir}/ and run the same command with --resume"
    if unsaved:
        line += f"; {unsaved} finished case(s) no fallback folder took follow on stdout as JSON"
    return line


def read_record(path: Path) -> RunRecord:
    """Parse and validate one results file; any problem becomes a RecordError naming the file."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise RecordError(f"{path}: unreadable ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        # Opening a FIFO would block for ever; a directory, device or socket is no record either.
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise RecordError(f"{path}: {kind}, not a record file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from None
    if not text.strip():
        raise RecordError(f"{path}: empty file")
    try:
        data = parse_json(text)
    except LoadProblem as exc:
        raise RecordError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or "case_id" not in data:
        raise RecordError(f"{path}: not a fashionbench record (foreign JSON)")
    _check_version(path, data.get("schema_version"))
    try:
        record = RunRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordError(f"{path}: invalid record ({where}: {first['msg']})") from None
    if problem := record_problem(record):
        raise RecordError(f"{path}: invalid record ({problem})")
    return record


def _check_version(path: Path, version: object) -> None:
    if version == SCHEMA_VERSION:
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise RecordError(f"{path}: schema_version {version} was written by a newer fashionbench (this one reads "
                          f"{SCHEMA_VERSION}); upgrade fashionbench to read it")
    raise RecordError(f"{path}: schema_version {version!r} is not {SCHEMA_VERSION}; re-run the case with this version")


def _identity(path: Path) -> tuple[int, int] | str:
    """What makes two paths one file: device and inode (a symlink, a hard link, `R` and `R/`), else the real path."""
    try:
        found = path.stat()
    except OSError:
        return os.path.realpath(path)
    return found.st_dev, found.st_ino


def record_files(results_dirs: list[Path]) -> list[Path]:
    """All candidate record files below the given dirs (temp files excluded), sorted; a file reached twice (the same
    folder given twice, through a symlink, or a folder inside another one given) is listed once, by its first path."""
    found: dict[tuple[int, int] | str, Path] = {}
    for directory in results_dirs:
        if directory.is_file():
            candidates = [directory]
        elif directory.is_dir():
            candidates = sorted(p for p in directory.rglob("*.json") if not p.name.startswith("."))
        else:
            candidates = []
        for path in candidates:
            found.setdefault(_identity(path), path)
    return sorted(found.values())


def read_store(results_dirs: list[Path]) -> tuple[list[RunRecord], list[str]]:
    """Every valid record below the dirs, each run once, and one problem line per file that was skipped. A copy of a
    run (the same run_id, say a folder merged twice) is the same run: counted once, quietly when it is identical."""
    records: list[RunRecord] = []
    problems: list[str] = []
    first: dict[str, tuple[Path, RunRecord]] = {}
    for path in record_files(results_dirs):
        try:
            record = read_record(path)
        except RecordError as exc:
            problems.append(str(exc))
            continue
        if record.run_id not in first:
            first[record.run_id] = (path, record)
            records.append(record)
        elif first[record.run_id][1] != record:
            kept = first[record.run_id][0]
            problems.append(f"{path}: run {record.run_id[:8]} again, with other contents than {kept}; kept {kept}")
    return records, problems
