"""The bench record: what ran, where, on what, and every run's raw figures.

:class:`BenchRecord` collects the runs as the runner finishes them; :meth:`BenchRecord.to_dict`
is the JSON document (its schema is :data:`tedchat.bench.schema.RECORD_SCHEMA`, documented in
the README). The command rewrites the file as batches finish, atomically, so a bench that is
stopped (Ctrl-C) or dies leaves its finished runs on disk, marked ``incomplete``.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tedchat.bench.prompts import Prompt
from tedchat.bench.schema import SCHEMA_NAME, SCHEMA_VERSION
from tedchat.bench.stats import summarize
from tedchat.engine import Engine


def now_iso() -> str:
    """The wall-clock time, ISO 8601 in UTC with milliseconds (for records, not for timing)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class BenchRecord:
    """A bench in progress or done. ``engines`` entries are updated by the runner."""

    config: dict[str, Any]
    prompts: Sequence[Prompt]
    engines: list[dict[str, Any]]
    machine: dict[str, Any] = field(default_factory=lambda: machine_info())
    versions: dict[str, Any] = field(default_factory=lambda: versions_info())
    started_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    # Until the runner says it is done, a record on disk is a checkpoint of a running bench.
    incomplete: bool = True
    incomplete_reason: str | None = "the bench was still running when this was written"

    def engine(self, name: str) -> dict[str, Any]:
        """The record's entry for engine ``name``."""
        return next(e for e in self.engines if e["name"] == name)

    def finish(self, reason: str | None = None) -> None:
        """Mark the bench over: complete, or incomplete for ``reason``."""
        self.finished_at = now_iso()
        self.versions = versions_info()  # llama_cpp is imported by now if an engine used it
        self.incomplete = reason is not None
        self.incomplete_reason = reason

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, with the summary computed from the runs so far."""
        names = [e["name"] for e in self.engines]
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "incomplete": self.incomplete,
            "incomplete_reason": self.incomplete_reason,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "config": self.config,
            "machine": self.machine,
            "versions": self.versions,
            "prompts": [{"id": p.id, "text": p.text, "system": p.system} for p in self.prompts],
            "engines": self.engines,
            "runs": self.runs,
            "batches": self.batches,
            "summary": summarize(self.runs, self.batches, names, [p.id for p in self.prompts]),
        }


def engine_entry(info: Mapping[str, Any], engine: Engine) -> dict[str, Any]:
    """An engine's entry in the record, before it runs.

    ``info`` is ``engines.describe(name)`` from the registry: type, plugin, origin and the
    settings with every secret replaced. The runner fills in the rest as the bench goes.
    """
    return {
        "name": info["name"],
        "type": info["type"],
        "model": engine.model,
        "local": engine.local,
        "plugin": info.get("plugin"),
        "origin": info["origin"],
        "settings": info["settings"],
        "details": None,  # the engine's own describe() (redacted), once loaded
        "load_s": None,
        "load_error": None,
        "cache_cleared": None,  # True: cleared before every run; False: not (see cache_note)
        "cache_note": None,
    }


# --- files ---------------------------------------------------------------------------------


# Lists written one item a line: a record's bulk (texts, token ids) stays greppable and diffable,
# and a 1,000-run record is written in a third of the time fully indented JSON takes.
ONE_PER_LINE = ("runs", "batches")


def dumps_record(data: Mapping[str, Any]) -> str:
    """The record as JSON text: indented, except one run (and one batch) per line."""
    fields = []
    for key, value in data.items():
        if key in ONE_PER_LINE and value:
            items = ",\n".join(
                "    " + json.dumps(item, ensure_ascii=False, allow_nan=False) for item in value
            )
            text = f"[\n{items}\n  ]"
        else:
            text = json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False)
            text = text.replace("\n", "\n  ")
        fields.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def write_json(data: Mapping[str, Any], path: Path) -> None:
    """Write the record atomically: a reader (or a Ctrl-C) never sees half a file."""
    write_text(path, dumps_record(data))


# One row per run, for spreadsheets; the JSON record holds everything else.
CSV_COLUMNS = (
    "engine",
    "model",
    "prompt_id",
    "phase",
    "round",
    "batch",
    "slot",
    "started_at",
    "ttft_s",
    "output_tokens_per_s",
    "output_tokens",
    "output_tokens_source",
    "prompt_tokens",
    "elapsed_s",
    "finish_reason",
    "cache_cleared",
    "error",
    "emulated_ttft_s",
    "emulated_output_tokens_per_s",
    "emulated_acceptance_rate",
)


def write_csv(data: Mapping[str, Any], path: Path) -> None:
    """One row per run (warm-up runs included, marked by ``phase``)."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for run in data["runs"]:
        row = dict(run)
        emulated = run.get("emulated") or {}
        row["emulated_ttft_s"] = emulated.get("ttft_s")
        row["emulated_output_tokens_per_s"] = emulated.get("output_tokens_per_s")
        row["emulated_acceptance_rate"] = (emulated.get("speculative") or {}).get("acceptance_rate")
        writer.writerow(row)
    write_text(path, buffer.getvalue())


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so the file is whole or untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the machine and the software ----------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the figures were measured on. The load average tells a busy machine from an idle one."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "arch": platform.machine(),
        "load_average": load,
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
                    return value.strip() or None
    except OSError:
        pass
    if sys.platform == "darwin":
        return _sysctl("machdep.cpu.brand_string")
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform == "darwin":
        value = _sysctl("hw.memsize")
        return int(value) if value and value.isdigit() else None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def versions_info() -> dict[str, Any]:
    """Versions of what the figures depend on; None for what is not installed."""
    from tedchat import __version__

    llama = sys.modules.get("llama_cpp")  # loaded already when a llamacpp engine ran
    llama_version = getattr(llama, "__version__", None) or _dist_version("llama_cpp_python")
    return {
        "tedchat": __version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "llama_cpp": llama_version,
        "textual": _dist_version("textual"),
        "numpy": _dist_version("numpy"),
    }


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
