"""suite.measure.nvml against a scripted fake pynvml, the real (driverless) pynvml, and a real GPU when present."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from suite.measure.nvml import NvmlSampler, NvmlUnavailable, decode_reasons, gpu_inventory, load_nvml
from suite.record.schema import GpuStats

REPO = Path(__file__).resolve().parents[1]


# --- a fake pynvml: same names as nvidia-ml-py, values scripted per call ---------------------------------------------


class NVMLError(Exception):
    """Base NVML error carrying a numeric code, like pynvml's."""

    code = 999

    def __init__(self) -> None:
        super().__init__(self.code)
        self.value = self.code


class NVMLError_NotSupported(NVMLError):
    code = 3


class NVMLError_DriverNotLoaded(NVMLError):
    code = 9


class NVMLError_LibraryNotFound(NVMLError):
    code = 12


class NVMLError_FunctionNotFound(NVMLError):
    code = 13


class NVMLError_Unknown(NVMLError):
    code = 999


class FakeNvml:
    """Scripted pynvml: each query returns the next value of its series (the last one repeats); exceptions are raised."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_FunctionNotFound = NVMLError_FunctionNotFound
    NVML_CLOCK_SM = 1
    nvmlMemory_v2 = 0x02000028
    nvmlClocksEventReasonGpuIdle = 0x1
    nvmlClocksEventReasonApplicationsClocksSetting = 0x2
    nvmlClocksEventReasonSwPowerCap = 0x4
    nvmlClocksEventReasonHwSlowdown = 0x8
    nvmlClocksEventReasonSyncBoost = 0x10
    nvmlClocksEventReasonSwThermalSlowdown = 0x20
    nvmlClocksEventReasonHwThermalSlowdown = 0x40
    nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x80
    nvmlClocksEventReasonDisplayClockSetting = 0x100
    nvmlClocksEventReasonNone = 0x0

    def __init__(self, devices: int = 1, init_error: type[NVMLError] | None = None, **series: list[Any]) -> None:
        self.devices = devices
        self.init_error = init_error
        self.series: dict[str, list[Any]] = {
            "util": [(50, 20)],
            "mem_used": [1_000],
            "power_mw": [100_000],
            "sm_clock": [1_500],
            "reasons": [0],
            "energy_mj": [0],
        }
        self.series.update({k: list(v) for k, v in series.items()})
        self.calls: Counter[str] = Counter()
        self.memory_versions: list[int | None] = []

    def _next(self, key: str) -> Any:
        self.calls[key] += 1
        values = self.series[key]
        value = values.pop(0) if len(values) > 1 else values[0]
        if isinstance(value, type) and issubclass(value, BaseException):
            raise value()
        return value

    def nvmlInit(self) -> None:
        self.calls["init"] += 1
        if self.init_error is not None:
            raise self.init_error()

    def nvmlShutdown(self) -> None:
        self.calls["shutdown"] += 1

    def nvmlDeviceGetCount(self) -> int:
        return self.devices

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        if not 0 <= index < self.devices:
            raise NVMLError_Unknown()
        return f"handle{index}"

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.15"  # bytes, as older pynvml releases return

    def nvmlDeviceGetName(self, handle: str) -> bytes:
        return f"Fake GPU {handle[-1]}".encode()

    def nvmlDeviceGetUUID(self, handle: str) -> str:
        return f"GPU-0000-{handle[-1]}"

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:
        gpu, memory = self._next("util")
        return SimpleNamespace(gpu=gpu, memory=memory)

    def nvmlDeviceGetMemoryInfo(self, handle: str, version: int | None = None) -> SimpleNamespace:
        self.memory_versions.append(version)
        if version is not None and "mem_v2_error" in self.series:
            self._next("mem_v2_error")
        return SimpleNamespace(used=self._next("mem_used"), total=8 * 2**30, free=0)

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        return self._next("power_mw")

    def nvmlDeviceGetClockInfo(self, handle: str, clock_type: int) -> int:
        assert clock_type == self.NVML_CLOCK_SM
        return self._next("sm_clock")

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        return self._next("reasons")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        return self._next("energy_mj")


class LegacyFakeNvml(FakeNvml):
    """An older binding: only the deprecated throttle-reasons function and nvmlClocksThrottleReason* constants."""

    nvmlDeviceGetCurrentClocksEventReasons = None  # type: ignore[assignment]
    nvmlClocksEventReasonSwPowerCap = None  # type: ignore[assignment]
    nvmlClocksEventReasonHwThermalSlowdown = None  # type: ignore[assignment]
    nvmlClocksEventReasonGpuIdle = None  # type: ignore[assignment]
    nvmlClocksThrottleReasonSwPowerCap = 0x4
    nvmlClocksThrottleReasonHwThermalSlowdown = 0x40
    nvmlClocksThrottleReasonGpuIdle = 0x1

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: str) -> int:
        return self._next("reasons")


class FakeClock:
    """A clock the test sets by hand, so sample times (and power x time) are exact."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def make(fake: FakeNvml, clock: FakeClock | None = None, **kwargs: Any) -> NvmlSampler:
    """A sampler on the fake with a short period."""
    return NvmlSampler(module=fake, period_s=0.01, clock=clock or FakeClock(), **kwargs)


