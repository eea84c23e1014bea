"""Speed settings as spec axes (--precision, --compile, --jit-compile, --channels-last, --steps-per-execution,
--keras-backend): spec rules, CLI errors, tiny real runs on CPU, and the CUDA-only logic checked with fakes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from suite.backends import DeviceUnavailable, Unsupported, open_backend, skip_message
from suite.core.frameworks import KERAS_BACKENDS
from suite.core.spec import PRECISIONS, RunSpec, SpecError, grid
from suite.measure import probe
from suite.record.schema import RunRecord
from suite.record.store import read_store
from tests.conftest import REPO, needs_data, run_cli
from tests.test_cuda_paths import FakeTfConfig

# Fields added after the first stored records (speed settings, then data-parallel scaling).
NEW_FIELDS = ("precision", "compile", "step", "jit_compile", "channels_last", "steps_per_execution", "devices", "lr_scaling")
TINY = ("--device", "cpu", "--epochs", "2", "--limit", "600", "--batch-size", "64", "--infer-batch-sizes", "1", "32")


# ---------------------------------------------------------------- spec

@pytest.mark.parametrize("kwargs,needle", [
    ({"framework": "keras", "model": "dense", "compile": "default"},
     "--compile default applies to torch (torch.compile); for keras use --jit-compile, not keras/dense"),
    ({"framework": "keras", "model": "cnn", "compile": "max-autotune"}, "--compile max-autotune applies to torch"),
    ({"framework": "torch", "model": "dense", "channels_last": True},
     "--channels-last applies to the torch cnn only, not torch/dense"),
    ({"framework": "torch", "model": "binary", "channels_last": True}, "--channels-last applies to the torch cnn only"),
    ({"framework": "keras", "model": "cnn", "channels_last": True}, "--channels-last applies to the torch cnn only, not keras/cnn"),
    ({"framework": "torch", "model": "cnn", "jit_compile": "on"}, "--jit-compile on applies to keras; for torch use --compile"),
    ({"framework": "torch", "model": "dense", "jit_compile": "off"}, "--jit-compile off applies to keras"),
    ({"framework": "torch", "model": "dense", "steps_per_execution": 4}, "--steps-per-execution 4 applies to keras only, not torch/dense"),
    ({"framework": "torch", "model": "dense", "keras_backend": "jax"}, "--keras-backend jax applies to --framework keras only"),
    ({"framework": "torch", "model": "dense", "precision": "fp8"}, "--precision 'fp8' is not known; choose from: "
                                                                      "fp32, bf16, fp16-mixed, tf32"),
    ({"framework": "torch", "model": "dense", "compile": "fast"}, "--compile 'fast' is not known; choose from: "
                                                                     "none, default, reduce-overhead, max-autotune"),
    ({"framework": "keras", "model": "dense", "jit_compile": "yes"}, "--jit-compile 'yes' is not known; choose from: auto, on, off"),
    ({"framework": "keras", "model": "dense", "keras_backend": "mxnet"}, "--keras-backend 'mxnet' is not known"),
    ({"framework": "keras", "model": "dense", "steps_per_execution": 0}, "--steps-per-execution 0 is out of range; valid: 1..100000"),
])
def test_misapplied_or_unknown_setting_is_one_line_naming_the_flag(kwargs, needle):
    with pytest.raises(SpecError) as err:
        RunSpec(**kwargs)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs", [
    {"framework": "torch", "model": "dense", "compile": "default", "precision": "bf16"},
    {"framework": "torch", "model": "cnn", "compile": "max-autotune", "channels_last": True},
    {"framework": "keras", "model": "binary", "jit_compile": "off", "steps_per_execution": 8, "keras_backend": "torch"},
    {"framework": "keras", "model": "cnn", "keras_backend": "jax", "precision": "fp16-mixed", "device": "cuda"},
])
def test_fitting_settings_are_accepted_and_round_trip(kwargs):
    spec = RunSpec(**kwargs)
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert spec.id != RunSpec(framework=spec.framework, model=spec.model, device=spec.device).id


def _count(specs: list[RunSpec], **match) -> int:
    return sum(all(getattr(s, k) == v for k, v in match.items()) for s in specs)


def test_grid_applies_compile_to_torch_only():
    specs = grid({"framework": ["torch", "keras"], "model": ["dense"], "compile": ["none", "default"]})
    assert len(specs) == 3
    assert sorted((s.framework, s.compile) for s in specs) == [("keras", "none"), ("torch", "default"), ("torch", "none")]
    assert len({s.id for s in specs}) == 3


def test_grid_applies_channels_last_to_the_torch_cnn_only():
    specs = grid({"framework": ["torch", "keras"], "model": ["dense", "cnn"], "channels_last": [False, True]})
    assert len(specs) == 5
    assert [(s.framework, s.model) for s in specs if s.channels_last] == [("torch", "cnn")]
    assert _count(specs, framework="torch", model="cnn") == 2


def test_grid_applies_keras_settings_to_keras_only():
    specs = grid({"framework": ["torch", "keras"], "model": ["dense"], "keras_backend": ["jax", "torch"],
                  "jit_compile": ["on"], "steps_per_execution": [1, 4]})
    torch_specs = [s for s in specs if s.framework == "torch"]
    assert len(torch_specs) == 1
    assert (torch_specs[0].keras_backend, torch_specs[0].jit_compile, torch_specs[0].steps_per_execution) == ("tensorflow", "auto", 1)
    keras_specs = [s for s in specs if s.framework == "keras"]
    assert sorted((s.keras_backend, s.steps_per_execution) for s in keras_specs) == [("jax", 1), ("jax", 4), ("torch", 1), ("torch", 4)]
    assert all(s.jit_compile == "on" for s in keras_specs)


def test_precision_is_an_axis_for_both_frameworks():
    specs = grid({"framework": ["torch", "keras"], "model": ["dense"], "precision": ["fp32", "bf16"]})
    assert sorted((s.framework, s.precision) for s in specs) == [
        ("keras", "bf16"), ("keras", "fp32"), ("torch", "bf16"), ("torch", "fp32")]


@pytest.mark.parametrize("axes,needle", [
    ({"framework": ["keras"], "model": ["dense"], "compile": ["fast"]}, "--compile 'fast' is not known"),
    ({"framework": ["torch"], "model": ["dense"], "steps_per_execution": [0]}, "--steps-per-execution 0 is out of range"),
])
def test_a_bad_value_is_named_as_bad_even_where_the_setting_fits_no_case(axes, needle):
    with pytest.raises(SpecError, match=needle):
        grid(axes)


@pytest.mark.parametrize("axes,flag", [
    ({"framework": ["keras"], "model": ["dense"], "compile": ["none", "default"]}, "--compile applies to torch"),
    ({"framework": ["torch"], "model": ["dense", "binary"], "channels_last": [True]}, "--channels-last applies to the torch cnn only"),
    ({"framework": ["keras"], "model": ["cnn"], "channels_last": [False, True]}, "--channels-last applies to the torch cnn only"),
    ({"framework": ["torch"], "model": ["dense"], "jit_compile": ["on"]}, "--jit-compile applies to keras"),
    ({"framework": ["torch"], "model": ["cnn"], "steps_per_execution": [4]}, "--steps-per-execution applies to keras only"),
    ({"framework": ["torch"], "model": ["dense"], "keras_backend": ["jax"]}, "--keras-backend applies to --framework keras only"),
])
def test_setting_that_fits_no_case_is_an_error(axes, flag):
    with pytest.raises(SpecError) as err:
        grid(axes)
    assert flag in str(err.value) and "no case in this plan" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_fp16_mixed_and_tf32_on_cpu_are_unsupported_with_a_reason(framework):
    fp16 = RunSpec(framework=framework, model="dense", precision="fp16-mixed")
    tf32 = RunSpec(framework=framework, model="dense", precision="tf32")
    assert fp16.unsupported_reason.startswith("fp16-mixed needs a CUDA GPU")
    assert tf32.unsupported_reason.startswith("tf32 is an NVIDIA tensor-core format")
    for precision in ("fp16-mixed", "tf32", "bf16", "fp32"):
        assert RunSpec(framework=framework, model="dense", device="cuda", precision=precision).unsupported_reason is None
    assert RunSpec(framework=framework, model="dense", precision="bf16").unsupported_reason is None
    assert RunSpec(framework=framework, model="dense").unsupported_reason is None


def test_worker_side_refuses_an_unsupported_spec_before_loading_a_framework():
    spec = RunSpec(framework="torch", model="dense", precision="tf32")
    with pytest.raises(Unsupported) as err:
        open_backend(spec)
    assert not isinstance(err.value, DeviceUnavailable)
    assert skip_message(spec, err.value) == spec.unsupported_reason  # not "cpu unavailable: ..."


def _pre_speed_settings_id(spec: RunSpec) -> tuple[str, str]:
    """id and case_key as computed before commit 934f0f1 added the speed settings: sha256 over the spec dict."""
    d = {k: v for k, v in spec.to_dict().items() if k not in NEW_FIELDS}
    digest = lambda x: hashlib.sha256(json.dumps(x, sort_keys=True).encode()).hexdigest()[:10]  # noqa: E731
    case = {k: v for k, v in d.items() if k not in ("seed", "repeat")}
    return f"{spec.framework}-{spec.model}-{spec.device}-{digest(d)}", digest(case)


@pytest.mark.parametrize("kwargs", [
    {"framework": "torch", "model": "dense"},
    {"framework": "keras", "model": "cnn"},
    {"framework": "torch", "model": "binary", "device": "cuda", "batchnorm": True, "epochs": 3},
    {"framework": "keras", "model": "dense", "seed": 4, "repeat": 2, "limit": 600, "dropout": 0.2},
])
def test_ids_at_default_speed_settings_are_the_old_ids(kwargs):
    spec = RunSpec(**kwargs)
    assert (spec.id, spec.case_key) == _pre_speed_settings_id(spec)


def test_default_ids_match_values_computed_by_the_old_code():
    # Computed by running suite/spec.py of 934f0f1^ (before the speed settings existed).
    assert RunSpec(framework="torch", model="dense").id == "torch-dense-cpu-03b2dc0602"
    assert RunSpec(framework="keras", model="cnn").id == "keras-cnn-cpu-3cde09ca99"


def test_records_stored_before_the_speed_settings_keep_their_ids():
    files = sorted((REPO / "tests" / "fixtures" / "store_a").glob("*.json"))
    assert files
    for path in files:
        stored = json.loads(path.read_text())
        assert not set(NEW_FIELDS) & set(stored["spec"]), "fixture should predate the speed settings"
        spec = RunSpec.from_dict(stored["spec"])
        assert (spec.id, spec.case_key) == (stored["case_id"], stored["case_key"]), path.name


@pytest.mark.parametrize("field,value", [("precision", "bf16"), ("compile", "default"), ("channels_last", True)])
def test_a_non_default_setting_changes_id_and_case_key(field, value):
    base = RunSpec(framework="torch", model="cnn")
    changed = RunSpec(framework="torch", model="cnn", **{field: value})
    assert changed.id != base.id and changed.case_key != base.case_key
    assert changed.id.startswith("torch-cnn-cpu-")


def test_labels_name_the_non_default_speed_settings():
    assert RunSpec(framework="torch", model="cnn").label == "torch/cnn/cpu"
    assert RunSpec(framework="torch", model="cnn", precision="bf16", channels_last=True).label == \
        "torch/cnn/cpu precision=bf16 channels_last=True"
    assert RunSpec(framework="torch", model="dense", compile="default").label == "torch/dense/cpu compile=default"
    assert RunSpec(framework="keras", model="dense", jit_compile="on", steps_per_execution=4).label == \
        "keras/dense/cpu jit_compile=on steps_per_execution=4"
    assert RunSpec(framework="keras", model="dense", keras_backend="jax").label == "keras/dense/cpu keras_backend=jax"
    assert RunSpec(framework="keras", model="dense", keras_backend="tensorflow").label == "keras/dense/cpu"


def test_every_precision_has_a_probe_figure_on_the_devices_that_can_run_it():
    for precision in PRECISIONS:
        assert probe.PEAK_DTYPE[precision] in probe.PROBE_DTYPES["cuda"]
        if RunSpec(framework="torch", model="dense", precision=precision).unsupported_reason is None:
            assert probe.PEAK_DTYPE[precision] in probe.PROBE_DTYPES["cpu"], precision


# ---------------------------------------------------------------- CLI

@pytest.mark.parametrize("args,needle", [
    (["--precision", "fp8"], "--precision 'fp8' is not known; choose from: "
                                                                      "fp32, bf16, fp16-mixed, tf32"),
    (["--compile", "fast"], "--compile 'fast' is not known; choose from: "
                                                                     "none, default, reduce-overhead, max-autotune"),
    (["--channels-last", "maybe"], "argument --channels-last: 'maybe' is not on or off"),
    (["--steps-per-execution", "0"], "--steps-per-execution 0 is out of range; valid: 1..100000"),
    (["--compile", "default", "--framework", "keras"], "--compile applies to torch (torch.compile); for keras use --jit-compile"),
    (["--jit-compile", "on", "--framework", "torch"], "--jit-compile applies to keras"),
    (["--channels-last", "--framework", "torch", "--model", "dense"], "--channels-last applies to the torch cnn only"),
    (["--keras-backend", "jax", "--framework", "torch"], "--keras-backend applies to --framework keras only"),
    (["--keras-backend", "mxnet"], "--keras-backend 'mxnet' is not known"),
    (["--precision", "bf16", "bf16"], "--precision lists a value twice"),
])
def test_bad_speed_flags_exit_2_with_one_line_and_write_nothing(tmp_path: Path, args: list[str], needle: str):
    out = run_cli("run", *args, "--results", str(tmp_path / "r"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], out.stderr
    assert not (tmp_path / "r").exists()


@needs_data
def test_fp16_mixed_and_tf32_on_cpu_are_recorded_as_skipped_without_a_worker(tmp_path: Path):
    cache = tmp_path / "cache"
    out = run_cli("run", "--framework", "torch", "keras", "--model", "dense", "--device", "cpu",
                  "--precision", "fp16-mixed", "tf32", "--results", str(tmp_path / "r"), cache=cache)
    assert out.returncode == 0, out.stderr[-3000:]
    records, problems = read_store([tmp_path / "r"])
    assert not problems and len(records) == 4
    assert {(r.spec["framework"], r.spec["precision"]) for r in records} == {
        (f, p) for f in ("torch", "keras") for p in ("fp16-mixed", "tf32")}
    for r in records:
        assert r.status == "skipped" and r.error == r.run_spec.unsupported_reason
        assert r.wall_s is None and r.test_accuracy is None
    assert "skipped — fp16-mixed needs a CUDA GPU" in out.stdout and "skipped — tf32 is an NVIDIA" in out.stdout
    assert not (cache / "peak_flops.json").exists(), "no worker (not even the FLOP/s probe) may start"


# ---------------------------------------------------------------- end to end on the real data (CPU)

def _run(tmp_path_factory, probe_cache: Path, *args: str) -> tuple[list[RunRecord], str]:
    results = tmp_path_factory.mktemp("results")
    out = run_cli("run", *args, *TINY, "--results", str(results), cache=probe_cache)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    records, problems = read_store([results])
    assert not problems
    for r in records:
        assert r.status == "ok", (r.run_spec.label, r.error, r.stderr_tail)
    return records, out.stdout


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, probe_cache):
    """torch dense with torch.compile and keras dense with XLA and steps_per_execution, in one plan."""
    records, _ = _run(tmp_path_factory, probe_cache, "--framework", "torch", "keras", "--model", "dense",
                      "--compile", "default", "--jit-compile", "on", "--steps-per-execution", "4")
    assert len(records) == 2
    return {r.spec["framework"]: r for r in records}


@pytest.fixture(scope="module")
def torch_cnn_bf16(tmp_path_factory, probe_cache):
    records, _ = _run(tmp_path_factory, probe_cache, "--framework", "torch", "--model", "cnn",
                      "--channels-last", "--precision", "bf16")
    assert len(records) == 1
    return records[0]


@pytest.fixture(scope="module")
def keras_backends(tmp_path_factory, probe_cache):
    records, _ = _run(tmp_path_factory, probe_cache, "--framework", "keras", "--model", "dense",
                      "--keras-backend", "jax", "torch")
    assert len(records) == 2
    return {r.spec["keras_backend"]: r for r in records}


def _learned_and_timed(r: RunRecord) -> None:
    assert r.test_accuracy > 0.3, (r.run_spec.label, r.test_accuracy)
    assert [h.epoch for h in r.history] == [1, 2] and r.train_samples == 600
    assert r.warmup_s == pytest.approx(r.first_epoch_s - r.steady_epoch_s)
    assert [i.batch_size for i in r.inference] == [1, 32]
    affinity = r.framework_info["cpu_affinity"]
    assert len(affinity) == min(r.run_spec.threads, len(os.sched_getaffinity(0)))


@needs_data
def test_torch_compile_runs_and_its_cost_lands_in_warmup(compiled):
    r = compiled["torch"]
    assert r.spec["compile"] == "default" and r.framework_info["compile_mode"] == "default"
    _learned_and_timed(r)
    assert r.warmup_s > 0, "torch.compile compiles lazily in epoch 1, so epoch 1 must be the slower one"
    assert r.peak_flops_dtype == "fp32" and r.framework_info["autocast_dtype"] is None


@needs_data
def test_keras_jit_compile_and_steps_per_execution_are_recorded(compiled):
    r = compiled["keras"]
    assert (r.spec["jit_compile"], r.spec["steps_per_execution"]) == ("on", 4)
    assert r.framework_info["jit_compile"] is True and r.framework_info["steps_per_execution"] == 4
    assert r.framework_info["keras_backend"] == "tensorflow" and r.framework_info["dtype_policy"] == "float32"
    assert r.framework_info["loss_scaling"] is False
    _learned_and_timed(r)
    assert r.warmup_s > 0, "XLA compiles in epoch 1"


@needs_data
def test_torch_cnn_channels_last_bf16_runs_under_bf16_autocast(torch_cnn_bf16, probe_cache: Path):
    r = torch_cnn_bf16
    assert r.spec["precision"] == "bf16" and r.spec["channels_last"] is True
    info = r.framework_info
    assert info["autocast_dtype"] == "bfloat16" and info["precision"] == "bf16" and info["loss_scaling"] is False
    assert info["memory_format"] == "channels_last"
    _learned_and_timed(r)
    cache = probe_cache / "peak_flops.json"
    entries = json.loads(cache.read_text()) if cache.exists() else {}
    entry = entries.get(f"{r.machine.machine_id}/cpu/threads={r.run_spec.threads}")
    # A CPU without bf16 instructions has no bf16 peak (an emulated GEMM is no peak): MFU divides by fp32 there.
    native = probe.emulated_bf16_reason(probe.cpu_flags()) is None
    assert r.peak_flops_dtype == ("bf16" if native else "fp32")
    if entry is None:  # a probe disturbed by other work is used for the run but never cached
        assert r.peak_probe is not None and r.peak_probe.disturbed and not r.peak_probe.cached
    else:
        assert r.peak_flops_per_s == entry["flops_per_s"][r.peak_flops_dtype]
    assert r.mfu_pct == pytest.approx(100 * r.achieved_train_flops_per_s / r.peak_flops_per_s)
    assert 0 < r.mfu_pct <= 100


def test_emulated_bf16_has_no_peak_and_falls_back_to_fp32():
    assert probe.emulated_bf16_reason({"avx2", "fma"}).startswith("no bf16 instructions")
    assert probe.emulated_bf16_reason({"avx2", "avx512_bf16"}) is None
    entry = {"flops_per_s": {"fp32": 1e11, "bf16": None}, "emulated": {"bf16": "no bf16 instructions"}}
    assert probe.peak_for(entry, "bf16") == (1e11, "fp32")
    assert probe.peak_for(entry, "fp32") == (1e11, "fp32")
    assert probe.peak_for({"flops_per_s": {"fp32": 1e11, "bf16": 4e11}}, "bf16") == (4e11, "bf16")
    # A dtype the device could not run at all is not replaced: no MFU rather than a wrong one.
    assert probe.peak_for({"flops_per_s": {"fp32": 1e11, "fp16": None}}, "fp16-mixed") == (None, "fp16")


@needs_data
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_on_jax_and_torch_run_and_say_so(keras_backends, backend: str):
    r = keras_backends[backend]
    info = r.framework_info
    assert r.spec["keras_backend"] == backend and info["keras_backend"] == backend
    assert info[f"{backend}_version"] and "tensorflow_version" not in info
    assert info["dtype_policy"] == "float32" and info["steps_per_execution"] == 1
    # jit_compile="auto" resolved by Keras: XLA on JAX, eager on torch; the record keeps the resolved value.
    assert info["jit_compile"] is (backend == "jax")
    _learned_and_timed(r)
    assert r.run_spec.label == f"keras/dense/cpu keras_backend={backend}"
    assert r.tf_peak_bytes is None and r.torch_peak_allocated_bytes is None


def test_workers_pin_themselves_to_threads_cpus():
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs at least 2 usable CPUs")
    code = "import os; from suite.run.case import pin_cpus; print(len(pin_cpus(1)), len(os.sched_getaffinity(0)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]


KERAS_MIXED = """
import json
import numpy as np
from suite.backends.keras_backend import KerasBackend
from suite.core.spec import RunSpec
out = {}
for precision in ("fp32", "bf16", "fp16-mixed"):
    spec = RunSpec(framework="keras", model="dense", keras_backend="jax", precision=precision, threads=1)
    backend = KerasBackend()
    backend.setup(spec)
    backend.build(spec, None)
    layers = backend.model.layers
    y = backend.forward(np.zeros((2, 28, 28), dtype=np.float32))
    out[precision] = {"info": backend.info, "last": [type(layers[-1]).__name__, layers[-1].dtype_policy.compute_dtype],
                      "dense": [l.dtype_policy.compute_dtype for l in layers if type(l).__name__ == "Dense"],
                      "output": str(y.dtype)}
