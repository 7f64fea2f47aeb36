"""The JSON Schema of a bench record, and checking a record against it.

:data:`RECORD_SCHEMA` is standard JSON Schema (draft 2020-12), so any validator can check a
record; :func:`validate` uses ``jsonschema``. ``tedchat bench --schema`` prints it.

Bump :data:`SCHEMA_VERSION` when a field changes meaning or goes away; adding a field does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tedchat.engine import FINISH_REASONS
from tedchat.metrics import COUNT_SOURCES

SCHEMA_NAME = "tedchat-bench"
SCHEMA_VERSION = 1

_NUM = {"type": "number"}
_COUNT_FIGURE = {"type": "number", "minimum": 0}
# What the engine or server measured (Timings): engine-specific keys, all numbers; the ones
# below are common to llama.cpp (the llamacpp engine's counters) and llama-server's timings.
_TIMINGS = {
    "type": "object",
    "properties": {
        "prompt_eval_tokens": {**_COUNT_FIGURE, "description": "prompt tokens evaluated"},
        "prompt_eval_s": _COUNT_FIGURE,
        "prompt_eval_tokens_per_s": {**_COUNT_FIGURE, "description": "prompt tokens/s"},
        "cached_prompt_tokens": {
            **_COUNT_FIGURE,
            "description": "prompt tokens served from the KV cache, not evaluated",
        },
        "eval_tokens": _COUNT_FIGURE,
        "eval_s": _COUNT_FIGURE,
        "eval_tokens_per_s": _COUNT_FIGURE,
        "draft_tokens": {
            **_COUNT_FIGURE,
            "description": "speculative decoding: drafted tokens the model checked",
        },
        "draft_accepted_tokens": {**_COUNT_FIGURE, "description": "drafted tokens kept"},
        "draft_acceptance": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "draft_accepted_tokens / draft_tokens",
        },
    },
    "additionalProperties": _NUM,
}
_NUM_OR_NULL = {"type": ["number", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_PHASE = {"enum": ["warmup", "measured"]}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None, extra: bool = False):
    """An object with these required (and optional) properties; others allowed if ``extra``."""
    return {
        "type": "object",
        "required": list(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": extra,
    }


_SPREAD = {
    "oneOf": [
        {"type": "null"},
        _obj(
            {
                "n": {"type": "integer", "minimum": 1},
                "median": _NUM,
                "min": _NUM,
                "max": _NUM,
                "p90": _NUM_OR_NULL,  # present from 10 samples on
            }
        ),
    ]
}

_RUN_EMULATED = _obj(
    {
        "hardware": _STR,
        "systems": {"type": "integer", "minimum": 1},
        "timing_target": _STR_OR_NULL,
        "ttft_s": _NUM,
        "output_tokens_per_s": _NUM,
        "breakdown": {"type": "object", "additionalProperties": _NUM},
        "replay": {"type": "boolean"},
    },
    {
        # Speculative decoding on the emulated hardware (wafer engines with it on).
        "speculative": _obj(
            {
                "mode": {"enum": ["prompt-lookup", "draft"]},
                "draft_tokens": {"type": "integer", "minimum": 1},
                "drafted": _COUNT,
                "accepted": _COUNT,
                "acceptance_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                "tokens_per_step": {"type": ["number", "null"], "minimum": 1},
            },
            {
                # A draft against a stand-in: the clock's acceptance is assumed, not measured.
                "assumed_acceptance": {"type": "number", "minimum": 0, "maximum": 1},
                "assumed_tokens_per_step": {"type": "number", "minimum": 1},
            },
        ),
    },
)

_RUN = _obj(
    {
        "engine": _STR,
        "model": _STR,
        "prompt_id": _STR,
        "phase": _PHASE,
        "round": {"type": "integer", "minimum": 1},
        "batch": _COUNT,
        "slot": _COUNT,
        "started_at": _STR,
        "cache_cleared": {"type": "boolean"},
        "text": _STR,
        "prompt_tokens": _INT_OR_NULL,
        "output_tokens": _COUNT,
        "output_tokens_source": {"enum": list(COUNT_SOURCES)},
        "ttft_s": _NUM_OR_NULL,
        "output_tokens_per_s": _NUM_OR_NULL,
        "elapsed_s": _NUM_OR_NULL,
        "finish_reason": {"enum": [*FINISH_REASONS, None]},
        "timings": _TIMINGS,
        "error": _STR_OR_NULL,
        "token_ids": {"type": ["array", "null"], "items": {"type": "integer"}},
    },
    {
        "emulated": _RUN_EMULATED,
        # Engines with prices (price_input_per_mtok, price_output_per_mtok) only.
        "cost_usd": {
            "oneOf": [{"type": "null"}, _obj({"input": _NUM, "output": _NUM, "total": _NUM})]
        },
        "reasoning_tokens": _COUNT,
        "time_to_first_reasoning_s": _NUM_OR_NULL,
    },
    extra=True,  # the answer fields are tedchat.answer_record's, which may grow
)

_BATCH = _obj(
    {
        "batch": _COUNT,
        "engine": _STR,
        "prompt_id": _STR,
        "phase": _PHASE,
        "round": {"type": "integer", "minimum": 1},
        "requests": {"type": "integer", "minimum": 1},
        "ok": _COUNT,
        "started_at": _STR,
        "wall_s": _NUM,
        "output_tokens": _COUNT,
        "aggregate_output_tokens_per_s": _NUM_OR_NULL,
    }
)

_ENGINE = _obj(
    {
        "name": _STR,
        "type": _STR,
        "model": _STR_OR_NULL,
        "local": {"type": ["boolean", "null"]},
        "plugin": _STR_OR_NULL,
        "origin": _STR,
        "settings": {"type": "object"},  # engines.describe(): secrets replaced by "***"
        "details": {"type": ["object", "null"]},  # the engine's own describe(), redacted
        "load_s": _NUM_OR_NULL,
        "load_error": _STR_OR_NULL,
        "cache_cleared": {"type": ["boolean", "null"]},
        "cache_note": _STR_OR_NULL,
    }
)

_SUMMARY_ROW = _obj(
    {
        "engine": _STR,
        "runs": _COUNT,
        "ok": _COUNT,
        "errors": _COUNT,
        "warmup_errors": _COUNT,
        "error_messages": {
            "type": "array",
            "items": _obj({"message": _STR, "count": {"type": "integer", "minimum": 1}}),
        },
        "ttft_s": {"$ref": "#/$defs/spread"},
        "output_tokens_per_s": {"$ref": "#/$defs/spread"},
        "output_tokens": {"$ref": "#/$defs/spread"},
        "approximate_tokens": {"type": "boolean"},
        "emulated": {
            "oneOf": [
                {"type": "null"},
                _obj(
                    {
                        "label": _STR,
                        "ttft_s": {"$ref": "#/$defs/spread"},
                        "output_tokens_per_s": {"$ref": "#/$defs/spread"},
                    }
                ),
            ]
        },
        "aggregate_output_tokens_per_s": {"$ref": "#/$defs/spread"},
        "ratio_output_tokens_per_s": _NUM_OR_NULL,
        "ratio_ttft_s": _NUM_OR_NULL,
    },
    {"prompt_id": _STR},
)

RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tedchat bench record",
    **_obj(
        {
            "schema": {"const": SCHEMA_NAME},
            "schema_version": {"const": SCHEMA_VERSION},
            "incomplete": {"type": "boolean"},
            "incomplete_reason": _STR_OR_NULL,
            "started_at": _STR,
            "finished_at": _STR_OR_NULL,
            "config": _obj(
                {
                    "engines": {"type": "array", "items": _STR},
                    "prompts": _STR,
                    "runs": {"type": "integer", "minimum": 1},
                    "warmup": _COUNT,
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "temperature": _NUM_OR_NULL,
                    "top_p": _NUM_OR_NULL,
                    "seed": _INT_OR_NULL,
                    "concurrency": {"type": "integer", "minimum": 1},
                }
            ),
            "machine": _obj(
                {
                    "cpu_model": _STR_OR_NULL,
                    "cores": _INT_OR_NULL,
                    "usable_cores": _INT_OR_NULL,
                    "memory_bytes": _INT_OR_NULL,
                    "os": _STR,
                    "arch": _STR,
                    "load_average": {"type": ["array", "null"], "items": _NUM},
                }
            ),
            "versions": _obj(
                {
                    "tedchat": _STR,
                    "python": _STR,
                    "llama_cpp": _STR_OR_NULL,
                    "textual": _STR_OR_NULL,
                },
                extra=True,
            ),
            "prompts": {
                "type": "array",
                "items": _obj({"id": _STR, "text": _STR, "system": _STR_OR_NULL}),
            },
            "engines": {"type": "array", "items": {"$ref": "#/$defs/engine"}},
            "runs": {"type": "array", "items": {"$ref": "#/$defs/run"}},
            "batches": {"type": "array", "items": {"$ref": "#/$defs/batch"}},
            "summary": _obj(
                {
                    "baseline": _STR_OR_NULL,
                    "engines": {"type": "array", "items": {"$ref": "#/$defs/summary_row"}},
                    "prompts": {"type": "array", "items": {"$ref": "#/$defs/summary_row"}},
                }
            ),
        }
    ),
    "$defs": {
        "spread": _SPREAD,
        "run": _RUN,
        "batch": _BATCH,
        "engine": _ENGINE,
        "summary_row": _SUMMARY_ROW,
    },
}


# --- validation ----------------------------------------------------------------------------


def validate(
    instance: Any, schema: Mapping[str, Any] | None = None, *, limit: int = 20
) -> list[str]:
    """Every way ``instance`` breaks the schema (the record schema by default), up to ``limit``.

    Checked by ``jsonschema`` (draft 2020-12). Each problem names where it is, as a JSON path:
    ``$.runs[3].ttft_s: 'fast' is not of type 'number', 'null'``. For a value that fits none of
    a ``oneOf``'s shapes, the problem reported is the one inside the closest shape. An empty
    list means valid.
    """
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(RECORD_SCHEMA if schema is None else schema)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        if error.context:  # oneOf: what is wrong inside the shape that got furthest
            error = max(error.context, key=lambda e: len(e.absolute_path))
        problems.append(f"{error.json_path}: {error.message}")
    return problems[:limit]
