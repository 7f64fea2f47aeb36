"""Placement: which system, and which rectangle of its core grid, holds each part of a model.

On a wafer every part (token embeddings, each decoder block, the output head) gets its own
rectangular region of one system's core grid, sized by its weight bytes plus its KV-cache
reservation for ``context x sequences`` tokens. Weights never move once placed: a model must fit
in SRAM or it is refused, with the number of systems it would need. Parts are split contiguously
across systems (a pipeline: system 0 holds the embeddings and the first blocks, the last system
the last blocks and the head), balanced by bytes.

On a GPU, "placement" is tensor parallelism over ``systems`` GPUs: every GPU holds 1/N of every
block, and the model fits if weights plus KV cache fit in the GPUs' memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from tedchat.wafer.hardware import GpuProfile, HardwareProfile, WaferProfile
from tedchat.wafer.shapes import ModelShape, bytes_per_weight

RegionKind = Literal["embed", "layer", "head"]

#: Strip counts tried when packing a system's grid (see :func:`_pack`); more than this makes
#: regions narrower than they are tall for every model shape we meet.
_MAX_STRIPS = 48

#: Tensor-parallel degrees tried for GPUs: powers of two, as head counts divide evenly by them.
_GPU_COUNTS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Region:
    """One part of the model on one system: a rectangle of cores (wafer) or a 1/N share (GPU).

    ``layer`` is the block index for ``kind == "layer"``, else ``"embed"`` or ``"head"``.
    On GPUs the geometry fields are 0.
    """

    kind: RegionKind
    layer: int | str
    system: int
    row0: int
    col0: int
    rows: int
    cols: int
    weight_bytes: int
    kv_bytes: int

    @property
    def cores(self) -> int:
        """Cores in the rectangle."""
        return self.rows * self.cols

    @property
    def bytes(self) -> int:
        """Weights plus KV reservation held by the region."""
        return self.weight_bytes + self.kv_bytes

    @property
    def span_hops(self) -> int:
        """Mesh hops to cross the region (a reduction or broadcast across it): rows + cols."""
        return self.rows + self.cols

    @property
    def label(self) -> str:
        """Short name for tables and floorplans: ``E``, ``H`` or the block index."""
        if self.kind == "embed":
            return "E"
        if self.kind == "head":
            return "H"
        return str(self.layer)


@dataclass(frozen=True)
class SystemUse:
    """What one system (one wafer, or one GPU) holds."""

    index: int
    regions: tuple[Region, ...]
    weight_bytes: int
    kv_bytes: int
    capacity_bytes: float
    memory_bytes: float
    cores_used: int
    grid_cores: int
    first_layer: int | None
    last_layer: int | None
    has_embed: bool
    has_head: bool
    fits: bool

    @property
    def used_bytes(self) -> int:
        """Weights plus KV reservation."""
        return self.weight_bytes + self.kv_bytes

    @property
    def utilisation(self) -> float:
        """Used bytes over the system's physical SRAM (wafer) or HBM (GPU)."""
        return self.used_bytes / self.memory_bytes

    @property
    def layer_count(self) -> int:
        """Decoder blocks on this system."""
        if self.first_layer is None or self.last_layer is None:
            return 0
        return self.last_layer - self.first_layer + 1

    @property
    def layer_range(self) -> str:
        """``"0-19"``-style description including ``embed``/``head``."""
        parts = []
        if self.has_embed:
            parts.append("embed")
        if self.first_layer is not None:
            parts.append(f"layers {self.first_layer}-{self.last_layer}")
        if self.has_head:
            parts.append("head")
        return " + ".join(parts) or "(empty)"


@dataclass(frozen=True)
class Placement:
    """A model on ``n_systems`` systems of one hardware profile.

    ``mode`` is ``"pipeline"`` (wafers: one stage per system) or ``"tensor_parallel"`` (GPUs:
    one stage spanning all of them). If ``fits`` is False, ``systems`` shows the byte split
    that was attempted (without regions), ``reason`` says why, and ``min_systems`` how many
    systems it would need (None if no number of systems can hold it).
    """

    shape: ModelShape
    hardware: HardwareProfile
    mode: Literal["pipeline", "tensor_parallel"]
    n_systems: int
    context: int
    sequences: int
    precision: int
    systems: tuple[SystemUse, ...]
    fits: bool
    min_systems: int | None
    reason: str = ""

    @property
    def regions(self) -> tuple[Region, ...]:
        """Every region of every system, in pipeline order."""
        return tuple(r for s in self.systems for r in s.regions)

    @property
    def n_stages(self) -> int:
        """Pipeline stages: one per wafer, one for a tensor-parallel GPU group."""
        return self.n_systems if self.mode == "pipeline" else 1

    @property
    def weight_bytes(self) -> int:
        """Weight bytes placed over all systems."""
        return sum(s.weight_bytes for s in self.systems)

    @property
    def kv_bytes(self) -> int:
        """KV reservation over all systems."""
        return sum(s.kv_bytes for s in self.systems)


