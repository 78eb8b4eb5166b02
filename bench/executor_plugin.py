"""An Airflow plugin for the executor contestant (bench/contestant_executor.py): a task listener that
measures each task instance in its own task process and appends one JSON line per task instance to
the file named by $ZUORA_BENCH_TASK_MEMORY.

The contestant symlinks this file into a temporary plugins folder beside the project's plugins; it is
never part of the project's plugins/. The Task SDK calls the listener in the task runner process
(the child the supervisor forks for one task instance): at `running` it resets the kernel's RSS
high-water mark (/proc/self/clear_refs, 5) and notes VmRSS; at success or failure it reads VmHWM (the
exact peak RSS since the reset, no sampling gap) and PSS / private memory from /proc/self/smaps_rollup
(RSS counts pages shared copy-on-write with the forking worker in full; PSS splits them).

Without $ZUORA_BENCH_TASK_MEMORY the listener does nothing.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk._shared.listeners import hookimpl

ENV_VAR = "ZUORA_BENCH_TASK_MEMORY"


def _status_mib(key: str) -> float | None:
    """A line of /proc/self/status (VmRSS, VmHWM) in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _smaps_rollup_mib() -> dict[str, float]:
    """Pss and Private_Clean/Private_Dirty of /proc/self/smaps_rollup in MiB (Linux >= 4.14)."""
    out: dict[str, float] = {}
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Pss", "Private_Clean", "Private_Dirty"):
                out[key.lower() + "_mib"] = round(int(rest.split()[0]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return out


class TaskProcessMemory:
    """The listener: at most one task instance runs in a task process at a time."""

    def __init__(self) -> None:
        self._current: dict[str, Any] | None = None

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        if not os.environ.get(ENV_VAR):
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            exact = True
        except OSError:
            exact = False
        self._current = {
            "task_id": task_instance.task_id,
            "map_index": getattr(task_instance, "map_index", -1),
            "run_id": getattr(task_instance, "run_id", None),
            "try_number": getattr(task_instance, "try_number", None),
            "rss_start_mib": _status_mib("VmRSS"),
            "exact": exact,
            "_t0": time.perf_counter(),
        }

    def _end(self, task_instance: Any, state: str) -> None:
        cur, self._current = self._current, None
        path = os.environ.get(ENV_VAR)
        # Only in the process that saw the task start (the scheduler may call `failed` for a task
        # instance it fails from outside; that is not a task process).
        if not path or cur is None or cur["task_id"] != task_instance.task_id:
            return
        cur["seconds"] = round(time.perf_counter() - cur.pop("_t0"), 3)
        cur["peak_rss_mib"] = _status_mib("VmHWM")
        cur["rss_end_mib"] = _status_mib("VmRSS")
        cur.update(_smaps_rollup_mib())
        cur.update(state=state, pid=os.getpid(), ppid=os.getppid(), host=socket.gethostname())
        # One write of one short line to a file opened O_APPEND: lines of parallel tasks do not mix.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(cur) + "\n").encode())
        finally:
            os.close(fd)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._end(task_instance, "success")

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any = None) -> None:
        self._end(task_instance, "failed")

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self._end(task_instance, "skipped")


class ZuoraBenchTaskMemoryPlugin(AirflowPlugin):
    """Registers the task memory listener (bench only)."""

    name = "zuora_bench_task_memory"
    listeners = [TaskProcessMemory()]
