"""``tedchat wafer plan|validate|verify``: the wafer-scale emulation engine's placement,
predicted speed against published figures, and numerical accuracy."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "wafer",
        parents=parents,
        help="plan a model's placement on emulated wafers; validate and verify the emulator",
        description="The wafer-scale emulation engine: placement and predicted speed (plan), "
        "the timing model against published figures (validate), and agreement of its NumPy "
        "forward pass with llama.cpp (verify). All times shown by plan and validate are "
        "emulated (the timing model's predictions).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    plan = actions.add_parser(
        "plan",
        parents=parents,
        help="placement, fit and predicted TTFT / tokens/s with a time breakdown",
        description="Place every layer of a model on emulated systems (SRAM-resident, weights "
        "never move) and predict TTFT and decode tokens/s, side by side with a comparison "
        "column (H100 beside a wafer, CS-3 beside a GPU). Exit 1 when it does not fit.",
    )
    plan.add_argument(
        "positional_model", nargs="?", metavar="MODEL", help="the model (or give --model)"
    )
    plan.add_argument(
        "--model",
        metavar="M",
        help="preset (smollm2, tedllm, llama-3.1-8b, llama-3.1-70b, llama-3.1-405b) or a GGUF path",
    )
    plan.add_argument("--hardware", default="cs3", metavar="H", help="cs3, cs2, h100, h200, a100")
    plan.add_argument(
        "--systems", type=int, metavar="N", help="systems (GPUs for GPU profiles); default: fewest"
    )
    plan.add_argument("--context", type=int, default=8192, metavar="N", help="KV tokens per seq")
    plan.add_argument("--sequences", type=int, default=1, metavar="N", help="concurrent sequences")
    plan.add_argument("--prompt-tokens", type=int, metavar="N", help="prompt length for TTFT")
    plan.add_argument("--precision", type=int, choices=(16, 8), default=16, help="weight bits")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    spec = plan.add_argument_group(
        "speculative decoding (projected)",
        "Project decode speed with speculation: k drafted tokens per step, verified by the "
        "target in one (k+1)-token step; tokens per step = (1 - A^(k+1)) / (1 - A).",
    )
    spec.add_argument(
        "--speculative", action="store_true", help="add the speculative projection to the plan"
    )
    spec.add_argument(
        "--acceptance",
        type=float,
        metavar="A",
        help="per-token acceptance probability of a drafted token, 0 <= A < 1 (required)",
    )
    spec.add_argument(
        "--draft-model",
        metavar="M",
        help="draft model (preset or GGUF) placed beside the target on the same systems; "
        "default: prompt-lookup drafts, which cost nothing to draft",
    )
    spec.add_argument(
        "--draft-tokens", type=int, metavar="K", help="tokens drafted per step, K >= 1 (4)"
    )
    plan.set_defaults(run=run_plan)

    validate = actions.add_parser(
        "validate",
        parents=parents,
        help="the timing model's predictions beside published figures, in and out of sample",
        description="Every published row of docs/hardware.md beside the timing model's "
        "prediction: the rows the fitted constants were fitted on (in sample) and the ones "
        "nothing was fitted on (out of sample), each with its error and the assumption it "
        "needs where the configuration is unpublished. docs/validation.md is --markdown.",
    )
    form = validate.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print the rows as JSON")
    form.add_argument(
        "--markdown", action="store_true", help="print docs/validation.md (the same rows)"
    )
    validate.set_defaults(run=run_validate)

    verify = actions.add_parser(
        "verify",
        parents=parents,
        help="teacher-forced agreement of the NumPy forward pass with llama.cpp",
        description="Teacher-forced on given text (not on the model's own output): top-1 "
        "agreement and max / mean absolute logit error against llama.cpp on the same GGUF, "
        "and greedy-continuation match length. Default prompts: a committed corpus "
        "(English, Japanese, code).",
    )
    verify.add_argument("--model", default="smollm2", metavar="PATH", help="registry name or GGUF")
    verify.add_argument("--prompts", metavar="FILE", help="one prompt per line")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(run=run_verify)


def run_plan(args: argparse.Namespace) -> int:
    from tedchat.errors import UsageError
    from tedchat.wafer.plan_report import problem, render, report_from_args

    if args.positional_model and args.model and args.positional_model != args.model:
        raise UsageError(f"two models given: {args.positional_model!r} and {args.model!r}")
    args.model = args.model or args.positional_model
    report = report_from_args(args)
    print(render(report, args))
    why = problem(report)
    if why:
        print(f"does not fit: {why}", file=sys.stderr)
        return 1
    return 0


def run_validate(args: argparse.Namespace) -> int:
    import json

    from tedchat.wafer.validation import render_markdown, render_text, report

    data = report()
    if args.json:
        print(json.dumps(data, indent=2))
    elif args.markdown:
        print(render_markdown(data), end="")
    else:
        print(render_text(data))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from tedchat.errors import UsageError
    from tedchat.models.registry import resolve_model
    from tedchat.wafer.verify import verify

    path = resolve_model(args.model)
    prompts = None
    if args.prompts:
        try:
            lines = Path(args.prompts).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read {args.prompts}: {exc.strerror}") from exc
        prompts = [line for line in lines if line.strip()]
        if not prompts:
            raise UsageError(f"{args.prompts} has no prompts (one per line)")

    def progress(done: int, total: int) -> None:
        print(f"\rverifying: prompt {done}/{total}", end="", file=sys.stderr, flush=True)

    reports = verify(path, prompts, progress=progress)
    print(file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "model": str(path),
                        "reference": r.reference,
                        "positions": r.positions,
                        "top1_agreement": r.top1_agreement,
                        "max_abs_logit_error": r.max_abs_error,
                        "mean_abs_logit_error": r.mean_abs_error,
                        "greedy_match": r.greedy_match,
                        "passed": r.passed(),
                    }
                    for r in reports
                ],
                indent=2,
            )
        )
    else:
        for r in reports:
            print(r.format())
            print()
        for r in reports:
            print(("PASS " if r.passed() else "FAIL ") + r.summary())
    return 0 if all(r.passed() for r in reports) else 1
