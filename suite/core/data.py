"""The one Fashion-MNIST loader for both frameworks: IDX parsing, search order, verification, split, batch order.

Framework-free on purpose (stdlib + numpy + platformdirs only): the torch and Keras backends both
consume these numpy arrays, so the two frameworks see the same samples in the same order for a seed.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import platformdirs

__all__ = [
    "BINARY_CLASSES",
    "BINARY_CLASS_NAMES",
    "CLASS_NAMES",
    "DataError",
    "ENV_VAR",
    "FILES",
    "FashionMNIST",
    "IDX_SHA256",
    "MIRRORS",
    "Prepared",
    "SYSTEM_DATA_DIR",
    "TASKS",
    "TASK_CLASS_NAMES",
    "augment",
    "batch_order",
    "cache_dir",
    "candidate_dirs",
    "download",
    "find_data_dir",
    "is_binary",
    "load",
    "prepare",
    "read_idx",
    "split_indices",
    "train_size",
]


class DataError(Exception):
    """The data set is missing, unreadable or wrong; the one-line message names the problem and the fix."""


CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# The course's binary task: the two classes a dense net confuses most; 0 -> label 0, 6 -> label 1.
BINARY_CLASSES = (0, 6)
BINARY_CLASS_NAMES = ("T-shirt/top", "Shirt")
# Each task's class names; a two-class task is binary (one sigmoid output, 0/1 labels), whichever model learns it.
TASK_CLASS_NAMES = {"10-class": CLASS_NAMES, "tshirt-vs-shirt": BINARY_CLASS_NAMES}
TASKS = tuple(TASK_CLASS_NAMES)

# Role -> base file name (without .gz); also the order load() reads them in.
FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# SHA-256 of the *decompressed* IDX bytes: the Debian package recompressed the .gz files, so gzip
# checksums differ between sources while the content is identical.
IDX_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
SYSTEM_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "FASHIONBENCH_DATA"
MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

IMAGE_SIZE_PX = 28
NUM_CLASSES = len(CLASS_NAMES)
_MAGIC_LABELS = 0x00000801  # unsigned byte, 1 dimension
_MAGIC_IMAGES = 0x00000803  # unsigned byte, 3 dimensions
_GZIP_MAGIC = b"\x1f\x8b"
_FIX = (
    "re-install with `apt-get install --reinstall dataset-fashion-mnist`, "
    "re-download with `fashionbench data --download`, or pass --data-dir"
)
# Mixed into augment()'s seed so its draws are independent of batch_order()'s for the same (seed, epoch).
_AUGMENT_STREAM = 0xA06


# ---------------------------------------------------------------- IDX files


def _read_bytes(path: Path) -> bytes:
    """Return the IDX content of `path`, gunzipped when it is gzip data (detected by magic, not suffix)."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not an IDX file — pass a *-ubyte[.gz] file inside it") from None
    except PermissionError:
        raise DataError(f"cannot read {path}: permission denied — make it readable (chmod a+r) or pass --data-dir") from None
    except FileNotFoundError:
        raise DataError(f"{path} does not exist — {_FIX}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc} — {_FIX}") from None
    if blob[:2] != _GZIP_MAGIC:
        return blob
    try:
        return gzip.decompress(blob)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is a truncated or corrupt gzip file ({exc}) — {_FIX}") from None