def run_phase(sampler: NvmlSampler, clock: FakeClock, times_s: list[float], name: str = "train") -> None:
    """Enter at times_s[0], sample by hand at the middle times, exit at times_s[-1]."""
    clock.now_s = times_s[0]
    with sampler.phase(name):
        for t_s in times_s[1:-1]:
            clock.now_s = t_s
            sampler.sample_once()
        clock.now_s = times_s[-1]


# --- aggregation -------------------------------------------------------------------------------------------------


def test_series_give_mean_p95_max_and_peak_memory() -> None:
    util = [(u, u // 2) for u in range(5, 101, 5)]  # 20 samples: 5..100 %
    power_mw = [100_000 + 10_000 * i for i in range(20)]  # 100..290 W
    mem_used = [2**30 + i * 2**20 for i in range(20)]
    fake = FakeNvml(util=util, power_mw=power_mw, mem_used=mem_used, sm_clock=[1_000, 2_000])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [float(i) for i in range(20)])
    stats = sampler.stats("train")
    assert stats.available and stats.reason is None
    assert stats.samples == 20
    assert stats.duration_s == pytest.approx(19.0)
    assert stats.util_mean_pct == pytest.approx(52.5)
    assert stats.util_p95_pct == pytest.approx(np.percentile(np.arange(5, 101, 5), 95)) == pytest.approx(95.25)
    assert stats.mem_util_mean_pct == pytest.approx(np.mean([u // 2 for u in range(5, 101, 5)]))
    assert stats.power_mean_w == pytest.approx(195.0)
    assert stats.power_max_w == pytest.approx(290.0)
    assert stats.mem_used_peak_bytes == 2**30 + 19 * 2**20
    assert stats.sm_clock_mean_mhz == pytest.approx((1_000 + 19 * 2_000) / 20)
    assert sampler.peak_used_bytes() == 2**30 + 19 * 2**20


def test_phases_are_kept_apart_and_repeated_windows_add_up() -> None:
    fake = FakeNvml(util=[(10, 0), (10, 0), (90, 0), (90, 0), (30, 0), (30, 0)],
                    energy_mj=[1_000, 2_000, 5_000, 9_000, 20_000, 23_000])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0], "train")
    run_phase(sampler, clock, [2.0, 4.0], "inference")
    run_phase(sampler, clock, [5.0, 8.0], "train")
    train, infer = sampler.stats("train"), sampler.stats("inference")
    assert train.samples == 4 and train.util_mean_pct == pytest.approx(20.0)
    assert train.duration_s == pytest.approx(4.0)
    assert train.energy_j == pytest.approx(1.0 + 3.0) and train.energy_source == "counter"
    assert infer.samples == 2 and infer.util_mean_pct == pytest.approx(90.0)
    assert infer.energy_j == pytest.approx(4.0)


def test_short_phase_still_has_enter_and_exit_samples() -> None:
    fake = FakeNvml(util=[(40, 10), (60, 30)])
    clock = FakeClock()
    sampler = make(fake, clock)  # thread never started: only the phase's own samples exist
    with sampler.phase("inference"):
        clock.now_s = 0.001
    stats = sampler.stats("inference")
    assert stats.samples == 2
    assert stats.util_mean_pct == pytest.approx(50.0)
    assert stats.duration_s == pytest.approx(0.001)


def test_unknown_phase_is_reported_not_raised() -> None:
    stats = make(FakeNvml()).stats("never")
    assert stats.available is False and "never" in stats.reason


# --- energy --------------------------------------------------------------------------------------------------------


def test_energy_is_counter_delta_in_joules() -> None:
    fake = FakeNvml(energy_mj=[1_000_000, 1_250_500])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0, 2.0])
    stats = sampler.stats("train")
    assert stats.energy_j == pytest.approx(250.5)
    assert stats.energy_source == "counter"


