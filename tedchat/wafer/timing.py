"""The timing model of the wafer virtual clock: the one place it lives.

Given a :class:`~tedchat.wafer.placement.Placement` (which carries the model shape and the
hardware profile) it says how long each step would take on the emulated hardware, split into
named components that add up exactly to the total.

Wafer (pipeline, one stage per system). A token crosses every region of every stage in turn.
For each region (a decoder block, the embeddings or the output head):

- ``sram_read``: the region's weights (and the KV entries in use) read by its own cores, at
  each core's share of the wafer's SRAM bandwidth;
- ``compute``: the region's FLOPs at its cores' dense rate, counted only where it exceeds the
  SRAM read (a core's multiply-adds read their operands straight from its SRAM, so the two
  overlap);
- ``fabric_hops``: each dependent reduction/broadcast phase of the block (norms, QKV, attention
  scores and values, O, gate/up, down) crosses the region: ``rows + cols`` hops at the
  hardware's per-hop latency, so it grows with the region's size;
- ``reduction_overhead``: a fixed cost per such phase (synchronisation, task activation);
- ``layer_handoff``: moving the activations into the next region and starting its work;
- ``link``: between systems, the activations (hidden x 2 bytes per token) over the system I/O
  plus the link latency; after the last stage, the sampled token goes back to the first.

At decode the latency terms dominate (see docs/hardware.md's closing paragraph): SRAM bandwidth
is huge, but every block pays hundreds of hops several times over. At prefill the prompt's tokens
stream through the regions back to back, so the latency terms are paid once and the stream is
bounded by the slowest region's per-token time.

GPU (tensor parallel over N GPUs, one stage). Each step streams every GPU's weight share (and
the KV entries in use) from HBM at an assumed fraction of the spec bandwidth (``hbm``),
computes (``compute``, beyond the HBM time), pays a per-kernel overhead (``kernel_overhead``)
and two all-reduces per block between the GPUs (``allreduce``). Only the GPU profile's own
figures are used: nothing is scaled from the wafer's.

Speculative decoding (projected, :func:`project_speculative`): a step drafts k tokens (k decode
steps of a draft model placed beside the target, or nothing for prompt-lookup drafts) and the
target verifies them in one (k+1)-token step (:meth:`TimingModel.verify_step`, the same
per-stage costs as a prefill chunk); at per-token acceptance a it yields
(1 - a^(k+1)) / (1 - a) tokens on average.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from tedchat.wafer.hardware import GpuProfile, WaferProfile
from tedchat.wafer.pipeline_sim import PipelineScheduler, StepCost, StepKind
from tedchat.wafer.placement import Placement, Region

#: Display order of the components (a Breakdown keeps only those it has).
COMPONENTS = (
    "sram_read",
    "hbm",
    "compute",
    "fabric_hops",
    "reduction_overhead",
    "layer_handoff",
    "kernel_overhead",
    "allreduce",
    "link",
)

# Structure of a Llama block, not hardware constants: how many dependent steps it has.
#: Reduction/broadcast phases of one decoder block at decode: attention RMSNorm, QKV
#: projection, attention scores (with softmax max/sum), attention-weighted values, output
#: projection, MLP RMSNorm, gate/up projection, down projection.
LAYER_PHASES = 8
#: Final RMSNorm, vocabulary projection, arg-max/sampling over the vocabulary.
HEAD_PHASES = 3
#: Fetch the token's row from the table and send it on.
EMBED_PHASES = 1
#: GPU kernels per block at batch 1: 2 norms, QKV GEMM, RoPE, attention, O GEMM, gate/up GEMM,
#: SiLU x up, down GEMM.
GPU_KERNELS_PER_LAYER = 9
#: Final norm, LM-head GEMM, sampling.
GPU_HEAD_KERNELS = 3
#: Tensor parallelism all-reduces the block's output twice: after attention and after the MLP.
GPU_ALLREDUCES_PER_LAYER = 2
#: Bytes of a sampled token id sent back to the first stage.
TOKEN_ID_BYTES = 4


@dataclass(frozen=True)
class Breakdown:
    """Seconds per component; ``total`` is their sum (exactly, by construction).

    Breakdowns add component-wise: ``stage0 + link + stage1``.
    """

    parts: Mapping[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        """Sum of the components, in seconds."""
        return sum(self.parts.values())

    def __add__(self, other: Breakdown) -> Breakdown:
        merged = dict(self.parts)
        for key, value in other.parts.items():
            merged[key] = merged.get(key, 0.0) + value
        return Breakdown(merged)

    def scaled(self, factor: float) -> Breakdown:
        """Every component multiplied by ``factor``."""
        return Breakdown({k: v * factor for k, v in self.parts.items()})

    def get(self, component: str) -> float:
        """One component's seconds (0 if absent)."""
        return self.parts.get(component, 0.0)

    def items(self) -> Iterator[tuple[str, float]]:
        """Components in display order."""
        known = [k for k in COMPONENTS if k in self.parts]
        extra = [k for k in self.parts if k not in COMPONENTS]
        return ((k, self.parts[k]) for k in known + extra)

    def as_dict(self) -> dict[str, float]:
        """Components in display order, as a plain dict (JSON-ready)."""
        return dict(self.items())

    @staticmethod
    def sum(items: Iterable[Breakdown]) -> Breakdown:
        """The component-wise sum of ``items``."""
        total = Breakdown()
        for item in items:
            total = total + item
        return total


