"""Hardware profiles for the wafer virtual clock: data, not code.

Each profile is a frozen dataclass of plain numbers in SI units (bytes, bytes/s, FLOP/s,
seconds, Hz). Beside the numbers, ``sources`` labels every figure with exactly one of three
provenances:

- ``spec``: a published figure, with its ``source`` (a document named in ``docs/hardware.md``)
  and its ``basis``: ``primary`` (the maker's own figure), ``secondary`` (quoted by secondary
  sources only, not confirmed by a primary one) or ``derived`` (computed from published
  figures, e.g. a unit conversion);
- ``fitted``: a constant of the timing model whose value was fitted on published measurements;
  ``fitted_on`` names the rows (ids of :data:`tedchat.wafer.validation.ROWS`, all in-sample
  there);
- ``assumed``: a constant chosen by reasoning, fitted on nothing; the note gives the reasoning.

Constants of the timing model (fitted or assumed) also carry a physically plausible range; the
tests check that every value lies in it. The timing model (:mod:`tedchat.wafer.timing`) reads
only these profiles: the same profile object serves every model shape, so nothing in it can be
tuned to one model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal

ProvenanceKind = Literal["spec", "fitted", "assumed"]
SpecBasis = Literal["primary", "secondary", "derived"]

#: The in-sample rows the fitted wafer constants were fitted on (ids in
#: :data:`tedchat.wafer.validation.ROWS`; a test checks).
CS3_DECODE_ROWS = ("cs3-llama-3.1-8b-aug2024", "cs3-llama-3.1-70b-aug2024")


@dataclass(frozen=True)
class Provenance:
    """Where one figure of a profile comes from (see the module docstring).

    ``source`` and ``basis`` belong to ``spec`` only, ``fitted_on`` to ``fitted`` only;
    ``plausible`` (timing-model constants, fitted or assumed) is the range a physically
    sensible value must lie in.
    """

    kind: ProvenanceKind
    note: str
    source: str | None = None
    basis: SpecBasis | None = None
    fitted_on: tuple[str, ...] = ()
    plausible: tuple[float, float] | None = None


def _spec(note: str, source: str, basis: SpecBasis = "primary") -> Provenance:
    return Provenance("spec", note, source=source, basis=basis)


def _assumed(note: str, low: float | None = None, high: float | None = None) -> Provenance:
    plausible = (low, high) if low is not None and high is not None else None
    return Provenance("assumed", note, plausible=plausible)


def _fitted(low: float, high: float, rows: tuple[str, ...], why: str) -> Provenance:
    return Provenance("fitted", why, fitted_on=rows, plausible=(low, high))


@dataclass(frozen=True)
class WaferProfile:
    """A Cerebras wafer-scale system (one wafer per system).

    Published figures first, then the timing model's constants (fitted or assumed). Grid
    rows x cols is the processing-element array as the Cerebras SDK addresses it
    (``--fabric-dims`` width,height = cols,rows).
    """

    name: str
    label: str
    # --- published figures ---
    cores: int
    sram_bytes: float
    sram_bandwidth: float  # bytes/s, whole wafer
    fabric_bandwidth: float  # bytes/s, whole wafer (published in bits/s)
    grid_rows: int
    grid_cols: int
    peak_flops: float  # FLOP/s as published (sparse FP16)
    system_io_bandwidth: float  # bytes/s in and out of one system
    clock_hz: float
    # --- constants of the timing model (per hardware; fitted or assumed) ---
    usable_sram_fraction: float
    dense_compute_fraction: float
    hop_latency_s: float
    reduction_overhead_s: float
    layer_handoff_s: float
    link_latency_s: float
    sources: Mapping[str, Provenance] = field(default_factory=dict, compare=False, hash=False)

    kind: ClassVar[str] = "wafer"

    @property
    def sram_bytes_per_core(self) -> float:
        """SRAM of one processing element (derived: SRAM / cores)."""
        return self.sram_bytes / self.cores

    @property
    def usable_bytes_per_core(self) -> float:
        """SRAM per core left for weights and KV cache after code and buffers."""
        return self.sram_bytes_per_core * self.usable_sram_fraction

    @property
    def sram_bandwidth_per_core(self) -> float:
        """Bytes/s one core reads from its own SRAM (aggregate / cores)."""
        return self.sram_bandwidth / self.cores

    @property
    def dense_flops_per_core(self) -> float:
        """Dense FLOP/s one core achieves on the matrix-vector work of a layer."""
        return self.peak_flops * self.dense_compute_fraction / self.cores

    @property
    def grid_cores(self) -> int:
        """Processing elements the SDK can address (rows x cols)."""
        return self.grid_rows * self.grid_cols

    @property
    def usable_bytes(self) -> float:
        """Bytes of one system's grid available to weights and KV cache."""
        return self.grid_cores * self.usable_bytes_per_core


