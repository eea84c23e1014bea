"""NVML (nvidia-ml-py) GPU sampler: utilisation, memory, power, clocks, throttle reasons and energy per phase.

Without an NVIDIA driver everything here degrades to an "unavailable" no-op that says why; nothing raises.
Imports only the standard library, numpy, `pynvml` (lazily) and `suite.record.schema`; never torch or TensorFlow.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from suite.record.schema import GpuStats

# nvmlDeviceGetTotalEnergyConsumption returns an unsigned long long (mJ); deltas are taken modulo this.
ENERGY_COUNTER_MODULUS = 2**64

# Suffix of the module constant (nvmlClocksEventReason* / nvmlClocksThrottleReason*) -> name we report.
# GpuIdle and None are deliberately absent: an idle GPU clocking down is not a throttle.
_REASON_NAMES: dict[str, str] = {
    "SwPowerCap": "sw_power_cap",
    "HwSlowdown": "hw_slowdown",
    "SwThermalSlowdown": "sw_thermal",
    "HwThermalSlowdown": "hw_thermal",
    "HwPowerBrakeSlowdown": "hw_power_brake",
    "SyncBoost": "sync_boost",
    "ApplicationsClocksSetting": "applications_clocks",
    "DisplayClockSetting": "display_clock",
    "BoardLimit": "board_limit",
    "Reliability": "reliability",
}
_IGNORED_REASONS = ("GpuIdle", "None")


class NvmlUnavailable(Exception):
    """NVML cannot be used here; str(exc) is a one-line reason."""


class _NeverRaised(Exception):
    """Stand-in for an NVMLError subclass the module does not define, so `except` clauses stay valid."""


def _error_class(module: Any, name: str) -> type[BaseException]:
    """The module's NVMLError subclass `name`, or a class that is never raised."""
    cls = getattr(module, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else _NeverRaised


def _text(value: Any) -> str:
    """NVML strings as str (older pynvml releases return bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _init_failure_reason(module: Any, exc: BaseException) -> str:
    """One-line reason for an nvmlInit failure."""
    if isinstance(exc, _error_class(module, "NVMLError_LibraryNotFound")):
        return "NVML library not found (no NVIDIA driver)"
    if isinstance(exc, _error_class(module, "NVMLError_DriverNotLoaded")):
        return "NVIDIA driver not loaded"
    if isinstance(exc, _error_class(module, "NVMLError_NoPermission")):
        return "no permission to use NVML"
    if isinstance(exc, _error_class(module, "NVMLError_LibRmVersionMismatch")):
        return "NVML/driver version mismatch (reboot or reload the NVIDIA driver)"
    return f"nvmlInit failed: {type(exc).__name__}: {exc}".splitlines()[0]


def _safe_shutdown(module: Any) -> None:
    """nvmlShutdown, ignoring NVML errors (we are cleaning up)."""
    try:
        module.nvmlShutdown()
    except _error_class(module, "NVMLError"):
        pass


def load_nvml(module: Any = None) -> Any:
    """Import (unless given) and initialise pynvml; raise NvmlUnavailable with a one-line reason if impossible."""
    if module is None:
        try:
            module = importlib.import_module("pynvml")
        except ImportError:
            raise NvmlUnavailable("nvidia-ml-py not installed (pip install nvidia-ml-py)") from None
    nvml_error = _error_class(module, "NVMLError")
    try:
        module.nvmlInit()
    except nvml_error as exc:
        raise NvmlUnavailable(_init_failure_reason(module, exc)) from None
    except AttributeError:
        raise NvmlUnavailable(f"{getattr(module, '__name__', 'pynvml')} is not nvidia-ml-py (no nvmlInit)") from None
    try:
        count = module.nvmlDeviceGetCount()
    except nvml_error as exc:
        _safe_shutdown(module)
        raise NvmlUnavailable(f"nvmlDeviceGetCount failed: {exc}") from None
    if count < 1:
        _safe_shutdown(module)
        raise NvmlUnavailable("no NVIDIA GPU found (NVML reports 0 devices)")
    return module


def driver_versions(module: Any = None) -> dict[str, str]:
    """NVML library, driver and CUDA driver versions; {"nvml": "unavailable: <why>"} without NVML. Never raises."""
    try:
        nvml = load_nvml(module)
    except NvmlUnavailable as exc:
        return {"nvml": f"unavailable: {exc}"}
    try:
        cuda = nvml.nvmlSystemGetCudaDriverVersion()  # e.g. 13000 for CUDA 13.0
        return {"nvml": _text(nvml.nvmlSystemGetNVMLVersion()), "driver": _text(nvml.nvmlSystemGetDriverVersion()),
                "cuda_driver": f"{cuda // 1000}.{cuda % 1000 // 10}"}
    except Exception as exc:  # an old driver lacks a query: say so rather than stop whoever asked
        return {"nvml": f"query failed: {exc}"}
    finally:
        _safe_shutdown(nvml)


def gpu_inventory(module: Any = None) -> list[dict[str, Any]]:
    """One dict per GPU (index, name, driver, memory_total_bytes, uuid); [] when NVML is unavailable. Never raises."""
    try:
        nvml = load_nvml(module)
    except NvmlUnavailable:
        return []
    except Exception:  # a broken binding must not break machine fingerprinting
        return []
    nvml_error = _error_class(nvml, "NVMLError")

    def ask(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except nvml_error:
            return None

    gpus: list[dict[str, Any]] = []
    try:
        driver = ask(nvml.nvmlSystemGetDriverVersion)
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = ask(nvml.nvmlDeviceGetHandleByIndex, index)
            if handle is None:
                continue
            name = ask(nvml.nvmlDeviceGetName, handle)
            memory = ask(nvml.nvmlDeviceGetMemoryInfo, handle)
            uuid = ask(nvml.nvmlDeviceGetUUID, handle)
            gpus.append({
                "index": index,
                "name": _text(name) if name is not None else None,
                "driver": _text(driver) if driver is not None else None,
                "memory_total_bytes": int(memory.total) if memory is not None else None,
                "uuid": _text(uuid) if uuid is not None else None,
            })
    except Exception:  # partial inventory beats none; the caller only fingerprints
        pass
    finally:
        _safe_shutdown(nvml)
    return gpus


@dataclass(frozen=True)
class Sample:
    """One NVML reading; a field is None when its query failed or is not supported."""

    t_s: float
    util_pct: float | None = None
    mem_util_pct: float | None = None
    mem_used_bytes: int | None = None
    power_w: float | None = None
    sm_clock_mhz: float | None = None
    reasons_mask: int | None = None


@dataclass
class _Window:
    """One enter..exit of a phase: wall-clock bounds and energy counter readings (mJ)."""

    t_enter_s: float
    energy_enter_mj: int | None
    t_exit_s: float | None = None
    energy_exit_mj: int | None = None


@dataclass
class _Phase:
    """All windows recorded under one phase name (a name may be entered several times)."""

    windows: list[_Window] = field(default_factory=list)


def decode_reasons(module: Any, mask: int) -> list[str]:
    """Names of the throttle/clock-event bits set in `mask`, from the module's constants (idle ignored)."""
    names: list[str] = []
    known = 0
    for suffix, label in _REASON_NAMES.items():
        bit = getattr(module, f"nvmlClocksEventReason{suffix}", None)
        if bit is None:
            bit = getattr(module, f"nvmlClocksThrottleReason{suffix}", None)
        if isinstance(bit, int) and bit:
            known |= bit
            if mask & bit:
                names.append(label)
    for suffix in _IGNORED_REASONS:
        for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
            bit = getattr(module, f"{prefix}{suffix}", 0)
            known |= bit if isinstance(bit, int) else 0
    # Bits newer than this code still get reported rather than silently dropped.
    unknown = mask & ~known
    if unknown:
        names.append(f"other_0x{unknown:x}")
    return names


def _trapezoid_energy_j(samples: list[Sample]) -> float | None:
    """Integral of sampled power over time (J); None with fewer than two power readings."""
    points = sorted((s.t_s, s.power_w) for s in samples if s.power_w is not None)
    if len(points) < 2:
        return None
    t_s = np.array([p[0] for p in points])
    power_w = np.array([p[1] for p in points])
    return float(np.sum((power_w[1:] + power_w[:-1]) / 2.0 * np.diff(t_s)))


def _mean(values: list[float]) -> float | None:
    """Mean, or None for no values."""
    return float(np.mean(values)) if values else None


class NvmlSampler:
    """Background NVML sampler for one device with named phases; a no-op that reports why when NVML is unavailable."""

    def __init__(
        self,
        device_index: int = 0,
        period_s: float = 0.15,
        module: Any = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Initialise NVML and the device handle now, so `available`/`reason` are known before start()."""
        self.device_index = device_index
        self.period_s = period_s
        self.reason: str | None = None
        self.last_error: str | None = None
        self._clock = clock
        self._nvml: Any = None
        self._handle: Any = None
        self._samples: list[Sample] = []
        self._phases: dict[str, _Phase] = {}
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        # Queries answered NotSupported once are skipped afterwards: the answer never changes for a device.
        self._unsupported: set[str] = set()
        try:
            self._open(module)
        except NvmlUnavailable as exc:
            self.reason = str(exc)

    # --- setup -------------------------------------------------------------------------------------------------

    def _open(self, module: Any) -> None:
        """Load NVML and get the handle, or raise NvmlUnavailable (NVML shut down again on failure)."""
        nvml = load_nvml(module)
        nvml_error = _error_class(nvml, "NVMLError")
        try:
            count = nvml.nvmlDeviceGetCount()
            if not 0 <= self.device_index < count:
                raise NvmlUnavailable(f"no GPU at index {self.device_index} (NVML sees {count})")
            handle = nvml.nvmlDeviceGetHandleByIndex(self.device_index)
        except nvml_error as exc:
            _safe_shutdown(nvml)
            raise NvmlUnavailable(f"cannot open GPU {self.device_index}: {exc}") from None
        except NvmlUnavailable:
            _safe_shutdown(nvml)
            raise
        self._nvml, self._handle = nvml, handle
        self._nvml_error = nvml_error
        self._not_supported = _error_class(nvml, "NVMLError_NotSupported")
        self._function_not_found = _error_class(nvml, "NVMLError_FunctionNotFound")
        self._mem_v2 = self._memory_v2_version(nvml)
        # Newer name first; the old one is deprecated but is all an older driver/binding has.
        self._reason_fns = [
            getattr(nvml, name)
            for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
            if callable(getattr(nvml, name, None))
        ]

    @staticmethod
    def _memory_v2_version(nvml: Any) -> int | None:
        """The nvmlMemory_v2 version tag if this binding's nvmlDeviceGetMemoryInfo accepts `version`, else None."""
        version = getattr(nvml, "nvmlMemory_v2", None)
        try:
            accepts = "version" in inspect.signature(nvml.nvmlDeviceGetMemoryInfo).parameters
        except (TypeError, ValueError):
            accepts = False
        return version if accepts and version is not None else None

    @property
    def available(self) -> bool:
        """True when NVML and the device could be opened."""
        return self.reason is None

    # --- sampling ------------------------------------------------------------------------------------------------

    def _query(self, key: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call one NVML query; any NVMLError gives None for this sample (NotSupported: for all later ones too)."""
        if key in self._unsupported:
            return None
        try:
            return fn(*args, **kwargs)
        except self._not_supported:
            self._unsupported.add(key)
        except self._nvml_error:
            pass
        return None

    def _memory_used_bytes(self) -> int | None:
        """Used device memory; v2 (excludes driver-reserved memory) when the binding and driver support it."""
        nvml, handle = self._nvml, self._handle
        if self._mem_v2 is not None and "memory_v2" not in self._unsupported:
            try:
                return int(nvml.nvmlDeviceGetMemoryInfo(handle, version=self._mem_v2).used)
            except self._nvml_error:
                # Old drivers lack nvmlDeviceGetMemoryInfo_v2 (FunctionNotFound) or reject it: use v1 from now on.
                self._unsupported.add("memory_v2")
        memory = self._query("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
        return int(memory.used) if memory is not None else None

    def _reasons_mask(self) -> int | None:
        """Current clock throttle/event reasons bitmask via the newest function the driver has."""
        while self._reason_fns and "reasons" not in self._unsupported:
            try:
                return int(self._reason_fns[0](self._handle))
            except self._function_not_found:
                self._reason_fns.pop(0)
            except self._not_supported:
                self._unsupported.add("reasons")
            except self._nvml_error:
                return None
        return None

    def sample_once(self) -> Sample | None:
        """Take one sample now and store it (the thread calls this every period); None when unavailable or stopped."""
        if self._handle is None:
            return None
        nvml, handle = self._nvml, self._handle
        t_s = self._clock()
        util = self._query("util", nvml.nvmlDeviceGetUtilizationRates, handle)
        power_mw = self._query("power", nvml.nvmlDeviceGetPowerUsage, handle)
        clock_mhz = self._query("sm_clock", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        sample = Sample(
            t_s=t_s,
            util_pct=float(util.gpu) if util is not None else None,
            mem_util_pct=float(util.memory) if util is not None else None,
            mem_used_bytes=self._memory_used_bytes(),
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            sm_clock_mhz=float(clock_mhz) if clock_mhz is not None else None,
            reasons_mask=self._reasons_mask(),
        )
        with self._lock:
            self._samples.append(sample)
        return sample

    def _energy_mj(self) -> int | None:
        """Total energy counter since driver load (mJ), or None when unsupported/failed."""
        if self._handle is None:
            return None
        value = self._query("energy", self._nvml.nvmlDeviceGetTotalEnergyConsumption, self._handle)
        return int(value) if value is not None else None

    def _run(self) -> None:
        """Thread body: sample, then sleep on the stop event (no busy loop, wakes at once on stop)."""
        while True:
            try:
                self.sample_once()
            except Exception as exc:  # a bad reading must not end sampling for the rest of the run
                self.last_error = f"{type(exc).__name__}: {exc}"
            if self._stop_event.wait(self.period_s):
                return

    # --- public control ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon sampling thread; no-op when unavailable, stopped or already running."""
        if self._handle is None or self._thread is not None:
            return
        self._stop_event.clear()
        self._thread = threading.Thread(target=self._run, name=f"nvml-sampler-{self.device_index}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread, then nvmlShutdown; idempotent, no-op when unavailable."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 10 * self.period_s))
        if self._handle is not None:
            self._handle = None
            _safe_shutdown(self._nvml)

    def __enter__(self) -> NvmlSampler:
        """Start sampling."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop sampling."""
        self.stop()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Mark everything between enter and exit as phase `name`; samples at both ends so short phases count."""
        if self._handle is None:
            yield
            return
        # Sample before reading the counter on enter and after it on exit, so the window covers both.
        enter = self.sample_once()
        window = _Window(t_enter_s=enter.t_s if enter else self._clock(), energy_enter_mj=self._energy_mj())
        with self._lock:
            self._phases.setdefault(name, _Phase()).windows.append(window)
        try:
            yield
        finally:
            window.energy_exit_mj = self._energy_mj()
            exit_sample = self.sample_once()
            window.t_exit_s = exit_sample.t_s if exit_sample else self._clock()

    # --- results -------------------------------------------------------------------------------------------------

    def _window_samples(self, window: _Window) -> list[Sample]:
        """Samples taken inside one closed window."""
        with self._lock:
            return [s for s in self._samples if window.t_enter_s <= s.t_s <= window.t_exit_s]

    @staticmethod
    def _window_energy(window: _Window, samples: list[Sample]) -> tuple[float | None, str | None]:
        """Energy of one window (J) and its source: counter delta (wrap-safe) or power x time."""
        if window.energy_enter_mj is not None and window.energy_exit_mj is not None:
            delta_mj = (window.energy_exit_mj - window.energy_enter_mj) % ENERGY_COUNTER_MODULUS
            return delta_mj / 1000.0, "counter"
        energy_j = _trapezoid_energy_j(samples)
        return (energy_j, "power_x_time") if energy_j is not None else (None, None)

    def stats(self, name: str) -> GpuStats:
        """Aggregate of phase `name` over all its closed windows; available=False with the reason when not measured."""
        if self.reason is not None:
            return GpuStats(available=False, reason=self.reason)
        phase = self._phases.get(name)
        windows = [w for w in phase.windows if w.t_exit_s is not None] if phase else []
        if not windows:
            return GpuStats(available=False, reason=f"phase {name!r} was not recorded (or has not exited yet)")
        samples: list[Sample] = []
        duration_s = 0.0
        energy_j: float | None = 0.0
        sources: set[str] = set()
        for window in windows:
            in_window = self._window_samples(window)
            samples.extend(in_window)
            duration_s += window.t_exit_s - window.t_enter_s
            window_j, source = self._window_energy(window, in_window)
            if window_j is None:
                energy_j = None  # a partial total would understate the phase
            elif energy_j is not None:
                energy_j += window_j
                sources.add(source)
        util = [s.util_pct for s in samples if s.util_pct is not None]
        power = [s.power_w for s in samples if s.power_w is not None]
        used = [s.mem_used_bytes for s in samples if s.mem_used_bytes is not None]
        mask = 0
        for s in samples:
            mask |= s.reasons_mask or 0
        return GpuStats(
            available=True,
            samples=len(samples),
            duration_s=duration_s,
            util_mean_pct=_mean(util),
            util_p95_pct=float(np.percentile(util, 95)) if util else None,
            mem_util_mean_pct=_mean([s.mem_util_pct for s in samples if s.mem_util_pct is not None]),
            mem_used_peak_bytes=max(used) if used else None,
            power_mean_w=_mean(power),
            power_max_w=max(power) if power else None,
            sm_clock_mean_mhz=_mean([s.sm_clock_mhz for s in samples if s.sm_clock_mhz is not None]),
            throttle_reasons=sorted(decode_reasons(self._nvml, mask)) if mask else [],
            energy_j=energy_j,
            energy_source="+".join(sorted(sources)) if energy_j is not None else None,
        )

    def peak_used_bytes(self) -> int | None:
        """Highest device memory used over all samples (bytes), None if never measured."""
        with self._lock:
            used = [s.mem_used_bytes for s in self._samples if s.mem_used_bytes is not None]
        return max(used) if used else None

    @property
    def samples(self) -> list[Sample]:
        """A copy of all samples taken so far."""
        with self._lock:
            return list(self._samples)
