"""Tests for suite.core.data: the IDX parser and its errors, search order, verification, download, split, order, augment."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from suite.core import data
from suite.core.data import DataError

REAL_FILES = [data.SYSTEM_DATA_DIR / f"{base}.gz" for base in data.FILES.values()]
needs_real_data = pytest.mark.skipif(
    not all(p.is_file() for p in REAL_FILES),
    reason=f"real Fashion-MNIST not installed in {data.SYSTEM_DATA_DIR} (apt-get install -y dataset-fashion-mnist)",
)


# ---------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Encode a uint8 array as IDX bytes; `magic` overrides the header's magic number."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_file(path: Path, content: bytes, gz: bool) -> Path:
    """Write IDX `content` to `path` (+ .gz and compressed when `gz`)."""
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


def synthetic_arrays(n_train: int = 30, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Small random arrays in the four Fashion-MNIST roles."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }


def make_data_dir(directory: Path, gz: bool = True, **overrides: np.ndarray) -> dict[str, np.ndarray]:
    """Write a complete synthetic data dir; returns the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = synthetic_arrays() | overrides
    for role, base in data.FILES.items():
        write_file(directory / base, idx_bytes(arrays[role]), gz)
    return arrays


def data_error_text(excinfo: pytest.ExceptionInfo[DataError], *fragments: str) -> str:
    """Assert the DataError message is one line containing every fragment; return it."""
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any accidental real download fails the test instead of touching the network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tests must not open URLs")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point env, cache and system dirs at empty tmp paths so only what a test writes is found."""
    paths = {"cache": tmp_path / "cache", "system": tmp_path / "system"}
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "cache_dir", lambda: paths["cache"])
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", paths["system"])
    return paths


@pytest.fixture(scope="module")
def real() -> data.FashionMNIST:
    """The installed data set, loaded once with verification."""
    if not all(p.is_file() for p in REAL_FILES):
        pytest.skip(f"real Fashion-MNIST not installed in {data.SYSTEM_DATA_DIR}")
    return data.load(data.SYSTEM_DATA_DIR, verify=True)


@pytest.fixture(scope="module")
def real_10(real: data.FashionMNIST) -> data.Prepared:
    """The 10-class task prepared with seed 0."""
    return data.prepare(real, "10-class", seed=0)


@pytest.fixture(scope="module")
def real_binary(real: data.FashionMNIST) -> data.Prepared:
    """The T-shirt/top vs Shirt task prepared with seed 0."""
    return data.prepare(real, "tshirt-vs-shirt", seed=0)


# ---------------------------------------------------------------- real data


@needs_real_data
def test_real_shapes_and_dtypes(real: data.FashionMNIST) -> None:
    assert real.train_images.shape == (60000, 28, 28) and real.train_images.dtype == np.uint8
    assert real.train_labels.shape == (60000,) and real.train_labels.dtype == np.uint8
    assert real.test_images.shape == (10000, 28, 28) and real.test_images.dtype == np.uint8
    assert real.test_labels.shape == (10000,) and real.test_labels.dtype == np.uint8
    assert real.source_dir == data.SYSTEM_DATA_DIR


@needs_real_data
def test_real_class_balance(real: data.FashionMNIST) -> None:
    assert np.bincount(real.train_labels, minlength=10).tolist() == [6000] * 10
    assert np.bincount(real.test_labels, minlength=10).tolist() == [1000] * 10


# An independent copy of DESIGN.md's table: a typo in suite.core.data must not pass silently.
DESIGN_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def test_sha_table_matches_design() -> None:
    assert data.IDX_SHA256 == DESIGN_SHA256
    assert set(data.FILES.values()) == set(DESIGN_SHA256)


@needs_real_data
def test_real_verification_passes(real: data.FashionMNIST) -> None:
    # `real` was loaded with verify=True, so every decompressed file matched its SHA-256; re-check one directly.
    labels = data._read_bytes(data.SYSTEM_DATA_DIR / "t10k-labels-idx1-ubyte.gz")
    assert hashlib.sha256(labels).hexdigest() == DESIGN_SHA256["t10k-labels-idx1-ubyte"]
    np.testing.assert_array_equal(real.test_labels, data.read_idx(data.SYSTEM_DATA_DIR / "t10k-labels-idx1-ubyte.gz"))