@dataclass(frozen=True)
class _Unit:
    kind: RegionKind
    layer: int | str
    weight_bytes: int
    kv_bytes: int

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.kv_bytes


def _units(shape: ModelShape, precision: int, context: int, sequences: int) -> list[_Unit]:
    """The parts to place, in pipeline order.

    A tied model's matrix is stored twice on a wafer: the lookup runs on the first system and
    the output projection on the last, and shipping each token's hidden state back to the
    first system would cost a link crossing per token.
    """
    kv = shape.kv_bytes_per_token_per_layer * context * sequences
    units = [_Unit("embed", "embed", shape.embedding_bytes(precision), 0)]
    units += [
        _Unit("layer", i, shape.layer_weight_bytes(precision), kv) for i in range(shape.layers)
    ]
    units.append(_Unit("head", "head", shape.head_bytes(precision), 0))
    return units


def plan(
    shape: ModelShape,
    hardware: HardwareProfile,
    systems: int | None = None,
    *,
    context: int = 8192,
    sequences: int = 1,
    precision: int | str = 16,
) -> Placement:
    """Place ``shape`` on ``systems`` systems of ``hardware`` (None: the fewest that fit).

    Args:
        shape: the model.
        hardware: a wafer or GPU profile.
        systems: how many systems (wafers, or GPUs in a tensor-parallel group); None picks the
            minimum that fits (for GPUs, the smallest power of two).
        context: tokens of KV cache reserved per sequence.
        sequences: concurrent sequences the KV reservation must hold.
        precision: weight precision, 16 or 8 bits (or a name such as ``"bf16"``).

    Returns:
        A :class:`Placement`; ``fits`` is False (with ``min_systems``) when the given number of
        systems cannot hold the model. With ``systems=None`` and no count that fits, ``fits``
        is False and ``min_systems`` is None.

    Raises:
        ValueError: for a non-positive systems/context/sequences or an unknown precision.
    """
    bits = 8 * bytes_per_weight(precision)
    if context <= 0 or sequences <= 0:
        raise ValueError("context and sequences must be positive")
    if systems is not None and systems <= 0:
        raise ValueError("systems must be positive")
    if isinstance(hardware, GpuProfile):
        return _plan_gpu(shape, hardware, systems, context, sequences, bits)
    return _plan_wafer(shape, hardware, systems, context, sequences, bits)


# --- wafers -----------------------------------------------------------------------------------


def _plan_wafer(
    shape: ModelShape,
    hw: WaferProfile,
    systems: int | None,
    context: int,
    sequences: int,
    bits: int,
) -> Placement:
    units = _units(shape, bits, context, sequences)
    max_n = len(units)

    def attempt(n: int) -> tuple[SystemUse, ...] | None:
        placed = []
        for index, group in enumerate(_partition([u.bytes for u in units], n)):
            regions = _pack([units[i] for i in group], hw, index)
            if regions is None:
                return None
            placed.append(_system_use(index, [units[i] for i in group], regions, hw, True))
        return tuple(placed)

    lower = max(1, math.ceil(sum(u.bytes for u in units) / hw.usable_bytes))
    min_systems = None
    found: tuple[SystemUse, ...] | None = None
    for n in range(lower, max_n + 1):
        found = attempt(n)
        if found is not None:
            min_systems = n
            break

    def result(n: int, used: tuple[SystemUse, ...], fits: bool, reason: str) -> Placement:
        return Placement(
            shape, hw, "pipeline", n, context, sequences, bits, used, fits, min_systems, reason
        )

    if systems is None:
        if found is None or min_systems is None:
            attempt_n = max_n
            return result(
                attempt_n,
                _unplaced(units, attempt_n, hw),
                False,
                "a single part is larger than one system's usable SRAM",
            )
        return result(min_systems, found, True, "")
    if systems > max_n:
        raise ValueError(
            f"{systems} systems for a model of {len(units)} parts (embed, {shape.layers} blocks, "
            "head): every system needs at least one part"
        )
    placed = found if systems == min_systems else attempt(systems)
    if placed is not None:
        return result(systems, placed, True, "")
    need = f"needs {min_systems}" if min_systems else "cannot be placed on any number of systems"
    return result(
        systems,
        _unplaced(units, systems, hw),
        False,
        f"{shape.name} ({bits}-bit, context {context} x {sequences}) does not fit on "
        f"{systems} x {hw.name}: {need}",
    )


def _unplaced(units: Sequence[_Unit], n: int, hw: WaferProfile) -> tuple[SystemUse, ...]:
    """The byte split of a failed attempt, so a report can show by how much each system is over."""
    return tuple(
        _system_use(index, [units[i] for i in group], (), hw, False)
        for index, group in enumerate(_partition([u.bytes for u in units], n))
    )