def _sha256(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def _expected_magic(path: Path) -> int | None:
    """The magic number the file name promises (idx1 -> labels, idx3 -> images), if it says."""
    if "idx1" in path.name:
        return _MAGIC_LABELS
    if "idx3" in path.name:
        return _MAGIC_IMAGES
    return None


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    """Parse decompressed IDX bytes into a read-only uint8 array viewing `raw` (no copy)."""
    if len(raw) < 4:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than the 4-byte IDX magic — {_FIX}")
    magic = int.from_bytes(raw[:4], "big")
    wanted = _expected_magic(path)
    allowed = (wanted,) if wanted is not None else (_MAGIC_LABELS, _MAGIC_IMAGES)
    if magic not in allowed:
        kinds = {_MAGIC_LABELS: "an idx1 label file", _MAGIC_IMAGES: "an idx3 image file"}
        expect = " or ".join(f"0x{m:08X} for {kinds[m]}" for m in allowed)
        raise DataError(f"{path} has bad magic number 0x{magic:08X}; expected {expect} — {_FIX}")
    ndim = raw[3]
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise DataError(
            f"{path} is truncated: {len(raw)} bytes, shorter than its {header_bytes}-byte header for {ndim} dims — {_FIX}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    payload_bytes = len(raw) - header_bytes
    expected_bytes = math.prod(dims)  # Python ints: a corrupt header cannot overflow the check
    if payload_bytes < expected_bytes:
        raise DataError(
            f"{path} is truncated: {payload_bytes} data bytes, but its dims {dims} need {expected_bytes} — {_FIX}"
        )
    if payload_bytes > expected_bytes:
        raise DataError(
            f"{path} has {payload_bytes - expected_bytes} trailing bytes after the {expected_bytes} its dims {dims} "
            f"declare — {_FIX}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(dims)


def read_idx(path: Path) -> np.ndarray:
    """Read a raw or gzipped uint8 IDX file (labels 1-d, images 3-d) into a read-only numpy array."""
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)


# ---------------------------------------------------------------- where the data lives


def cache_dir() -> Path:
    """The per-user download cache: <user cache>/fashionbench/fashion-mnist."""
    return Path(platformdirs.user_cache_dir("fashionbench")) / "fashion-mnist"


def _user_dir(explicit: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    """The directory the user named (argument, else $FASHIONBENCH_DATA) and where it came from."""
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser(), "--data-dir"
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser(), f"${ENV_VAR}"
    return None


def candidate_dirs(explicit: str | Path | None = None) -> list[Path]:
    """Search order: explicit arg, else $FASHIONBENCH_DATA; then cache_dir(); then SYSTEM_DATA_DIR."""
    named = _user_dir(explicit)
    dirs = [named[0]] if named else []
    return dirs + [cache_dir(), SYSTEM_DATA_DIR]


def _find_file(directory: Path, base: str) -> Path | None:
    """`base`.gz or raw `base` inside `directory`; .gz first because that is how every source ships them."""
    for name in (f"{base}.gz", base):
        path = directory / name
        if path.is_file():
            return path
    return None


def _missing_files(directory: Path) -> list[str]:
    """Base names of the four IDX files absent (in both gz and raw form) from `directory`."""
    return [base for base in FILES.values() if _find_file(directory, base) is None]


def find_data_dir(explicit: str | Path | None = None) -> Path:
    """First candidate dir holding all 4 files; a dir the user named must hold them (no silent fall-through)."""
    named = _user_dir(explicit)
    if named is not None:
        directory, origin = named
        if not directory.exists():
            raise DataError(
                f"data dir {directory} (from {origin}) does not exist — create it with the 4 Fashion-MNIST "
                f"*-ubyte[.gz] files, run `fashionbench data --download`, or unset {origin}"
            )
        if not directory.is_dir():
            raise DataError(
                f"data dir {directory} (from {origin}) is a file, not a directory — point {origin} at the folder "
                f"holding the 4 Fashion-MNIST *-ubyte[.gz] files"
            )
        missing = _missing_files(directory)
        if missing:
            raise DataError(
                f"data dir {directory} (from {origin}) lacks {', '.join(m + '[.gz]' for m in missing)} — copy the "
                f"files there, run `fashionbench data --download`, or unset {origin}"
            )
        return directory
    searched = candidate_dirs(None)
    for directory in searched:
        if directory.is_dir() and not _missing_files(directory):
            return directory
    raise DataError(
        f"Fashion-MNIST not found in {', '.join(map(str, searched))} — install it with "
        f"`apt-get install -y dataset-fashion-mnist`, pass --data-dir DIR, or run `fashionbench data --download`"
    )


# ---------------------------------------------------------------- download


def _write_atomic(path: Path, blob: bytes) -> None:
    """Write `blob` to `path` via a temp file and rename, so readers never see a partial file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write {path}: {exc.strerror or exc} — pass a writable --data-dir") from None


def _is_verified(path: Path | None, sha256: str) -> bool:
    """True when `path` exists and its decompressed content has the expected SHA-256."""
    if path is None:
        return False
    try:
        return _sha256(_read_bytes(path)) == sha256
    except DataError:
        return False


def _fetch_verified(base: str, timeout_s: float) -> bytes:
    """The .gz bytes of `base` from the first mirror whose decompressed content matches IDX_SHA256."""
    problems: list[str] = []
    for mirror in MIRRORS:
        url = f"{mirror}{base}.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                blob = response.read()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            problems.append(f"{url}: {exc}")
            continue
        try:
            content = gzip.decompress(blob)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            problems.append(f"{url}: bad gzip ({exc})")
            continue
        if _sha256(content) != IDX_SHA256[base]:
            problems.append(f"{url}: checksum mismatch")
            continue
        return blob
    raise DataError(
        f"could not download {base}.gz ({'; '.join(problems)}) — check the network/proxy, or install it with "
        f"`apt-get install -y dataset-fashion-mnist` or copy the files and pass --data-dir"
    )


def download(target: Path | None = None, timeout_s: float = 60) -> Path:
    """Fetch the 4 files from MIRRORS into `target` (default cache_dir()), verified; skips ones already good."""
    target = Path(target) if target is not None else cache_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {target}: {exc.strerror or exc} — pass a writable --data-dir") from None
    for base, sha256 in IDX_SHA256.items():
        if _is_verified(_find_file(target, base), sha256):
            continue
        # The .gz name wins in _find_file, so a stale raw file next to it is shadowed, not read.
        _write_atomic(target / f"{base}.gz", _fetch_verified(base, timeout_s))
    return target


# ---------------------------------------------------------------- load


@dataclass(frozen=True, eq=False)
class FashionMNIST:
    """The raw data set: read-only uint8 arrays straight from the IDX files, and where they came from."""

    train_images: np.ndarray  # (60000, 28, 28) uint8
    train_labels: np.ndarray  # (60000,) uint8
    test_images: np.ndarray  # (10000, 28, 28) uint8
    test_labels: np.ndarray  # (10000,) uint8
    source_dir: Path


def _check_pair(images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path) -> None:
    """Raise DataError unless images are (n,28,28), labels (n,) and every label is a class index."""
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE_PX, IMAGE_SIZE_PX):
        raise DataError(
            f"{images_path} holds images of shape {images.shape[1:]}; expected ({IMAGE_SIZE_PX}, {IMAGE_SIZE_PX}) — {_FIX}"
        )
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels — {_FIX}")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise DataError(
            f"{labels_path} has label {int(labels.max())} outside 0..{NUM_CLASSES - 1} — the file is not Fashion-MNIST; {_FIX}"
        )


def load(data_dir: str | Path | None = None, *, verify: bool = True, allow_download: bool = False) -> FashionMNIST:
    """Find, read and check the data set; with allow_download a missing one is fetched into the named dir or cache."""
    try:
        source = find_data_dir(data_dir)
    except DataError:
        if not allow_download:
            raise
        named = _user_dir(data_dir)
        source = download(named[0] if named else None)
    arrays: dict[str, np.ndarray] = {}
    paths: dict[str, Path] = {}
    for role, base in FILES.items():
        path = _find_file(source, base)
        if path is None:  # vanished between the search and now
            raise DataError(f"{source / base}[.gz] does not exist — {_FIX}")
        raw = _read_bytes(path)
        # Parse first: "truncated" or "bad magic" says more than the checksum mismatch it also causes.
        arrays[role] = _parse_idx(raw, path)
        digest = _sha256(raw) if verify else IDX_SHA256[base]
        if digest != IDX_SHA256[base]:
            raise DataError(
                f"checksum mismatch for {path}: decompressed sha256 {digest[:12]}…, expected "
                f"{IDX_SHA256[base][:12]}… — the file is corrupt or not Fashion-MNIST; {_FIX}"
            )
        paths[role] = path
    for split in ("train", "test"):
        _check_pair(arrays[f"{split}_images"], arrays[f"{split}_labels"], paths[f"{split}_images"], paths[f"{split}_labels"])
    return FashionMNIST(source_dir=source, **arrays)


# ---------------------------------------------------------------- split, order, augmentation


def split_indices(n: int, seed: int, val_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, val) index arrays; kept in permutation order so "first N" is a random subset."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n).astype(np.int64, copy=False)
    # round() because n * 0.2 can land a hair under the integer (e.g. 2399.9999…).
    n_val = int(round(n * val_fraction))
    return order[: n - n_val], order[n - n_val :]


def batch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The epoch's sample order: a permutation of range(n) shared by both frameworks for (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64, copy=False)


def _shift_slices(shift_px: int, size_px: int) -> tuple[slice, slice]:
    """(destination, source) slices that move content by `shift_px` along an axis of `size_px`."""
    if shift_px >= 0:
        return slice(shift_px, size_px), slice(0, size_px - shift_px)
    return slice(0, size_px + shift_px), slice(-shift_px, size_px)


def augment(images: np.ndarray, seed: int, epoch: int, max_shift_px: int = 2) -> np.ndarray:
    """New float32 (N,H,W): per-sample horizontal flip (p=0.5) and integer shift with zero fill, fixed by (seed, epoch)."""
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    if max_shift_px < 0:
        raise ValueError(f"max_shift_px must be >= 0, got {max_shift_px}")
    n, height_px, width_px = images.shape
    rng = np.random.default_rng([seed, epoch, _AUGMENT_STREAM])
    # Flips are drawn first so the flip pattern does not depend on max_shift_px.
    flip = rng.random(n) < 0.5
    shift_y = rng.integers(-max_shift_px, max_shift_px + 1, size=n)
    shift_x = rng.integers(-max_shift_px, max_shift_px + 1, size=n)
    source = images.astype(np.float32, copy=True)
    source[flip] = source[flip, :, ::-1]
    out = np.zeros_like(source)
    # One vectorised copy per (dy, dx) combination: at most (2*max_shift_px+1)**2 iterations, never per sample.
    for dy in range(-max_shift_px, max_shift_px + 1):
        dst_y, src_y = _shift_slices(dy, height_px)
        for dx in range(-max_shift_px, max_shift_px + 1):
            picked = np.flatnonzero((shift_y == dy) & (shift_x == dx))
            if picked.size:
                dst_x, src_x = _shift_slices(dx, width_px)
                out[picked, dst_y, dst_x] = source[picked, src_y, src_x]
    return out


# ---------------------------------------------------------------- task preparation


@dataclass(frozen=True, eq=False)
class Prepared:
    """Model-ready arrays for one task: x_* float32 (N,28,28) in [0,1], y_* int64 class indices."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    task: str


def _scaled(images: np.ndarray) -> np.ndarray:
    """uint8 images as new float32 in [0, 1]."""
    out = images.astype(np.float32)
    out /= 255.0
    return out


def is_binary(task: str) -> bool:
    """Whether the task has two classes, learned as one sigmoid output."""
    return len(TASK_CLASS_NAMES[task]) == 2


def _relabel(labels: np.ndarray, task: str) -> np.ndarray:
    """Task labels as int64: class indices for 10-class, 0/1 (Shirt = 1) for the binary task."""
    if task == "tshirt-vs-shirt":
        return (labels == BINARY_CLASSES[1]).astype(np.int64)
    return labels.astype(np.int64)


def _task_indices(labels: np.ndarray, task: str) -> np.ndarray:
    """Indices of the images a task uses: all of them, or the two classes of the binary task."""
    if task == "10-class":
        return np.arange(len(labels), dtype=np.int64)
    if task == "tshirt-vs-shirt":
        return np.flatnonzero(np.isin(labels, BINARY_CLASSES))
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def train_size(ds: FashionMNIST, task: str) -> int:
    """How many training samples the seeded split of `task` holds: the most --limit can select."""
    return len(split_indices(len(_task_indices(ds.train_labels, task)), 0)[0])


def prepare(ds: FashionMNIST, task: str, seed: int, limit: int | None = None) -> Prepared:
    """Select, relabel, split (seeded 80/20) and scale for `task`; `limit` caps train and val, never test."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got {limit}")
    pool, test = _task_indices(ds.train_labels, task), _task_indices(ds.test_labels, task)
    train_pos, val_pos = split_indices(len(pool), seed)
    train, val = pool[train_pos], pool[val_pos]
    if limit is not None:
        train, val = train[:limit], val[:limit]
    return Prepared(
        x_train=_scaled(ds.train_images[train]),
        y_train=_relabel(ds.train_labels[train], task),
        x_val=_scaled(ds.train_images[val]),
        y_val=_relabel(ds.train_labels[val], task),
        x_test=_scaled(ds.test_images[test]),
        y_test=_relabel(ds.test_labels[test], task),
        class_names=TASK_CLASS_NAMES[task],
        task=task,
    )