@needs_real_data
def test_real_prepare_10_class(real_10: data.Prepared) -> None:
    p = real_10
    assert (len(p.x_train), len(p.x_val), len(p.x_test)) == (48000, 12000, 10000)
    assert (len(p.y_train), len(p.y_val), len(p.y_test)) == (48000, 12000, 10000)
    for x in (p.x_train, p.x_val, p.x_test):
        assert x.dtype == np.float32 and x.shape[1:] == (28, 28)
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (p.y_train, p.y_val, p.y_test):
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    assert p.class_names == data.CLASS_NAMES and p.task == "10-class"
    assert np.bincount(np.concatenate([p.y_train, p.y_val])).tolist() == [6000] * 10


@needs_real_data
def test_real_prepare_matches_split_indices(real: data.FashionMNIST, real_10: data.Prepared) -> None:
    train, val = data.split_indices(60000, seed=0)
    np.testing.assert_array_equal(real_10.y_train, real.train_labels[train])
    np.testing.assert_array_equal(real_10.x_val[:50], real.train_images[val[:50]] / np.float32(255))
    np.testing.assert_array_equal(real_10.y_test, real.test_labels)


@needs_real_data
def test_real_prepare_binary(real: data.FashionMNIST, real_binary: data.Prepared) -> None:
    p = real_binary
    assert (len(p.x_train), len(p.x_val), len(p.x_test)) == (9600, 2400, 2000)
    for y in (p.y_train, p.y_val, p.y_test):
        assert y.dtype == np.int64 and set(np.unique(y)) == {0, 1}
    assert np.bincount(np.concatenate([p.y_train, p.y_val])).tolist() == [6000, 6000]
    assert np.bincount(p.y_test).tolist() == [1000, 1000]
    assert p.class_names == ("T-shirt/top", "Shirt") and p.task == "tshirt-vs-shirt"
    assert 0.0 <= p.x_train.min() and p.x_train.max() <= 1.0
    # Shirt (class 6) must map to 1: the test images labelled 1 are exactly the class-6 test images.
    shirts = real.test_images[real.test_labels == 6] / np.float32(255)
    np.testing.assert_array_equal(p.x_test[p.y_test == 1], shirts)


@needs_real_data
def test_real_prepare_limit(real: data.FashionMNIST, real_10: data.Prepared) -> None:
    small = data.prepare(real, "10-class", seed=0, limit=100)
    assert (len(small.x_train), len(small.x_val), len(small.x_test)) == (100, 100, 10000)
    np.testing.assert_array_equal(small.x_train, real_10.x_train[:100])
    np.testing.assert_array_equal(small.y_val, real_10.y_val[:100])
    # The limited train split is a seeded random subset, so it covers every class.
    assert len(np.unique(small.y_train)) == 10
    big = data.prepare(real, "tshirt-vs-shirt", seed=0, limit=5000)
    assert (len(big.x_train), len(big.x_val), len(big.x_test)) == (5000, 2400, 2000)


@needs_real_data
def test_real_augment_changes_images(real_10: data.Prepared) -> None:
    x = real_10.x_train[:512]
    out = data.augment(x, seed=0, epoch=0)
    changed = np.any(out != x, axis=(1, 2))
    assert out.shape == x.shape and out.dtype == np.float32
    assert changed.mean() > 0.9  # only ~1/50 draw no flip and no shift
    # Shifting with zero fill can only drop ink, never add it.
    assert np.all(out.sum(axis=(1, 2)) <= x.sum(axis=(1, 2)) + 1e-3)


@pytest.mark.parametrize("task", ["unknown", "10class"])
def test_prepare_unknown_task_raises(task: str) -> None:
    ds = data.FashionMNIST(**synthetic_arrays(), source_dir=Path("."))
    with pytest.raises(ValueError, match="unknown task"):
        data.prepare(ds, task, seed=0)