@dataclass(frozen=True)
class Prediction:
    """What the emulated hardware would take for one request (emulated figures)."""

    hardware: str
    systems: int
    prompt_tokens: int
    decode_context: int
    ttft: Breakdown
    decode: Breakdown

    @property
    def decode_tokens_per_s(self) -> float:
        """Output tokens per second of one sequence (1 / per-token decode time)."""
        return 1.0 / self.decode.total


class TimingModel:
    """Step times of a placed model on its hardware.

    The pipeline scheduler (:mod:`tedchat.wafer.pipeline_sim`) does the interleaving but knows
    no costs: :meth:`scheduler` gives it this model's per-stage :meth:`step_cost`,
    :meth:`link_time` and :meth:`return_link_time` as plain seconds. :meth:`prefill`,
    :meth:`decode_step` and :meth:`predict` give whole-request figures built from the same
    pieces.
    """

    def __init__(self, placement: Placement) -> None:
        if not placement.fits:
            raise ValueError(f"cannot time a placement that does not fit: {placement.reason}")
        self.placement = placement
        self.shape = placement.shape
        self.hardware = placement.hardware

    @property
    def n_stages(self) -> int:
        """Pipeline stages (one per wafer; one for a GPU tensor-parallel group)."""
        return self.placement.n_stages

    # --- per-stage costs, for the scheduler ----------------------------------------------------

    def scheduler(self) -> PipelineScheduler:
        """A fresh pipeline scheduler (an empty emulated timeline) charged with these costs."""
        return PipelineScheduler(
            self.n_stages,
            self.step_cost,
            lambda from_stage, n_tokens: self.link_time(from_stage, n_tokens).total,
            self.return_link_time().total,
        )

    def stage_step_time(
        self, stage_index: int, kind: StepKind, n_tokens: int = 1, context_len: int = 1
    ) -> Breakdown:
        """How long stage ``stage_index`` is busy with one sequence-step.

        Args:
            stage_index: 0-based stage (system) index.
            kind: ``"prefill"`` (``n_tokens`` prompt tokens streamed through) or ``"decode"``
                (one token).
            n_tokens: tokens in the step (1 for decode).
            context_len: the sequence's context length at the end of the step (positions the
                last token attends to, itself included).
        """
        busy, _fill = self._stage(stage_index, kind, n_tokens, context_len)
        return busy

    def step_cost(
        self, stage_index: int, kind: StepKind, n_tokens: int = 1, context_len: int = 1
    ) -> StepCost:
        """The scheduler's view of a step: busy time and the time for one token to cross.

        A prefill streams its tokens through the stage: the next stage may start once the
        first token has crossed (``fill``), not when the whole prompt has.
        """
        busy, fill = self._stage(stage_index, kind, n_tokens, context_len)
        return StepCost(busy=busy.total, fill=fill.total)

    def link_time(self, from_stage: int, n_tokens: int = 1) -> Breakdown:
        """Activations of ``n_tokens`` tokens from stage ``from_stage`` to the next one."""
        self._check_stage(from_stage)
        if from_stage >= self.n_stages - 1:
            raise ValueError(f"stage {from_stage} is the last: use return_link_time()")
        hw = self.hardware
        assert isinstance(hw, WaferProfile)  # GPUs have one stage, hence no forward links
        payload = n_tokens * self.shape.activation_bytes
        return Breakdown({"link": hw.link_latency_s + payload / hw.system_io_bandwidth})

    def return_link_time(self) -> Breakdown:
        """The sampled token id from the last stage back to the first (0 on one system)."""
        hw = self.hardware
        if self.n_stages == 1 or not isinstance(hw, WaferProfile):
            return Breakdown()
        return Breakdown({"link": hw.link_latency_s + TOKEN_ID_BYTES / hw.system_io_bandwidth})

    # --- whole requests ------------------------------------------------------------------------

    def decode_step(self, context_len: int) -> Breakdown:
        """One output token of one sequence: every stage, every link, and the return link."""
        total = Breakdown()
        for s in range(self.n_stages):
            total = total + self.stage_step_time(s, "decode", 1, context_len)
            if s < self.n_stages - 1:
                total = total + self.link_time(s, 1)
        return total + self.return_link_time()

    def prefill(self, prompt_tokens: int) -> Breakdown:
        """Time to first token: the prompt streamed through all stages, logits of its last token.

        Each stage's first token crosses in turn (fills and single-token links), and the rest of
        the prompt follows behind at the pace of the slowest stage.
        """
        n = max(prompt_tokens, 1)
        return self._stream(n, n)

    def verify_step(self, context_len: int, n_tokens: int) -> Breakdown:
        """One speculative verification: ``n_tokens`` tokens (the last accepted token and the
        drafted ones) through every stage in one step, then the result back to the first stage.

        The same per-stage costs as a prefill chunk ending at ``context_len``; with
        ``n_tokens == 1`` it is exactly :meth:`decode_step`.
        """
        if n_tokens < 1:
            raise ValueError("n_tokens must be at least 1")
        return self._stream(n_tokens, max(context_len, n_tokens)) + self.return_link_time()

    def predict(self, prompt_tokens: int, output_tokens: int = 256) -> Prediction:
        """TTFT for ``prompt_tokens`` and decode time per token in the middle of the answer."""
        decode_context = prompt_tokens + max(output_tokens, 1) // 2
        return Prediction(
            hardware=self.hardware.name,
            systems=self.placement.n_systems,
            prompt_tokens=prompt_tokens,
            decode_context=decode_context,
            ttft=self.prefill(prompt_tokens),
            decode=self.decode_step(decode_context),
        )

    # --- internals -----------------------------------------------------------------------------

    def _stream(self, n_tokens: int, context_len: int) -> Breakdown:
        """``n_tokens`` tokens streamed through every stage: each stage's first token crosses in
        turn (fills and single-token links), the rest follow at the slowest stage's pace."""
        total = Breakdown()
        worst_stream = Breakdown()
        for s in range(self.n_stages):
            busy, fill = self._stage(s, "prefill", n_tokens, context_len)
            total = total + fill
            stream = _minus(busy, fill)
            if stream.total > worst_stream.total:
                worst_stream = stream
            if s < self.n_stages - 1:
                total = total + self.link_time(s, 1)
        return total + worst_stream

    def _check_stage(self, stage_index: int) -> None:
        if not 0 <= stage_index < self.n_stages:
            raise IndexError(f"stage {stage_index} out of range 0..{self.n_stages - 1}")

    def _stage(
        self, stage_index: int, kind: StepKind, n_tokens: int, context_len: int
    ) -> tuple[Breakdown, Breakdown]:
        """(busy, fill) of one step on one stage."""
        self._check_stage(stage_index)
        if kind not in ("prefill", "decode"):
            raise ValueError(f"kind must be 'prefill' or 'decode', not {kind!r}")
        if kind == "decode" and n_tokens != 1:
            raise ValueError("a decode step is one token; use kind='prefill' for several")
        if n_tokens < 1:
            raise ValueError("n_tokens must be at least 1")
        # Tokens of a prefill chunk attend to context_len - n + 1 .. context_len positions.
        mean_context = max(context_len - (n_tokens - 1) / 2, 1.0)
        if isinstance(self.hardware, GpuProfile):
            return self._gpu_step(self.hardware, n_tokens, context_len, mean_context)
        return self._wafer_stage(self.hardware, stage_index, n_tokens, mean_context)

    def _wafer_stage(
        self, hw: WaferProfile, stage_index: int, n_tokens: int, context: float
    ) -> tuple[Breakdown, Breakdown]:
        fill = Breakdown()
        slowest = Breakdown()
        for region in self.placement.systems[stage_index].regions:
            per_token, latency = self._wafer_region(hw, region, context)
            fill = fill + per_token + latency
            # Only the last prompt token needs logits, so the head never paces the stream.
            if region.kind != "head" and per_token.total > slowest.total:
                slowest = per_token
        busy = fill + slowest.scaled(n_tokens - 1)
        return busy, fill

    def _wafer_region(
        self, hw: WaferProfile, region: Region, context: float
    ) -> tuple[Breakdown, Breakdown]:
        """(per-token streaming time, per-step latency) of one region."""
        shape = self.shape
        if region.kind == "layer":
            read_bytes = region.weight_bytes + shape.kv_bytes_per_token_per_layer * context
            flops = shape.layer_flops(round(context))
            phases = LAYER_PHASES
        elif region.kind == "head":
            read_bytes, flops, phases = region.weight_bytes, shape.head_flops, HEAD_PHASES
        else:
            # The lookup reads one row of the table, spread along one row of the region.
            read_bytes = shape.activation_bytes * region.rows
            flops, phases = 0, EMBED_PHASES
        read = read_bytes / (region.cores * hw.sram_bandwidth_per_core)
        compute = flops / (region.cores * hw.dense_flops_per_core)
        per_token = Breakdown({"sram_read": read, "compute": max(compute - read, 0.0)})
        latency = Breakdown(
            {
                "fabric_hops": phases * region.span_hops * hw.hop_latency_s,
                "reduction_overhead": phases * hw.reduction_overhead_s,
                "layer_handoff": hw.layer_handoff_s,
            }
        )
        return per_token, latency

    def _gpu_step(
        self, hw: GpuProfile, n_tokens: int, context_len: int, mean_context: float
    ) -> tuple[Breakdown, Breakdown]:
        shape = self.shape
        gpus = self.placement.n_systems
        share = self.placement.systems[0]
        # Weights are read once per step whatever the token count, and so is the KV cache in use
        # (fused attention kernels read it once per block of queries, not once per token).
        kv_read = shape.kv_bytes_per_token_per_layer * shape.layers * context_len / gpus
        hbm = (share.weight_bytes + kv_read) / (hw.hbm_bandwidth * hw.hbm_efficiency)
        flops = shape.flops_per_token(round(mean_context)) * n_tokens / gpus
        compute = flops / (hw.bf16_flops * hw.compute_efficiency)
        kernels = shape.layers * GPU_KERNELS_PER_LAYER + GPU_HEAD_KERNELS
        allreduce = 0.0
        if gpus > 1:
            # Ring all-reduce moves 2 (N-1)/N of the message through each GPU's links.
            payload = 2 * (gpus - 1) / gpus * n_tokens * shape.activation_bytes
            per = hw.allreduce_latency_s + payload / hw.interconnect_bandwidth
            allreduce = shape.layers * GPU_ALLREDUCES_PER_LAYER * per
        step = Breakdown(
            {
                "hbm": hbm,
                "compute": max(compute - hbm, 0.0),
                "kernel_overhead": kernels * hw.kernel_overhead_s,
                "allreduce": allreduce,
            }
        )
        # A GPU step is one batched pass: nothing streams out before it ends.
        return step, step