@dataclass(frozen=True)
class GpuProfile:
    """A GPU (one device per "system"; several form a tensor-parallel group)."""

    name: str
    label: str
    # --- published figures ---
    memory_bytes: float
    hbm_bandwidth: float  # bytes/s
    bf16_flops: float  # dense BF16 FLOP/s
    interconnect_bandwidth: float  # bytes/s per GPU (NVLink, total)
    # --- constants of the timing model (per hardware; fitted or assumed) ---
    usable_memory_fraction: float
    hbm_efficiency: float
    compute_efficiency: float
    kernel_overhead_s: float
    allreduce_latency_s: float
    sources: Mapping[str, Provenance] = field(default_factory=dict, compare=False, hash=False)

    kind: ClassVar[str] = "gpu"

    @property
    def usable_bytes(self) -> float:
        """Bytes of one GPU's memory available to weights and KV cache."""
        return self.memory_bytes * self.usable_memory_fraction


HardwareProfile = WaferProfile | GpuProfile

# ---------------------------------------------------------------------------------------------
# Wafer-scale systems
# ---------------------------------------------------------------------------------------------

_WSE3 = "Cerebras WSE-3 announcement"
_WSE2 = "Cerebras WSE-2 announcement"
_WSE3_GRID = "SDK `--fabric-dims` used in public WSE-3 kernels"
_WSE2_GRID = "SDK `--fabric-dims` used in public WSE-2 kernels"

# The wafer timing model has one fitted constant, the per-hop latency, fitted (least squares in
# log tokens/s, the others held at their assumed values) on the two public CS-3 decode rows of
# docs/hardware.md (Llama 3.1 8B on 1 CS-3 ~1,800 tok/s; Llama 3.1 70B on 4 CS-3 ~450 tok/s):
# the fit gives 6.9 ns, kept as 7 ns. Two rows cannot pin more than that; the other latency
# constants are assumed, from the reasoning in their notes, and the fit depends on them.
_WAFER_CONSTANTS: dict[str, Provenance] = {
    "usable_sram_fraction": _assumed(
        "0.875 = 42 of 48 KB per core for weights/KV; ~6 KB holds the core's program, "
        "activation and partial-sum buffers and routing state (it decides what fits, and "
        "agrees with Cerebras' '70B models on as few as four systems')",
        0.70,
        0.95,
    ),
    "dense_compute_fraction": _assumed(
        "0.125: the 125 PF figure counts sparse FP16; dense is about 900k cores x 1 GHz x 8 "
        "FP16 FMA (16 FLOP) per cycle = 14 PF, i.e. ~1/8 of it (not constrained by the decode "
        "rows, where SRAM reads and latency dominate; it sets prefill speed)",
        0.05,
        0.5,
    ),
    "hop_latency_s": _fitted(
        1e-9,
        20e-9,
        CS3_DECODE_ROWS,
        "7 ns per mesh hop of a reduce-and-forward chain: ~1 cycle in the router plus a few "
        "cycles for each core to receive, add its partial sum and send on (the dominant "
        "decode term: hops grow with each layer's region)",
    ),
    "reduction_overhead_s": _assumed(
        "0.2 us (~200 cycles) fixed per dependent reduction phase: task activation, "
        "synchronisation of the region's cores and the tail of the vector stream",
        0.05e-6,
        2e-6,
    ),
    "layer_handoff_s": _assumed(
        "1 us per layer: moving the activation vector from one layer's region to the next "
        "(hundreds of hops at the region edges) and waking that layer's tasks",
        0.2e-6,
        5e-6,
    ),
    "link_latency_s": _assumed(
        "10 us one way between systems: 100 GbE with RDMA through a switch is a few us, plus "
        "the path from the wafer edge through the system's I/O to the network",
        1e-6,
        50e-6,
    ),
}

