"""Machines told apart: host + GPU or CPU model + cores, the id only where that still clashes; every table uses it."""

from __future__ import annotations

import csv
from pathlib import Path

from suite.record.machines import hardware_name, machine_labels
from suite.record.metrics import METRIC_BY_KEY
from suite.record.schema import Machine
from suite.record.store import read_store, write_record
from suite.report.compare import Thresholds, compare
from suite.report.page import ReportInputs, build_report
from suite.report.table import runs_table, summary_table
from tests.conftest import REPO

STORE_A = REPO / "tests" / "fixtures" / "store_a"

H200 = {"machine_id": "322a1688b951", "hostname": "vm", "cpu_model": "Intel(R) Xeon(R) Processor", "cpu_cores_logical": 16,
        "gpus": [{"index": 0, "name": "NVIDIA H200", "memory_total_bytes": 150754820096}]}
CPU_VM = {"machine_id": "904ab05c32f0", "hostname": "vm", "cpu_model": "Intel(R) Xeon(R) Processor", "cpu_cores_logical": 2,
          "gpus": []}


def machine(**fields: object) -> Machine:
    return Machine.model_validate({"ram_bytes": 2**34, "os": "Linux", "python": "3.11", **fields})


def test_two_hosts_named_vm_differ_by_gpu_and_cores_without_an_id():
    labels = machine_labels([machine(**H200), machine(**CPU_VM)])
    assert labels == {"322a1688b951": "vm (NVIDIA H200, 16 cores)", "904ab05c32f0": "vm (Intel Xeon Processor, 2 cores)"}


def test_the_id_is_added_only_where_host_hardware_and_cores_clash():
    twin = {**CPU_VM, "machine_id": "aaaabbbbcccc"}
    labels = machine_labels([machine(**H200), machine(**CPU_VM), machine(**twin)])
    assert labels["322a1688b951"] == "vm (NVIDIA H200, 16 cores)"
    assert labels["904ab05c32f0"] == "vm (Intel Xeon Processor, 2 cores, id 904ab05c32f0)"
    assert labels["aaaabbbbcccc"] == "vm (Intel Xeon Processor, 2 cores, id aaaabbbbcccc)"


def test_hardware_name_counts_gpus_and_drops_the_clock_tail():
    eight = machine(**{**H200, "gpus": [{"name": "NVIDIA H100"}] * 8})
    assert hardware_name(eight) == "8× NVIDIA H100"
    xeon = machine(**{**CPU_VM, "cpu_model": "Intel(R) Xeon(R) CPU @ 2.20GHz"})
    assert hardware_name(xeon) == "Intel Xeon"
    assert hardware_name(machine(**{**CPU_VM, "cpu_model": "Test CPU (box-2)"})) == "Test CPU (box-2)"


def _two_vms(tmp_path: Path) -> Path:
    """The fixture store, once as made on the H200 box and once on the CPU VM: both hosts are called vm."""
    records, _ = read_store([STORE_A])
    out = tmp_path / "two"
    for record in records:
        for fields in (H200, CPU_VM):
            copy = record.model_copy(update={"machine": record.machine.model_copy(update=fields),
                                             "run_id": f"{fields['machine_id']}{record.run_id[12:]}"})
            write_record(copy, out)
    return out


def test_show_report_csv_and_compare_name_both_vms_apart(tmp_path: Path):
    store = _two_vms(tmp_path)
    records, _ = read_store([store])
    names = {"vm (NVIDIA H200, 16 cores)", "vm (Intel Xeon Processor, 2 cores)"}
    assert set(summary_table(records)["machine"]) == names
    assert set(runs_table(records)["machine"]) == names
    page, _ = build_report(ReportInputs(results=[store], out=tmp_path / "report"))
    html = page.read_text(encoding="utf-8")
    assert all(f"@{name}" in html for name in names)
    with (tmp_path / "report" / "summary.csv").open(encoding="utf-8") as handle:
        assert {row["machine"] for row in csv.DictReader(handle)} == names
    h200 = [r for r in records if r.machine.machine_id == H200["machine_id"]]
    cpu = [r for r in records if r.machine.machine_id == CPU_VM["machine_id"]]
    result = compare(h200, cpu, [METRIC_BY_KEY["test_accuracy"]], Thresholds())
    assert result.note and "vm (NVIDIA H200, 16 cores)" in result.note and "vm (Intel Xeon Processor, 2 cores)" in result.note