# --- speculative decoding -----------------------------------------------------------------------

#: Acceptance rates the projection sweeps besides the one asked for.
ACCEPTANCE_SWEEP = (0.5, 0.6, 0.7, 0.8, 0.9)


def expected_tokens_per_step(acceptance: float, draft_tokens: int) -> float:
    """Tokens a speculative step yields on average: ``(1 - a^(k+1)) / (1 - a)``.

    ``acceptance`` (a) is the probability that a drafted token is accepted, independently per
    token; with ``draft_tokens`` (k) drafted, the step yields the accepted prefix plus the
    target's own next token (Leviathan et al. 2023, eq. 1).

    Raises:
        ValueError: unless 0 <= acceptance < 1 and draft_tokens >= 1.
    """
    if not 0.0 <= acceptance < 1.0:
        raise ValueError(f"acceptance must be in [0, 1), not {acceptance:g}")
    if draft_tokens < 1:
        raise ValueError(f"draft tokens must be at least 1, not {draft_tokens}")
    return (1.0 - acceptance ** (draft_tokens + 1)) / (1.0 - acceptance)


@dataclass(frozen=True)
class SpeculativeProjection:
    """Projected decode speed with speculation (emulated figures, an expectation over a).

    One step drafts ``draft_tokens`` tokens (``draft``: k draft-model decode steps, empty for
    prompt-lookup drafts, which cost nothing to draft) and verifies them with one
    (k+1)-token target step (``verify``). ``plain`` is one ordinary target decode step.
    """

    acceptance: float
    draft_tokens: int
    context_len: int
    draft: Breakdown
    verify: Breakdown
    plain: Breakdown

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens per step, ``(1 - a^(k+1)) / (1 - a)``."""
        return expected_tokens_per_step(self.acceptance, self.draft_tokens)

    @property
    def step_s(self) -> float:
        """Seconds of one speculative step: drafting plus verification."""
        return self.draft.total + self.verify.total

    @property
    def tokens_per_s(self) -> float:
        """Projected output tokens per second of one sequence."""
        return self.tokens_per_step / self.step_s

    @property
    def plain_tokens_per_s(self) -> float:
        """Output tokens per second without speculation, for comparison."""
        return 1.0 / self.plain.total

    def at(self, acceptance: float) -> SpeculativeProjection:
        """The same step costs at another acceptance rate (costs do not depend on it)."""
        expected_tokens_per_step(acceptance, self.draft_tokens)  # validates
        return SpeculativeProjection(
            acceptance, self.draft_tokens, self.context_len, self.draft, self.verify, self.plain
        )


def project_speculative(
    target: TimingModel,
    acceptance: float,
    draft_tokens: int,
    context_len: int,
    draft: TimingModel | None = None,
) -> SpeculativeProjection:
    """The projected decode speed of ``target`` with speculative decoding at ``context_len``.

    Built on the per-step costs the runner is charged with: ``draft`` (the draft model placed
    beside the target, timed by its own model; None for prompt-lookup drafts) takes
    ``draft_tokens`` decode steps, then the target verifies them in one
    ``draft_tokens + 1``-token step (:meth:`TimingModel.verify_step`).

    Raises:
        ValueError: for an acceptance outside [0, 1) or fewer than one draft token.
    """
    expected_tokens_per_step(acceptance, draft_tokens)  # validates both
    drafting = Breakdown()
    if draft is not None:
        drafting = draft.decode_step(context_len).scaled(draft_tokens)
    return SpeculativeProjection(
        acceptance=acceptance,
        draft_tokens=draft_tokens,
        context_len=context_len,
        draft=drafting,
        verify=target.verify_step(context_len, draft_tokens + 1),
        plain=target.decode_step(context_len),
    )


def _minus(a: Breakdown, b: Breakdown) -> Breakdown:
    """Component-wise a - b (b's components a subset of a's)."""
    return Breakdown({k: a.get(k) - b.get(k) for k in a.parts})
