"""Is the process that began a streaming reply still running?

While a reply streams its row carries the writer's pid and process start time; when a store
is opened, replies whose writer is gone are marked ``interrupted`` (partial text kept), and
replies whose writer still runs are left alone. The start time (``/proc/<pid>/stat`` field 22,
plus the boot id) is what tells a live writer from an unrelated process that reused its pid.
Where there is no ``/proc``, the pid alone is checked.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc/<pid>/stat, None if absent."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    rest = data[data.rindex(b")") + 2 :].split()
    return rest[0].decode(), rest[19].decode()  # fields 3 and 22


def _process_start(pid: int) -> str | None:
    """An identity for the process's start (boot id + start ticks); None where /proc is absent."""
    stat = _proc_stat(pid)
    if stat is None:
        return None
    return f"{_boot_id()}:{stat[1]}"


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would *terminate* the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_alive(pid: int | None, start: str | None) -> bool:
    """Is the process that began a reply still running? Unknown counts as alive: leaving a
    dead reply unmarked until the next open is harmless, marking a live one is not."""
    if pid is None:
        return False
    if start is not None and Path("/proc").is_dir():
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or a zombie waiting to be reaped
            return False
        return f"{_boot_id()}:{stat[1]}" == start
    return _pid_alive(pid)


@functools.lru_cache(maxsize=4)
def _writer_identity(pid: int) -> tuple[int, str | None]:
    return pid, _process_start(pid)


def own_writer_identity() -> tuple[int, str | None]:
    """(pid, start identity) of this process, stored on the rows of the replies it writes."""
    # Keyed by pid, not cached once: a forked child is a different writer.
    return _writer_identity(os.getpid())