CS3 = WaferProfile(
    name="cs3",
    label="Cerebras CS-3 (WSE-3)",
    cores=900_000,
    sram_bytes=44e9,
    sram_bandwidth=21e15,
    fabric_bandwidth=214e15 / 8,
    grid_rows=1172,
    grid_cols=762,
    peak_flops=125e15,
    system_io_bandwidth=1.2e12 / 8,
    clock_hz=1e9,
    usable_sram_fraction=0.875,
    dense_compute_fraction=0.125,
    hop_latency_s=7e-9,
    reduction_overhead_s=0.2e-6,
    layer_handoff_s=1e-6,
    link_latency_s=10e-6,
    sources=MappingProxyType(
        {
            "cores": _spec("900,000 cores", _WSE3),
            "sram_bytes": _spec("44 GB on-chip SRAM (48 KB per core)", _WSE3),
            "sram_bandwidth": _spec("21 PB/s aggregate SRAM bandwidth", _WSE3),
            "fabric_bandwidth": _spec(
                "214 Pb/s aggregate, 2-D mesh to 4 neighbours (stored in bytes/s)", _WSE3
            ),
            "grid_rows": _spec("--fabric-dims=762,1172 (width,height)", _WSE3_GRID),
            "grid_cols": _spec("--fabric-dims=762,1172 (width,height)", _WSE3_GRID),
            "peak_flops": _spec("125 PFLOP/s peak (sparse FP16)", _WSE3),
            "system_io_bandwidth": _spec(
                "1.2 Tb/s per CS-3, 12 x 100 GbE (stored in bytes/s)", "Cerebras CS-3 spec"
            ),
            "clock_hz": _spec(
                "about 1 GHz; no primary confirmation", "secondary sources", basis="secondary"
            ),
            **_WAFER_CONSTANTS,
        }
    ),
)

# No public CS-2 inference rows: CS-3's constants carry over (WSE-2 and WSE-3 share the core,
# router and mesh design), so on CS-2 every one of them is assumed.
_CS2_CONSTANTS: dict[str, Provenance] = {
    key: _assumed(
        prov.note
        + (
            f" (fitted on CS-3 rows {', '.join(prov.fitted_on)}; carried over to WSE-2, "
            "which shares the core, router and mesh design)"
            if prov.kind == "fitted"
            else " (as on CS-3; WSE-2 shares the core, router and mesh design)"
        ),
        *(prov.plausible or (None, None)),
    )
    for key, prov in _WAFER_CONSTANTS.items()
}

CS2 = WaferProfile(
    name="cs2",
    label="Cerebras CS-2 (WSE-2)",
    cores=850_000,
    sram_bytes=40e9,
    sram_bandwidth=20e15,
    fabric_bandwidth=220e15 / 8,
    grid_rows=996,
    grid_cols=757,
    # No peak figure for WSE-2 in docs/hardware.md: assume WSE-3's per-core rate.
    peak_flops=125e15 / 900_000 * 850_000,
    system_io_bandwidth=1.2e12 / 8,
    clock_hz=1e9,
    usable_sram_fraction=CS3.usable_sram_fraction,
    dense_compute_fraction=CS3.dense_compute_fraction,
    hop_latency_s=CS3.hop_latency_s,
    reduction_overhead_s=CS3.reduction_overhead_s,
    layer_handoff_s=CS3.layer_handoff_s,
    link_latency_s=CS3.link_latency_s,
    sources=MappingProxyType(
        {
            "cores": _spec("850,000 cores", _WSE2),
            "sram_bytes": _spec("40 GB on-chip SRAM", _WSE2),
            "sram_bandwidth": _spec("20 PB/s aggregate SRAM bandwidth", _WSE2),
            "fabric_bandwidth": _spec("220 Pb/s aggregate (stored in bytes/s)", _WSE2),
            "grid_rows": _spec("--fabric-dims=757,996 (width,height)", _WSE2_GRID),
            "grid_cols": _spec("--fabric-dims=757,996 (width,height)", _WSE2_GRID),
            "peak_flops": _assumed(
                "no WSE-2 figure in docs/hardware.md: WSE-3's per-core rate (125 PF / 900k "
                "cores) times 850k cores"
            ),
            "system_io_bandwidth": _assumed(
                "12 x 100 GbE as on CS-3: no CS-2 figure in docs/hardware.md, same chassis I/O"
            ),
            "clock_hz": _assumed("about 1 GHz, as WSE-3: no WSE-2 figure in docs/hardware.md"),
            **_CS2_CONSTANTS,
        }
    ),
)