def _system_use(
    index: int,
    units: Sequence[_Unit],
    regions: Sequence[Region],
    hw: WaferProfile,
    placed: bool,
) -> SystemUse:
    weight = sum(u.weight_bytes for u in units)
    kv = sum(u.kv_bytes for u in units)
    layers = [int(u.layer) for u in units if u.kind == "layer"]
    return SystemUse(
        index=index,
        regions=tuple(regions),
        weight_bytes=weight,
        kv_bytes=kv,
        capacity_bytes=hw.usable_bytes,
        memory_bytes=hw.sram_bytes,
        cores_used=sum(r.cores for r in regions),
        grid_cores=hw.grid_cores,
        first_layer=min(layers) if layers else None,
        last_layer=max(layers) if layers else None,
        has_embed=any(u.kind == "embed" for u in units),
        has_head=any(u.kind == "head" for u in units),
        fits=placed and weight + kv <= hw.usable_bytes,
    )


def _partition(sizes: Sequence[int], n: int) -> list[range]:
    """Split ``sizes`` into exactly ``n`` non-empty contiguous groups minimising the largest sum.

    Binary search on the largest group sum with a greedy fill, then a greedy pass that also
    closes a group early when just enough items remain to give every later group one.
    """
    if not 1 <= n <= len(sizes):
        raise ValueError(f"cannot split {len(sizes)} parts into {n} groups")

    def groups_needed(limit: int) -> int:
        count, acc = 1, 0
        for s in sizes:
            if acc + s > limit:
                count, acc = count + 1, 0
            acc += s
        return count

    lo, hi = max(sizes), sum(sizes)
    while lo < hi:
        mid = (lo + hi) // 2
        if groups_needed(mid) <= n:
            hi = mid
        else:
            lo = mid + 1
    groups: list[range] = []
    start, acc = 0, 0
    for i, s in enumerate(sizes):
        remaining_groups = n - len(groups) - 1  # groups still to open after the current one
        if i > start and (acc + s > lo or len(sizes) - i == remaining_groups):
            groups.append(range(start, i))
            start, acc = i, 0
        acc += s
    groups.append(range(start, len(sizes)))
    return groups