print(json.dumps(out))
"""


def test_keras_mixed_precision_policy_ends_in_float32_and_scales_fp16_loss():
    """The real Keras build on its JAX backend (quick to import) for each precision, in a fresh process."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", KERAS_MIXED], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["fp32"]["info"]["dtype_policy"] == "float32" and got["fp32"]["last"] == ["Dense", "float32"]
    assert got["bf16"]["info"]["dtype_policy"] == "mixed_bfloat16" and set(got["bf16"]["dense"]) == {"bfloat16"}
    assert got["fp16-mixed"]["info"]["dtype_policy"] == "mixed_float16" and set(got["fp16-mixed"]["dense"]) == {"float16"}
    for precision in ("bf16", "fp16-mixed"):
        assert got[precision]["last"] == ["Activation", "float32"]
    for precision, scaled in (("fp32", False), ("bf16", False), ("fp16-mixed", True)):
        assert got[precision]["info"]["loss_scaling"] is scaled, precision
        assert got[precision]["output"] == "float32", precision


# ---------------------------------------------------------------- CUDA-only logic with fakes

@pytest.fixture
def torch_module(monkeypatch):
    """suite.backends.torch_backend with the TF32 switches restored afterwards and process-wide thread setters inert."""
    pytest.importorskip("torch")
    from suite.backends import torch_backend as module

    torch = module.torch
    saved = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: None)
    yield module
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