def test_prepare_synthetic_limit_and_bad_limit() -> None:
    ds = data.FashionMNIST(**synthetic_arrays(n_train=50, n_test=10), source_dir=Path("."))
    p = data.prepare(ds, "10-class", seed=1, limit=7)
    assert (len(p.x_train), len(p.x_val), len(p.x_test)) == (7, 7, 10)
    p = data.prepare(ds, "10-class", seed=1, limit=45)
    assert (len(p.x_train), len(p.x_val), len(p.x_test)) == (40, 10, 10)
    with pytest.raises(ValueError, match="limit"):
        data.prepare(ds, "10-class", seed=1, limit=0)


# ---------------------------------------------------------------- split and batch order


def test_split_sizes_disjoint_and_covering() -> None:
    train, val = data.split_indices(60000, seed=0)
    assert (len(train), len(val)) == (48000, 12000)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert np.intersect1d(train, val).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(60000))


def test_split_keeps_permutation_order() -> None:
    train, _ = data.split_indices(60000, seed=0)
    assert not np.all(np.diff(train) > 0)


def test_split_binary_pool_sizes() -> None:
    train, val = data.split_indices(12000, seed=3)
    assert (len(train), len(val)) == (9600, 2400)


def test_split_same_seed_same_split_different_seed_different() -> None:
    a_train, a_val = data.split_indices(60000, seed=7)
    b_train, b_val = data.split_indices(60000, seed=7)
    c_train, _ = data.split_indices(60000, seed=8)
    np.testing.assert_array_equal(a_train, b_train)
    np.testing.assert_array_equal(a_val, b_val)
    assert not np.array_equal(a_train, c_train)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        data.split_indices(100, seed=0, val_fraction=fraction)


def test_batch_order_is_deterministic_permutation() -> None:
    order = data.batch_order(1000, seed=5, epoch=0)
    np.testing.assert_array_equal(np.sort(order), np.arange(1000))
    np.testing.assert_array_equal(order, data.batch_order(1000, seed=5, epoch=0))
    assert not np.array_equal(order, data.batch_order(1000, seed=5, epoch=1))
    assert not np.array_equal(order, data.batch_order(1000, seed=6, epoch=0))
    assert not np.array_equal(order, np.arange(1000))


# ---------------------------------------------------------------- augment


def test_augment_deterministic_and_returns_new_array() -> None:
    x = np.random.default_rng(0).random((64, 28, 28), dtype=np.float32)
    before = x.copy()
    a = data.augment(x, seed=1, epoch=2)
    b = data.augment(x, seed=1, epoch=2)
    c = data.augment(x, seed=1, epoch=3)
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a is not x and not np.shares_memory(a, x)
    np.testing.assert_array_equal(x, before)  # input untouched


def test_augment_flip_only_on_tiny_array() -> None:
    x = np.arange(40 * 3 * 4, dtype=np.float32).reshape(40, 3, 4)
    out = data.augment(x, seed=0, epoch=0, max_shift_px=0)
    flipped = np.all(out == x[:, :, ::-1], axis=(1, 2))
    kept = np.all(out == x, axis=(1, 2))
    assert np.all(flipped ^ kept)  # every sample is exactly one of the two (no image is symmetric)
    assert 0 < flipped.sum() < 40  # p=0.5 over 40 samples: both outcomes occur


def test_augment_shifts_cover_range_with_zero_fill() -> None:
    # One lit pixel in the centre of an odd-sized image: flips leave it in place, so its position is the shift.
    x = np.zeros((2000, 9, 9), dtype=np.uint8)
    x[:, 4, 4] = 200
    out = data.augment(x, seed=0, epoch=0, max_shift_px=2)
    assert out.dtype == np.float32
    assert np.all(np.count_nonzero(out, axis=(1, 2)) == 1) and np.all(out.max(axis=(1, 2)) == 200)
    ys, xs = np.nonzero(out)[1:]
    offsets = set(zip((ys - 4).tolist(), (xs - 4).tolist()))
    assert offsets == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}


