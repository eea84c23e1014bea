"""The results store: one JSON file per RunRecord, written atomically, read back with one clear line per bad file."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from pydantic import ValidationError

from suite.record.schema import SCHEMA_VERSION, RecordError, RunRecord


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:40] or "host"


def record_filename(record: RunRecord) -> str:
    """File name unique across machines: time, host, case and run id."""
    stamp = record.created_utc.replace(":", "").replace("-", "").replace("+0000", "Z")
    return f"{stamp}_{_safe(record.machine.hostname)}_{record.case_id}_{record.run_id[:8]}.json"


def ensure_writable(results_dir: Path) -> Path:
    """Create the results dir or raise a one-line error naming the fix."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=results_dir, prefix=".probe-", suffix=".tmp", delete=True)
        probe.close()
    except OSError as exc:
        raise RecordError(
            f"results dir {results_dir} is not writable ({exc.strerror or exc}); pass --results DIR with a writable folder"
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


def read_record(path: Path) -> RunRecord:
    """Parse and validate one results file; any problem becomes a RecordError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from None
    if not text.strip():
        raise RecordError(f"{path}: empty file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "case_id" not in data:
        raise RecordError(f"{path}: not a fashionbench record (foreign JSON)")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise RecordError(
            f"{path}: schema_version {data.get('schema_version')!r} is not {SCHEMA_VERSION}; re-run the case with this version"
        )
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordError(f"{path}: invalid record ({where}: {first['msg']})") from None


def record_files(results_dirs: list[Path]) -> list[Path]:
    """All candidate record files below the given dirs (temp files excluded), sorted."""
    files: list[Path] = []
    for directory in results_dirs:
        if directory.is_file():
            files.append(directory)
        elif directory.is_dir():
            files.extend(p for p in directory.rglob("*.json") if not p.name.startswith("."))
    return sorted(files)


def read_store(results_dirs: list[Path]) -> tuple[list[RunRecord], list[str]]:
    """Every valid record below the dirs, and one problem line per file that was skipped."""
    records: list[RunRecord] = []
    problems: list[str] = []
    for path in record_files(results_dirs):
        try:
            records.append(read_record(path))
        except RecordError as exc:
            problems.append(str(exc))
    return records, problems