def test_energy_counter_wraps_at_2_pow_64() -> None:
    fake = FakeNvml(energy_mj=[2**64 - 1_000, 500])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0])
    assert sampler.stats("train").energy_j == pytest.approx(1.5)


def test_energy_not_supported_falls_back_to_power_times_time() -> None:
    # 100 W at t=0, 200 W at t=1, 200 W at t=3: trapezoid = 150 J + 400 J.
    fake = FakeNvml(energy_mj=[NVMLError_NotSupported], power_mw=[100_000, 200_000, 200_000])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0, 3.0])
    stats = sampler.stats("train")
    assert stats.energy_source == "power_x_time"
    assert stats.energy_j == pytest.approx(550.0)
    assert stats.power_mean_w == pytest.approx(500 / 3)
    assert fake.calls["energy_mj"] == 1  # NotSupported is remembered, not re-asked at exit


def test_no_energy_at_all_gives_none_not_zero() -> None:
    fake = FakeNvml(energy_mj=[NVMLError_NotSupported], power_mw=[NVMLError_NotSupported])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0, 2.0])
    stats = sampler.stats("train")
    assert stats.available and stats.energy_j is None and stats.energy_source is None
    assert stats.power_mean_w is None and stats.util_mean_pct == pytest.approx(50.0)


# --- per-query failures --------------------------------------------------------------------------------------------


def test_clock_not_supported_leaves_only_that_field_none() -> None:
    fake = FakeNvml(sm_clock=[NVMLError_NotSupported], util=[(70, 35)], power_mw=[250_000])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 0.5, 1.0])
    stats = sampler.stats("train")
    assert stats.sm_clock_mean_mhz is None
    assert stats.util_mean_pct == pytest.approx(70.0)
    assert stats.power_mean_w == pytest.approx(250.0)
    assert stats.mem_used_peak_bytes == 1_000
    assert fake.calls["sm_clock"] == 1  # not retried every period


def test_transient_error_drops_one_reading_only() -> None:
    fake = FakeNvml(util=[(10, 1), NVMLError_Unknown, (30, 3)])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0, 2.0])
    stats = sampler.stats("train")
    assert [s.util_pct for s in sampler.samples] == [10.0, None, 30.0]
    assert stats.samples == 3 and stats.util_mean_pct == pytest.approx(20.0)
    assert fake.calls["util"] == 3  # a non-NotSupported error is retried next sample


def test_memory_v2_preferred_then_v1_fallback() -> None:
    fake = FakeNvml()
    make(fake).sample_once()
    assert fake.memory_versions == [FakeNvml.nvmlMemory_v2]

    old_driver = FakeNvml(mem_v2_error=[NVMLError_FunctionNotFound], mem_used=[4_096])
    sampler = make(old_driver)
    first, second = sampler.sample_once(), sampler.sample_once()
    assert old_driver.memory_versions == [FakeNvml.nvmlMemory_v2, None, None]
    assert first.mem_used_bytes == second.mem_used_bytes == 4_096