def test_augment_zero_fills_the_uncovered_border() -> None:
    x = np.ones((500, 28, 28), dtype=np.float32)
    out = data.augment(x, seed=4, epoch=0)
    lit = out.sum(axis=(1, 2))
    # An all-ones image shifted by (dy, dx) keeps (28-|dy|)*(28-|dx|) ones; the rest is zero.
    possible = {(28 - abs(dy)) * (28 - abs(dx)) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert set(lit.astype(int).tolist()) <= possible
    assert np.any(lit < 28 * 28)


# ---------------------------------------------------------------- IDX parser


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 6, 1], dtype=np.uint8)
    ipath = write_file(tmp_path / "x-images-idx3-ubyte", idx_bytes(images), gz)
    lpath = write_file(tmp_path / "x-labels-idx1-ubyte", idx_bytes(labels), gz)
    got_images, got_labels = data.read_idx(ipath), data.read_idx(lpath)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t-images-idx3-ubyte", idx_bytes(np.zeros((2, 28, 28)), magic=0x12345678), gz=False)
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, str(path), "bad magic number 0x12345678", "0x00000803", "apt-get install --reinstall")


def test_read_idx_labels_in_image_file_is_bad_magic(tmp_path: Path) -> None:
    # The idx3 name promises images; a 1-d label header there is the wrong number of dims.
    path = write_file(tmp_path / "t-images-idx3-ubyte", idx_bytes(np.zeros(4)), gz=True)
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, "0x00000801", "expected 0x00000803")


def test_read_idx_header_shorter_than_dims(tmp_path: Path) -> None:
    path = tmp_path / "t-images-idx3-ubyte"
    path.write_bytes((0x803).to_bytes(4, "big") + (2).to_bytes(4, "big"))  # 3 dims promised, 1 given
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, "truncated", "header")


def test_load_rejects_wrong_image_dims(isolated: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "d"
    make_data_dir(directory, train_images=np.zeros((30, 27, 27), dtype=np.uint8))
    with pytest.raises(DataError) as excinfo:
        data.load(directory, verify=False)
    data_error_text(excinfo, "train-images-idx3-ubyte", "(27, 27)", "(28, 28)")


def test_read_idx_truncated_raw(tmp_path: Path) -> None:
    content = idx_bytes(np.zeros((3, 28, 28)))
    path = write_file(tmp_path / "t-images-idx3-ubyte", content[:-10], gz=False)
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, str(path), "truncated", "2342", "2352")


def test_read_idx_absurd_dims_do_not_overflow(tmp_path: Path) -> None:
    path = tmp_path / "t-images-idx3-ubyte"
    path.write_bytes((0x803).to_bytes(4, "big") + (0xFFFFFFFF).to_bytes(4, "big") * 3 + b"\0" * 16)
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, "truncated", "(4294967295, 4294967295, 4294967295)")


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t-labels-idx1-ubyte", idx_bytes(np.zeros(3)) + b"xx", gz=False)
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, "2 trailing bytes")


def test_read_idx_too_short_for_magic(tmp_path: Path) -> None:
    path = tmp_path / "t-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, "truncated")


def test_read_idx_truncated_gz(tmp_path: Path) -> None:
    blob = gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 256, (20, 28, 28))))
    path = tmp_path / "t-images-idx3-ubyte.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, str(path), "truncated or corrupt gzip")


def test_read_idx_corrupt_gz(tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(idx_bytes(np.arange(200) % 10)))
    blob[20:30] = b"\xff" * 10
    path = tmp_path / "t-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, "corrupt gzip")


def test_read_idx_directory(tmp_path: Path) -> None:
    directory = tmp_path / "t-images-idx3-ubyte.gz"
    directory.mkdir()
    with pytest.raises(DataError) as excinfo:
        data.read_idx(directory)
    data_error_text(excinfo, str(directory), "is a directory")


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        data.read_idx(tmp_path / "nope-idx1-ubyte")
    data_error_text(excinfo, "does not exist")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores chmod 000; see the simulated test")
def test_read_idx_unreadable_file_chmod(tmp_path: Path) -> None:
    path = write_file(tmp_path / "t-labels-idx1-ubyte", idx_bytes(np.zeros(3)), gz=False)
    path.chmod(0)
    try:
        with pytest.raises(DataError) as excinfo:
            data.read_idx(path)
        data_error_text(excinfo, str(path), "permission denied")
    finally:
        path.chmod(0o644)


