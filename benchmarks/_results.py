"""Append one measured figure to benchmarks/results/speed.csv (with machine and date)."""
from __future__ import annotations

import csv
import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def append_result(name: str, value: float, unit: str, setting: str, command: str, device: str = "cpu") -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "speed.csv"
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if new:
            w.writerow(["date", "machine", "cores", "device", "name", "value", "unit", "setting", "command"])
        w.writerow([datetime.date.today().isoformat(), platform.processor() or platform.machine(),
                    os.cpu_count(), device, name, f"{value:.4g}", unit, setting, command])