def test_throttle_reasons_decoded_idle_ignored() -> None:
    fake = FakeNvml(reasons=[0x1 | 0x4, 0x40, 0x1, 0x800])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0, 2.0, 3.0])
    assert sampler.stats("train").throttle_reasons == ["hw_thermal", "other_0x800", "sw_power_cap"]
    assert decode_reasons(fake, 0x1) == []
    assert decode_reasons(fake, 0x8 | 0x20 | 0x80) == ["hw_slowdown", "sw_thermal", "hw_power_brake"]


def test_legacy_throttle_function_and_constants() -> None:
    fake = LegacyFakeNvml(reasons=[0x4 | 0x1])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0])
    assert sampler.stats("train").throttle_reasons == ["sw_power_cap"]
    assert fake.calls["reasons"] == 2


class OldDriverFakeNvml(FakeNvml):
    """A new binding on an old driver: the new clock-event symbol is missing from libnvidia-ml."""

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        self.calls["event_fn"] += 1
        raise NVMLError_FunctionNotFound()

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: str) -> int:
        return self._next("reasons")


def test_missing_event_symbol_falls_back_to_throttle_function() -> None:
    fake = OldDriverFakeNvml(reasons=[0x8])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 1.0, 2.0])
    assert sampler.stats("train").throttle_reasons == ["hw_slowdown"]
    assert fake.calls["event_fn"] == 1 and fake.calls["reasons"] == 3


# --- thread --------------------------------------------------------------------------------------------------------


def test_thread_samples_periodically_survives_not_supported_and_stops() -> None:
    fake = FakeNvml(sm_clock=[NVMLError_NotSupported], util=[(80, 40)])
    sampler = NvmlSampler(module=fake, period_s=0.01)
    sampler.start()
    thread = sampler._thread
    with sampler.phase("train"):
        time.sleep(0.12)
    assert thread is not None and thread.is_alive()
    sampler.stop()
    assert not thread.is_alive()
    stats = sampler.stats("train")
    # ~12 periodic + 2 edge samples; a busy loop would give thousands, a dead thread only 2.
    assert 4 <= stats.samples < 100
    assert stats.util_mean_pct == pytest.approx(80.0) and stats.sm_clock_mean_mhz is None
    assert stats.duration_s == pytest.approx(0.12, abs=0.1)
    assert fake.calls["shutdown"] == 1
    sampler.stop()  # idempotent: no second nvmlShutdown
    assert fake.calls["shutdown"] == 1
    count = len(sampler.samples)
    with sampler.phase("after"):  # after stop: no-op, no new samples
        pass
    assert len(sampler.samples) == count
    assert sampler.stats("train").samples == stats.samples  # results survive stop


# --- unavailable ---------------------------------------------------------------------------------------------------


def test_pynvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(NvmlUnavailable, match="nvidia-ml-py not installed"):
        load_nvml()
    sampler = NvmlSampler(period_s=0.01)
    sampler.start()
    assert sampler._thread is None
    with sampler.phase("train"):
        pass
    sampler.stop()
    stats = sampler.stats("train")
    assert stats.available is False and "nvidia-ml-py not installed" in stats.reason
    assert sampler.peak_used_bytes() is None and sampler.samples == []
    assert gpu_inventory() == []


@pytest.mark.parametrize(
    ("error", "reason"),
    [(NVMLError_LibraryNotFound, "NVML library not found (no NVIDIA driver)"),
     (NVMLError_DriverNotLoaded, "NVIDIA driver not loaded")],
)
def test_init_failure_is_a_noop_with_reason(error: type[NVMLError], reason: str) -> None:
    fake = FakeNvml(init_error=error)
    with pytest.raises(NvmlUnavailable) as info:
        load_nvml(fake)
    assert str(info.value) == reason
    sampler = make(fake)
    assert not sampler.available and sampler.reason == reason
    sampler.start()
    sampler.stop()
    assert sampler._thread is None and fake.calls["shutdown"] == 0 and fake.calls["util"] == 0
    assert sampler.stats("train").model_dump(include={"available", "reason", "samples"}) == {
        "available": False, "reason": reason, "samples": 0}