def test_read_idx_unreadable_file_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_file(tmp_path / "t-labels-idx1-ubyte", idx_bytes(np.zeros(3)), gz=False)

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DataError) as excinfo:
        data.read_idx(path)
    data_error_text(excinfo, str(path), "permission denied", "chmod")


# ---------------------------------------------------------------- load on synthetic dirs


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_load_synthetic_dir_without_verify(isolated: dict[str, Path], tmp_path: Path, gz: bool) -> None:
    directory = tmp_path / "d"
    arrays = make_data_dir(directory, gz=gz)
    ds = data.load(directory, verify=False)
    assert ds.source_dir == directory
    for role, expected in arrays.items():
        np.testing.assert_array_equal(getattr(ds, role), expected)


def test_load_checksum_mismatch(isolated: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "d"
    make_data_dir(directory)
    with pytest.raises(DataError) as excinfo:
        data.load(directory, verify=True)
    data_error_text(excinfo, "checksum mismatch", "train-images-idx3-ubyte", "corrupt or not Fashion-MNIST")


def test_load_labels_out_of_range(isolated: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "d"
    bad = (np.arange(10) % 10).astype(np.uint8)
    bad[3] = 12
    make_data_dir(directory, test_labels=bad)
    with pytest.raises(DataError) as excinfo:
        data.load(directory, verify=False)
    data_error_text(excinfo, "t10k-labels-idx1-ubyte", "label 12", "0..9")


def test_load_count_mismatch(isolated: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "d"
    make_data_dir(directory, train_labels=np.zeros(29, dtype=np.uint8))
    with pytest.raises(DataError) as excinfo:
        data.load(directory, verify=False)
    data_error_text(excinfo, "30 images", "29 labels")


# ---------------------------------------------------------------- search order


def test_cache_dir_under_platformdirs_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = data.cache_dir()
    assert path.parts[-2:] == ("fashionbench", "fashion-mnist")
    if sys.platform.startswith("linux"):
        assert path == tmp_path / "xdg" / "fashionbench" / "fashion-mnist"


def test_candidate_dirs_order(isolated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert data.candidate_dirs() == [isolated["cache"], isolated["system"]]
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    assert data.candidate_dirs() == [tmp_path / "env", isolated["cache"], isolated["system"]]
    # An explicit dir replaces the env var rather than adding to it.
    assert data.candidate_dirs(tmp_path / "arg") == [tmp_path / "arg", isolated["cache"], isolated["system"]]


def test_find_data_dir_prefers_cache_then_system(isolated: dict[str, Path]) -> None:
    make_data_dir(isolated["system"])
    assert data.find_data_dir() == isolated["system"]
    make_data_dir(isolated["cache"], gz=False)
    assert data.find_data_dir() == isolated["cache"]


def test_env_var_is_honoured(isolated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_data_dir(isolated["system"])
    env_dir = tmp_path / "env"
    arrays = make_data_dir(env_dir, train_labels=np.full(30, 4, dtype=np.uint8))
    monkeypatch.setenv(data.ENV_VAR, str(env_dir))
    assert data.find_data_dir() == env_dir
    ds = data.load(verify=False)
    assert ds.source_dir == env_dir
    np.testing.assert_array_equal(ds.train_labels, arrays["train_labels"])


def test_explicit_dir_overrides_env(isolated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_data_dir(tmp_path / "arg")
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "missing-env"))
    assert data.find_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def test_explicit_dir_that_is_a_file(isolated: dict[str, Path], tmp_path: Path) -> None:
    make_data_dir(isolated["system"])  # must not be used instead
    path = tmp_path / "a-file"
    path.write_text("x")
    with pytest.raises(DataError) as excinfo:
        data.find_data_dir(path)
    data_error_text(excinfo, str(path), "is a file", "--data-dir")


def test_explicit_dir_missing_does_not_fall_through(isolated: dict[str, Path], tmp_path: Path) -> None:
    make_data_dir(isolated["system"])
    with pytest.raises(DataError) as excinfo:
        data.load(tmp_path / "nowhere", verify=False)
    data_error_text(excinfo, str(tmp_path / "nowhere"), "does not exist")


def test_env_dir_incomplete_names_missing_files(
    isolated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_data_dir(isolated["system"])
    env_dir = tmp_path / "env"
    make_data_dir(env_dir)
    (env_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv(data.ENV_VAR, str(env_dir))
    with pytest.raises(DataError) as excinfo:
        data.find_data_dir()
    data_error_text(excinfo, str(env_dir), "$FASHIONBENCH_DATA", "t10k-labels-idx1-ubyte[.gz]")


def test_no_data_anywhere_suggests_apt_get(isolated: dict[str, Path]) -> None:
    isolated["cache"].mkdir()  # present but empty
    with pytest.raises(DataError) as excinfo:
        data.load()
    data_error_text(
        excinfo,
        "apt-get install -y dataset-fashion-mnist",
        "--data-dir",
        "fashionbench data --download",
        str(isolated["system"]),
    )


# ---------------------------------------------------------------- download (urlopen monkeypatched)


@pytest.fixture
def fake_mirrors(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Serve synthetic .gz files from the second mirror (the first is down); IDX_SHA256 matches them."""
    arrays = synthetic_arrays(seed=9)
    served = {}
    for role, base in data.FILES.items():
        content = idx_bytes(arrays[role])
        monkeypatch.setitem(data.IDX_SHA256, base, hashlib.sha256(content).hexdigest())
        served[data.MIRRORS[1] + base + ".gz"] = gzip.compress(content)
    calls: list[str] = []
    timeouts: list[float | None] = []

    def urlopen(url: str, timeout: float | None = None) -> io.BytesIO:
        calls.append(url)
        timeouts.append(timeout)
        if url not in served:
            raise urllib.error.URLError("mirror down")
        return io.BytesIO(served[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return {"arrays": arrays, "calls": calls, "served": served, "timeouts": timeouts}


def test_download_falls_back_verifies_and_skips_good_files(tmp_path: Path, fake_mirrors: dict[str, object]) -> None:
    target = data.download(tmp_path / "dl", timeout_s=5)
    assert target == tmp_path / "dl"
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{b}.gz" for b in data.FILES.values())
    for role, base in data.FILES.items():
        np.testing.assert_array_equal(data.read_idx(target / f"{base}.gz"), fake_mirrors["arrays"][role])
    assert len(fake_mirrors["calls"]) == 8  # each file: first mirror fails, second serves
    assert set(fake_mirrors["timeouts"]) == {5}
    data.download(target, timeout_s=5)
    assert len(fake_mirrors["calls"]) == 8  # already verified: nothing fetched again
    assert data.load(target, verify=True).source_dir == target


def test_download_rejects_wrong_content(tmp_path: Path, fake_mirrors: dict[str, object]) -> None:
    url = data.MIRRORS[1] + "train-labels-idx1-ubyte.gz"
    fake_mirrors["served"][url] = gzip.compress(idx_bytes(np.zeros(30)))  # type: ignore[index]
    with pytest.raises(DataError) as excinfo:
        data.download(tmp_path / "dl", timeout_s=5)
    data_error_text(excinfo, "could not download train-labels-idx1-ubyte.gz", "checksum mismatch", "mirror down")
    assert not (tmp_path / "dl" / "train-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "dl").glob("*.tmp"))


def test_load_downloads_only_when_allowed(isolated: dict[str, Path], fake_mirrors: dict[str, object]) -> None:
    with pytest.raises(DataError) as excinfo:
        data.load(verify=True)
    data_error_text(excinfo, "apt-get install -y dataset-fashion-mnist")
    assert fake_mirrors["calls"] == []  # never downloads behind the user's back
    ds = data.load(verify=True, allow_download=True)
    assert ds.source_dir == isolated["cache"]
    assert len(fake_mirrors["calls"]) == 8
    np.testing.assert_array_equal(ds.test_labels, fake_mirrors["arrays"]["test_labels"])


# ---------------------------------------------------------------- boundary


def test_import_pulls_in_no_ml_framework() -> None:
    code = (
        "import sys, suite.core.data; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
