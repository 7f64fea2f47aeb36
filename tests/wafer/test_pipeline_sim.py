"""The discrete-event pipeline scheduler: interleaving, exclusivity, and agreement with timing."""

from __future__ import annotations

import itertools

import pytest

from tedchat.wafer.hardware import HARDWARE
from tedchat.wafer.pipeline_sim import (
    PipelineScheduler,
    SequenceRequest,
    StepCost,
    Timeline,
    simulate,
)
from tedchat.wafer.placement import plan
from tedchat.wafer.shapes import PRESETS
from tedchat.wafer.timing import TimingModel

L70B = PRESETS["llama-3.1-70b"]


def _model_70b_on_4() -> TimingModel:
    # KV for 4 sequences of 2048 tokens: the same bytes as one of 8192, so it fits on 4 CS-3.
    placement = plan(L70B, HARDWARE["cs3"], 4, context=2048, sequences=4)
    assert placement.fits
    return TimingModel(placement)


def _assert_exclusive(timeline: Timeline, n_stages: int) -> None:
    """A stage serves one step at a time; a sequence is on one stage at a time."""
    for s in range(n_stages):
        spans = sorted(r.stages[s] for r in timeline.records)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 1e-12
    for rec in timeline.records:
        for (start_a, end_a), (start_b, end_b) in itertools.pairwise(rec.stages):
            assert start_b >= start_a and end_b >= end_a
            if rec.kind == "decode":
                assert start_b >= end_a  # a decode token leaves one stage before the next


def test_four_sequences_on_four_cs3_quadruple_throughput() -> None:
    model = _model_70b_on_4()
    single = simulate(model.scheduler(), [SequenceRequest("a", 48)])
    four = simulate(model.scheduler(), [SequenceRequest(i, 48) for i in range(4)])
    one_speed = single.sequences["a"].tokens_per_s
    assert one_speed == pytest.approx(1 / model.decode_step(24).total, rel=0.01)
    assert four.aggregate_tokens_per_s >= 3 * single.aggregate_tokens_per_s
    for line in four.sequences.values():
        assert line.tokens_per_s == pytest.approx(one_speed, rel=0.10)
    _assert_exclusive(four, 4)


def test_single_sequence_ttft_matches_the_timing_model() -> None:
    model = _model_70b_on_4()
    timeline = simulate(model.scheduler(), [SequenceRequest("a", 3, 500)])
    assert timeline.sequences["a"].ttft == pytest.approx(model.prefill(500).total, rel=1e-12)
    _assert_exclusive(timeline, 4)


def test_hand_computed_two_stage_pipeline() -> None:
    # Two stages of 1 s each, no links: one sequence emits every 2 s; two interleave.
    def sched() -> PipelineScheduler:
        return PipelineScheduler(2, lambda s, kind, n, ctx: 1.0)

    one = simulate(sched(), [SequenceRequest("a", 3)])
    assert one.sequences["a"].emits == [2.0, 4.0, 6.0]
    two = simulate(sched(), [SequenceRequest("a", 3), SequenceRequest("b", 3)])
    assert two.sequences["a"].emits == [2.0, 4.0, 6.0]
    assert two.sequences["b"].emits == [3.0, 5.0, 7.0]
    assert two.aggregate_tokens_per_s == pytest.approx(6 / 7)
    # A third sequence cannot fit in a 2-stage pipeline without slowing the others.
    three = simulate(sched(), [SequenceRequest(x, 3) for x in "abc"])
    assert three.sequences["a"].tokens_per_s < one.sequences["a"].tokens_per_s


def test_links_and_return_time_are_charged() -> None:
    sched = PipelineScheduler(2, lambda s, kind, n, ctx: 1.0, lambda s, n: 0.25, return_time=0.5)
    timeline = simulate(sched, [SequenceRequest("a", 2)])
    assert timeline.sequences["a"].emits == [2.25, 5.0]  # 1 + .25 + 1, then +.5 + 2.25


def test_streamed_prefill_overlaps_stages() -> None:
    # 10-token prefill, 1 s per token per stage: stage 1 starts after stage 0's first token.
    def cost(stage: int, kind: str, n: int, ctx: int) -> StepCost:
        return StepCost(busy=float(n), fill=1.0)

    sched = PipelineScheduler(2, cost)
    sched.add_sequence("a")
    rec = sched.step("a", "prefill", 10, 10)
    assert rec.stages == ((0.0, 10.0), (1.0, 11.0))
    with pytest.raises(ValueError):
        StepCost(busy=1.0, fill=2.0)


def test_next_ready_is_round_robin_on_ties() -> None:
    sched = PipelineScheduler(1, lambda s, kind, n, ctx: 1.0)
    for sid in "abc":
        sched.add_sequence(sid)
    order = []
    for _ in range(6):
        sid = sched.next_ready()
        order.append(sid)
        sched.step(sid, "decode", 1, 1)
    assert order == list("abcabc")
    with pytest.raises(KeyError):
        sched.step("zzz", "decode")
    with pytest.raises(ValueError):
        sched.add_sequence("a")