def _tf32_flags(torch) -> tuple[str, str]:
    return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision


def test_set_cuda_tf32_switches_matmul_and_cudnn_conv(torch_module):
    torch = torch_module.torch
    torch_module.set_cuda_tf32(True)
    assert _tf32_flags(torch) == ("tf32", "tf32")
    torch_module.set_cuda_tf32(False)
    assert _tf32_flags(torch) == ("ieee", "ieee")


def test_autocast_dtype_mapping(torch_module):
    torch = torch_module.torch
    dtype = lambda p: torch_module.autocast_dtype(RunSpec(framework="torch", model="dense", device="cuda", precision=p))  # noqa: E731
    assert [dtype(p) for p in ("fp32", "tf32", "bf16", "fp16-mixed")] == [None, None, torch.bfloat16, torch.float16]


@pytest.fixture
def fake_cuda(torch_module, monkeypatch):
    """torch.cuda pretending a GPU is present (nothing is allocated on it by setup)."""
    cuda = torch_module.torch.cuda
    state = {"bf16": True}
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "manual_seed_all", lambda seed: None)
    monkeypatch.setattr(cuda, "get_device_name", lambda device=None: "Fake GPU")
    monkeypatch.setattr(cuda, "is_bf16_supported", lambda *a, **k: state["bf16"])
    monkeypatch.setattr(torch_module.torch.backends.cudnn, "version", lambda: 91000)
    return torch_module, state