def test_missing_device_index_releases_nvml() -> None:
    fake = FakeNvml(devices=1)
    sampler = make(fake, device_index=3)
    assert sampler.reason == "no GPU at index 3 (NVML sees 1)"
    assert fake.calls["init"] == fake.calls["shutdown"] == 1  # refcount balanced
    zero = FakeNvml(devices=0)
    assert make(zero).reason == "no NVIDIA GPU found (NVML reports 0 devices)"


# --- inventory -----------------------------------------------------------------------------------------------------


def test_gpu_inventory_on_fake() -> None:
    fake = FakeNvml(devices=2)
    assert gpu_inventory(fake) == [
        {"index": 0, "name": "Fake GPU 0", "driver": "550.54.15", "memory_total_bytes": 8 * 2**30,
         "uuid": "GPU-0000-0"},
        {"index": 1, "name": "Fake GPU 1", "driver": "550.54.15", "memory_total_bytes": 8 * 2**30,
         "uuid": "GPU-0000-1"},
    ]
    assert fake.calls["init"] == fake.calls["shutdown"] == 1


def test_gpu_inventory_unavailable_is_empty() -> None:
    assert gpu_inventory(FakeNvml(init_error=NVMLError_LibraryNotFound)) == []


# --- real pynvml ---------------------------------------------------------------------------------------------------


def test_real_pynvml_without_gpu_reports_unavailable() -> None:
    pytest.importorskip("pynvml")
    try:
        load_nvml()
    except NvmlUnavailable as exc:
        reason = str(exc)
    else:
        pytest.skip("an NVIDIA GPU is present; the unavailable path cannot be exercised")
    assert reason and "\n" not in reason
    assert any(word in reason for word in ("NVML", "driver", "GPU"))
    sampler = NvmlSampler(period_s=0.01)
    sampler.start()
    with sampler.phase("train"):
        pass
    sampler.stop()
    stats = sampler.stats("train")
    assert stats.available is False and stats.reason == reason
    assert gpu_inventory() == []
    import pynvml  # the real constants decode without a driver

    assert decode_reasons(pynvml, 0x1 | 0x4 | 0x200) == ["sw_power_cap", "board_limit"]


def test_module_imports_no_framework_and_pynvml_lazily() -> None:
    code = ("import sys, suite.measure.nvml; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'pynvml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def assert_idle_gpu_stats(stats: GpuStats, card_bytes: int) -> None:
    """What NVML guarantees over an idle phase. An idle GPU with no process on it reports 0 bytes used (seen on an H200,
    2026-12-04), so used memory is only bounded, never required to be > 0."""
    assert stats.available and stats.samples >= 2 and stats.duration_s > 0
    assert stats.mem_used_peak_bytes is None or 0 <= stats.mem_used_peak_bytes <= card_bytes
    assert stats.energy_j is None or stats.energy_j >= 0


def test_an_idle_gpu_reporting_zero_bytes_used_passes_the_real_gpu_checks() -> None:
    fake = FakeNvml(mem_used=[0], util=[(0, 0)])
    clock = FakeClock()
    sampler = make(fake, clock)
    run_phase(sampler, clock, [0.0, 0.1, 0.2, 0.3], name="idle")
    stats = sampler.stats("idle")
    assert stats.mem_used_peak_bytes == 0  # a reading of 0, not a missing one
    assert_idle_gpu_stats(stats, 8 * 2**30)
    with pytest.raises(AssertionError):
        assert_idle_gpu_stats(stats.model_copy(update={"mem_used_peak_bytes": 9 * 2**30}), 8 * 2**30)


@pytest.mark.gpu
def test_real_gpu_sampler() -> None:
    try:
        nvml = load_nvml()
    except NvmlUnavailable:
        pytest.skip("no NVIDIA GPU/driver (NVML unavailable)")
    nvml.nvmlShutdown()
    inventory = gpu_inventory()
    assert inventory and inventory[0]["memory_total_bytes"] > 0
    with NvmlSampler(period_s=0.02) as sampler:
        with sampler.phase("idle"):
            time.sleep(0.2)
    assert_idle_gpu_stats(sampler.stats("idle"), inventory[0]["memory_total_bytes"])