# ---------------------------------------------------------------------------------------------
# GPUs: every figure below comes from the GPU's own spec sheet; nothing is scaled from the wafer.
# No public GPU row was fitted on, so every constant of the GPU timing model is assumed.
# ---------------------------------------------------------------------------------------------


def _gpu_constants(product: str) -> dict[str, Provenance]:
    return {
        "usable_memory_fraction": _assumed(
            f"0.85 of {product} memory: vLLM's default 0.9 utilisation minus CUDA context, "
            "cuBLAS/NCCL workspaces and activation buffers",
            0.7,
            0.95,
        ),
        "hbm_efficiency": _assumed(
            "0.75 of peak HBM bandwidth: large GEMV kernels reach ~80-90% in microbenchmarks, "
            "a whole decode step with small kernels and attention reaches less (fitted on "
            "no measured row)",
            0.5,
            0.95,
        ),
        "compute_efficiency": _assumed(
            "0.5 of dense BF16 peak (model FLOPs utilisation) for prefill GEMMs, typical of "
            "tuned inference stacks on long prompts (fitted on no measured row)",
            0.2,
            0.8,
        ),
        "kernel_overhead_s": _assumed(
            "2 us per kernel: launch (amortised by CUDA graphs) plus ramp-up/tail of small "
            "kernels that cannot fill all SMs at batch 1",
            0.5e-6,
            10e-6,
        ),
        "allreduce_latency_s": _assumed(
            "5 us per small tensor-parallel all-reduce over NVLink (custom all-reduce kernels; "
            "NCCL's ring is ~10 us)",
            2e-6,
            30e-6,
        ),
    }


def _gpu(
    name: str,
    label: str,
    memory: float,
    hbm: float,
    flops: float,
    link: float,
    sheet: str,
) -> GpuProfile:
    return GpuProfile(
        name=name,
        label=label,
        memory_bytes=memory,
        hbm_bandwidth=hbm,
        bf16_flops=flops,
        interconnect_bandwidth=link,
        usable_memory_fraction=0.85,
        hbm_efficiency=0.75,
        compute_efficiency=0.5,
        kernel_overhead_s=2e-6,
        allreduce_latency_s=5e-6,
        sources=MappingProxyType(
            {
                "memory_bytes": _spec(f"{memory / 1e9:.0f} GB of memory", sheet),
                "hbm_bandwidth": _spec(f"{hbm / 1e12:.2f} TB/s HBM", sheet),
                "bf16_flops": _spec(f"{flops / 1e12:.0f} TFLOP/s dense BF16", sheet),
                "interconnect_bandwidth": _spec(f"NVLink {link / 1e9:.0f} GB/s", sheet),
                **_gpu_constants(label),
            }
        ),
    )


H100 = _gpu(
    "h100", "NVIDIA H100 SXM", 80e9, 3.35e12, 989e12, 900e9, "NVIDIA H100 Tensor Core GPU datasheet"
)
H200 = _gpu(
    "h200", "NVIDIA H200 SXM", 141e9, 4.8e12, 989e12, 900e9, "NVIDIA H200 Tensor Core GPU datasheet"
)
A100 = _gpu(
    "a100",
    "NVIDIA A100 SXM 80GB",
    80e9,
    2.0e12,
    312e12,
    600e9,
    "NVIDIA A100 Tensor Core GPU datasheet",
)

#: Every profile by name. Read-only: a variant for an experiment is made with
#: ``dataclasses.replace(HARDWARE["h100"], hbm_bandwidth=...)``, never by editing one in place.
HARDWARE: Mapping[str, HardwareProfile] = MappingProxyType(
    {p.name: p for p in (CS3, CS2, H100, H200, A100)}
)


def get_hardware(name: str) -> HardwareProfile:
    """The profile called ``name`` (case-insensitive, ``cs-3`` = ``cs3``).

    Raises:
        KeyError: with the list of known names.
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    try:
        return HARDWARE[key]
    except KeyError:
        known = ", ".join(HARDWARE)
        raise KeyError(f"unknown hardware {name!r}: choose one of {known}") from None