def _pack(units: Sequence[_Unit], hw: WaferProfile, system: int) -> list[Region] | None:
    """Lay ``units`` out as rectangles on one system's grid, or None if they do not fit.

    The grid is cut into ``s`` vertical strips; units fill the strips in order, snaking (down
    the first strip, up the second, ...) so consecutive blocks stay adjacent. Each region is as
    wide as its strip and as tall as its bytes need. Of the strip counts that fit, the one
    whose regions are closest to square (least total rows + cols, the hops a reduction across
    them takes) wins.
    """
    best: list[Region] | None = None
    best_cost = math.inf
    per_core = hw.usable_bytes_per_core
    for strips in range(1, min(_MAX_STRIPS, hw.grid_cols) + 1):
        edges = [hw.grid_cols * i // strips for i in range(strips + 1)]
        regions: list[Region] = []
        strip, used = 0, 0
        ok = True
        for u in units:
            while True:
                width = edges[strip + 1] - edges[strip]
                rows = math.ceil(math.ceil(u.bytes / per_core) / width)
                if used + rows <= hw.grid_rows:
                    break
                strip, used = strip + 1, 0
                if strip >= strips:
                    ok = False
                    break
            if not ok:
                break
            row0 = used if strip % 2 == 0 else hw.grid_rows - used - rows
            regions.append(
                Region(
                    u.kind,
                    u.layer,
                    system,
                    row0,
                    edges[strip],
                    rows,
                    width,
                    u.weight_bytes,
                    u.kv_bytes,
                )
            )
            used += rows
        if not ok:
            continue
        cost = sum(r.span_hops for r in regions)
        if cost < best_cost:
            best, best_cost = regions, cost
    return best


# --- GPUs -------------------------------------------------------------------------------------


def _plan_gpu(
    shape: ModelShape,
    hw: GpuProfile,
    systems: int | None,
    context: int,
    sequences: int,
    bits: int,
) -> Placement:
    weights = shape.weight_bytes(bits)  # a tied matrix is stored once on a GPU
    kv = shape.kv_bytes(context, sequences)

    def gpus_fit(n: int) -> bool:
        return (weights + kv) / n <= hw.usable_bytes

    min_systems = next((n for n in _GPU_COUNTS if gpus_fit(n)), None)
    n = systems if systems is not None else (min_systems or _GPU_COUNTS[-1])
    fits = gpus_fit(n)
    per_w, per_kv = math.ceil(weights / n), math.ceil(kv / n)
    used = tuple(
        SystemUse(
            index=i,
            regions=(),
            weight_bytes=per_w,
            kv_bytes=per_kv,
            capacity_bytes=hw.usable_bytes,
            memory_bytes=hw.memory_bytes,
            cores_used=0,
            grid_cores=0,
            first_layer=0,
            last_layer=shape.layers - 1,
            has_embed=True,
            has_head=True,
            fits=fits,
        )
        for i in range(n)
    )
    reason = ""
    if not fits:
        need = f"needs {min_systems}" if min_systems else "too large for any GPU count tried"
        reason = (
            f"{shape.name} ({bits}-bit, context {context} x {sequences}) does not fit on "
            f"{n} x {hw.name}: {need}"
        )
    return Placement(
        shape, hw, "tensor_parallel", n, context, sequences, bits, used, fits, min_systems, reason
    )


# --- a draft model beside the target -------------------------------------------------------------


@dataclass(frozen=True)
class DraftPlacement:
    """A speculative-decoding draft model placed beside a target on the target's systems.

    The draft's SRAM (or GPU memory) counts: its parts must fit in what the target leaves free.
    On wafers the draft is split into ``len(hosts)`` contiguous stages, stage ``i`` on target
    system ``hosts[i]``; it is timed as laid out by :func:`plan` on that many systems of the
    same hardware (its regions sized by its bytes; the shape of the leftover cores is not
    modelled). On GPUs it is tensor-parallel over the same GPUs. ``placement`` is None when
    it does not fit; ``reason`` then says why and ``min_systems`` how many systems would hold
    target and draft together (None if none tried do).
    """

    target: Placement
    shape: ModelShape
    placement: Placement | None
    hosts: tuple[int, ...]
    draft_bytes: int
    free_bytes: float
    min_systems: int | None
    reason: str = ""

    @property
    def fits(self) -> bool:
        """True when the draft fits beside the target."""
        return self.placement is not None


def _beside(target: Placement, draft: ModelShape) -> tuple[Placement | None, tuple[int, ...]]:
    """The draft's placement and host systems on ``target``'s systems, or (None, ())."""
    hw = target.hardware
    free = [s.capacity_bytes - s.used_bytes for s in target.systems]
    opts = {"context": target.context, "sequences": target.sequences}
    if isinstance(hw, GpuProfile):
        alone = plan(draft, hw, target.n_systems, precision=target.precision, **opts)
        ok = alone.fits and all(
            use.used_bytes <= room for use, room in zip(alone.systems, free, strict=True)
        )
        return (alone, tuple(range(target.n_systems))) if ok else (None, ())
    most = min(target.n_systems, draft.layers + 2)
    for n in range(1, most + 1):
        alone = plan(draft, hw, n, precision=target.precision, **opts)
        if not alone.fits:
            continue
        # Largest draft stage on the system with the most room, and so on down.
        stages = sorted(range(n), key=lambda i: -alone.systems[i].used_bytes)
        rooms = sorted(range(len(free)), key=lambda i: -free[i])[:n]
        if all(alone.systems[i].used_bytes <= free[j] for i, j in zip(stages, rooms, strict=True)):
            hosts = dict(zip(stages, rooms, strict=True))
            return alone, tuple(hosts[i] for i in range(n))
    return None, ()


def plan_draft(target: Placement, draft: ModelShape, max_systems: int = 64) -> DraftPlacement:
    """Place ``draft`` beside the fitted ``target`` (same systems, same precision and context).

    Raises:
        ValueError: when the target itself does not fit.
    """
    if not target.fits:
        raise ValueError(f"the target does not fit: {target.reason}")
    hw = target.hardware
    draft_bytes = draft.weight_bytes(target.precision) + draft.kv_bytes(
        target.context, target.sequences
    )
    free = sum(s.capacity_bytes - s.used_bytes for s in target.systems)
    placed, hosts = _beside(target, draft)
    if placed is not None:
        return DraftPlacement(target, draft, placed, hosts, draft_bytes, free, target.n_systems)
    need = None
    counts = _GPU_COUNTS if isinstance(hw, GpuProfile) else range(1, max_systems + 1)
    for n in counts:
        if n <= target.n_systems or n > max_systems:
            continue
        try:
            bigger = plan(
                target.shape,
                hw,
                n,
                context=target.context,
                sequences=target.sequences,
                precision=target.precision,
            )
        except ValueError:
            break
        if bigger.fits and _beside(bigger, draft)[0] is not None:
            need = n
            break
    where = f"{target.n_systems} x {hw.name}"
    reason = (
        f"the {draft.name} draft ({draft_bytes / 1e9:.1f} GB with its KV cache) does not fit "
        f"beside {target.shape.name} on {where}: {free / 1e9:.1f} GB free"
        + (f"; both fit on {need} (--systems {need})" if need else "")
    )
    return DraftPlacement(target, draft, None, (), draft_bytes, free, need, reason)