@pytest.mark.parametrize("precision,tf32,autocast,scaling", [
    ("fp32", "ieee", None, False),
    ("tf32", "tf32", None, False),
    ("bf16", "ieee", "bfloat16", False),
    ("fp16-mixed", "ieee", "float16", True),
])
def test_torch_cuda_setup_per_precision(fake_cuda, precision, tf32, autocast, scaling):
    module, _ = fake_cuda
    torch = module.torch
    torch.backends.cuda.matmul.fp32_precision = "none"  # a state neither branch leaves behind
    backend = module.TorchBackend()
    info = backend.setup(RunSpec(framework="torch", model="cnn", device="cuda", precision=precision))
    assert backend.device == torch.device("cuda", 0)
    assert _tf32_flags(torch) == (tf32, tf32)
    assert info["cuda_matmul_fp32_precision"] == tf32
    assert info["autocast_dtype"] == autocast and info["loss_scaling"] is scaling
    assert (backend.scaler is not None) is scaling
    assert info["device_name"] == "Fake GPU" and info["precision"] == precision


def test_torch_bf16_on_a_gpu_without_bf16_is_unsupported(fake_cuda):
    module, state = fake_cuda
    state["bf16"] = False
    with pytest.raises(Unsupported, match="bf16 is not supported by Fake GPU") as err:
        module.TorchBackend().setup(RunSpec(framework="torch", model="cnn", device="cuda", precision="bf16"))
    assert not isinstance(err.value, DeviceUnavailable)


def test_torch_channels_last_puts_conv_weights_and_inputs_in_nhwc(torch_module):
    import numpy as np

    torch = torch_module.torch
    spec = RunSpec(framework="torch", model="cnn", channels_last=True)
    backend = torch_module.TorchBackend()
    assert backend.setup(spec)["memory_format"] == "channels_last"
    backend.build(spec, None)
    convs = [m for m in backend.model if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
    assert convs
    for conv in convs:
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    first = backend.model[0](backend._images(np.zeros((2, 28, 28), dtype=np.float32)))
    assert first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()


class FakeTfConfigTf32(FakeTfConfig):
    """FakeTfConfig plus the thread and TF32 switches configure_tensorflow sets."""

    def __init__(self, gpus: list[str]) -> None:
        super().__init__(gpus)
        self.experimental.enable_tensor_float_32_execution = lambda on: self.calls.append(("tf32", on))
        self.threading = SimpleNamespace(
            set_intra_op_parallelism_threads=lambda n: self.calls.append(("intra", n)),
            set_inter_op_parallelism_threads=lambda n: self.calls.append(("inter", n)),
        )


@pytest.fixture
def fake_tf32(monkeypatch):
    from suite.backends import keras_backend

    config = FakeTfConfigTf32(["GPU:0"])
    fake = SimpleNamespace(config=config, __version__="fake", test=SimpleNamespace(is_built_with_cuda=lambda: True))
    monkeypatch.setattr(keras_backend, "tf", fake)
    return keras_backend, config


@pytest.mark.parametrize("precision,on", [("fp32", False), ("tf32", True), ("bf16", False), ("fp16-mixed", False)])
def test_tensorflow_tf32_is_switched_explicitly_on_cuda(fake_tf32, precision: str, on: bool):
    keras_backend, config = fake_tf32
    assert keras_backend.configure_tensorflow("cuda", precision, 2) == "/GPU:0"
    assert config.calls == [("intra", 2), ("inter", 1), ("memory_growth", "GPU:0", True), ("tf32", on)]


def test_tensorflow_tf32_switch_is_left_alone_on_cpu(fake_tf32):
    keras_backend, config = fake_tf32
    assert keras_backend.configure_tensorflow("cpu", "fp32", 3) == "/CPU:0"
    assert config.calls == [("intra", 3), ("inter", 1), ("visible", (), "GPU")]


def test_keras_precision_and_jit_tables_cover_every_choice():
    from suite.backends import keras_backend
    from suite.core.frameworks import JIT_COMPILE

    assert keras_backend.KERAS_POLICY == {"fp32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16",
                                          "fp16-mixed": "mixed_float16"}
    assert set(keras_backend.KERAS_POLICY) == set(PRECISIONS)
    assert keras_backend.JIT_COMPILE == {"auto": "auto", "on": True, "off": False}
    assert set(keras_backend.JIT_COMPILE) == set(JIT_COMPILE)
    assert set(keras_backend.INSTALL_HINT) == set(KERAS_BACKENDS)


class FakeJax:
    def __init__(self, devices: list[str] | Exception) -> None:
        self.updates: list[tuple[str, str]] = []
        self._devices = devices
        self.__version__ = "0.fake"
        self.config = SimpleNamespace(update=lambda name, value: self.updates.append((name, value)))

    def devices(self) -> list[str]:
        if isinstance(self._devices, Exception):
            raise self._devices
        return self._devices


@pytest.mark.parametrize("device,precision,platform,matmul", [
    ("cuda", "fp32", "cuda", "float32"),
    ("cuda", "tf32", "cuda", "tensorfloat32"),
    ("cuda", "bf16", "cuda", "float32"),
    ("cpu", "fp32", "cpu", "float32"),
])
def test_configure_jax_sets_platform_and_matmul_precision(monkeypatch, device, precision, platform, matmul):
    from suite.backends import keras_backend

    jax = FakeJax([f"{platform}:0"])
    monkeypatch.setitem(sys.modules, "jax", jax)
    assert keras_backend.configure_jax(device, precision) == f"{platform}:0"
    assert jax.updates == [("jax_platforms", platform), ("jax_default_matmul_precision", matmul)]


def test_configure_jax_without_the_platform_is_device_unavailable(monkeypatch):
    from suite.backends import keras_backend

    monkeypatch.setitem(sys.modules, "jax", FakeJax(RuntimeError("Unknown backend: 'cuda' requested\nmore detail")))
    with pytest.raises(DeviceUnavailable, match=r"^JAX 0\.fake has no cuda backend: Unknown backend: 'cuda' requested$"):
        keras_backend.configure_jax("cuda", "fp32")


def test_keras_on_jax_without_jax_installed_is_unsupported(monkeypatch):
    from suite.backends import keras_backend

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")  # restored afterwards: _import_frameworks sets it
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    with pytest.raises(Unsupported, match="Keras backend jax needs JAX, which is not installed; pip install jax") as err:
        keras_backend._import_frameworks("jax")
    assert not isinstance(err.value, DeviceUnavailable)


@pytest.mark.parametrize("precision,tf32", [("fp32", "ieee"), ("tf32", "tf32")])
def test_keras_on_torch_switches_tf32_on_cuda(torch_module, monkeypatch, precision, tf32):
    from suite.backends import keras_backend

    monkeypatch.setattr(keras_backend, "cuda_unavailable_reason", lambda: None)
    assert keras_backend.configure_keras_torch("cuda", precision, 2) == "cuda:0"
    assert _tf32_flags(torch_module.torch) == (tf32, tf32)


def test_keras_on_torch_cpu_and_missing_gpu(torch_module, monkeypatch):
    from suite.backends import keras_backend

    before = _tf32_flags(torch_module.torch)
    assert keras_backend.configure_keras_torch("cpu", "fp32", 2) == "cpu"
    assert _tf32_flags(torch_module.torch) == before
    monkeypatch.setattr(keras_backend, "cuda_unavailable_reason", lambda: "no driver")
    with pytest.raises(DeviceUnavailable, match="no driver"):
        keras_backend.configure_keras_torch("cuda", "fp32", 2)


# ---------------------------------------------------------------- real GPU

@pytest.mark.gpu
@needs_data
def test_real_gpu_torch_cnn_in_every_gpu_precision(tmp_path: Path, probe_cache: Path):
    out = run_cli("run", "--framework", "torch", "--model", "cnn", "--device", "cuda",
                  "--precision", "fp16-mixed", "tf32", "bf16", "--epochs", "2", "--limit", "2000",
                  "--infer-batch-sizes", "1", "32", "--results", str(tmp_path), cache=probe_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    records, _ = read_store([tmp_path])
    by_precision = {r.spec["precision"]: r for r in records}
    assert set(by_precision) == {"fp16-mixed", "tf32", "bf16"}
    bf16 = by_precision["bf16"]
    if bf16.status == "skipped":  # pre-Ampere GPUs: the backend says so instead of emulating
        assert bf16.error.startswith("bf16 is not supported by"), bf16.error
        del by_precision["bf16"]
    expected = {"fp16-mixed": ("float16", True, "ieee"), "tf32": (None, False, "tf32"), "bf16": ("bfloat16", False, "ieee")}
    for precision, r in by_precision.items():
        assert r.status == "ok", (precision, r.error)
        autocast, scaling, matmul = expected[precision]
        info = r.framework_info
        assert (info["autocast_dtype"], info["loss_scaling"], info["cuda_matmul_fp32_precision"]) == (autocast, scaling, matmul)
        assert r.test_accuracy > 0.3 and r.torch_peak_allocated_bytes and r.torch_peak_allocated_bytes > 0
        assert r.peak_flops_dtype == probe.PEAK_DTYPE[precision] and r.peak_flops_per_s
