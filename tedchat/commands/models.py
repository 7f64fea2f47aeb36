"""``tedchat models``: the local model registry, or what an engine's server offers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models",
        parents=parents,
        help="pull, list, inspect and remove models (GGUF files)",
        description="Models an engine's 'model' setting accepts: a registry name, "
        "hf:ORG/REPO[:QUANT|:FILE] (a GGUF pulled from the Hugging Face Hub) or a path to a "
        "GGUF file. Nothing downloads until you run 'tedchat models pull'.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser(
        "list",
        parents=parents,
        help="list the models here and the registry's (or, with --engine, a server's)",
        description="Every GGUF here (bundled, pulled, converted) with its size, architecture, "
        "parameter count, quantisation, context length and whether its chat template supports "
        "tools, read from the file's header; then the registry models not downloaded yet.",
    )
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument(
        "--engine",
        metavar="NAME",
        help="list what this engine's server offers (GET /v1/models) instead of the registry",
    )
    ls.set_defaults(run=run_list)
    path = actions.add_parser("path", parents=parents, help="print a model's GGUF path")
    path.add_argument("name")
    path.set_defaults(run=run_path)
    info = actions.add_parser(
        "info",
        parents=parents,
        help="a model's facts from its GGUF header (no weights are loaded)",
        description="Architecture, parameters, quantisation, context length, chat template "
        "and tool support of a present model, read from its GGUF header without loading "
        "weights. NAME: registry name, hf:ORG/REPO[:QUANT|:FILE] or a path.",
    )
    info.add_argument("name", metavar="NAME")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=run_info)
    rm = actions.add_parser(
        "rm",
        parents=parents,
        help="delete a pulled or converted model's files",
        description="Delete a model's GGUF file (every part of a split one) from tedchat's "
        "models folder. NAME: registry name, hf:ORG/REPO[:QUANT|:FILE] or a path in that "
        "folder. Bundled models and files elsewhere are not removed.",
    )
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(run=run_rm)
    pull = actions.add_parser(
        "pull",
        parents=parents,
        help="download a GGUF (or safetensors to convert) from the Hugging Face Hub",
        description="hf:ORG/REPO[:QUANT|:FILE] or a registry name with a published GGUF: "
        "download exactly one GGUF (every part of a split one): QUANT picks the file whose "
        "name holds it (e.g. Q4_K_M, case-insensitive), FILE names it exactly; without either "
        "the repo's Q4_K_M, else its only GGUF, else the choices are listed (exit 2). "
        "ORG/REPO or tedllm: download a checkpoint's safetensors, config and tokenizer, then "
        "run tedchat models convert NAME. Either way: free disk space is checked first, "
        "interrupted downloads resume, every file is checked against the Hub's hash, and no "
        "partial file is left under its final name. HF_TOKEN authenticates (gated or private "
        "repos; never shown); HF_ENDPOINT selects a mirror.",
    )
    pull.add_argument(
        "name",
        help="hf:ORG/REPO[:QUANT|:FILE], a registry name (e.g. qwen2.5-1.5b, tedllm) or a "
        "repo id ORG/REPO (safetensors)",
    )
    pull.add_argument("--revision", metavar="REV", help="branch, tag or commit (default: main)")
    pull.set_defaults(run=run_pull)
    convert = actions.add_parser(
        "convert",
        parents=parents,
        help="convert pulled safetensors (or a checkpoint folder) to a GGUF for llama.cpp",
        description="Convert a Llama-architecture safetensors checkpoint to GGUF, streaming "
        "tensor by tensor (an 8B model converts in well under its own size of memory), then "
        "quantise it with llama.cpp. NAME is a pulled registry name or repo id; DIR a folder "
        "with config.json, tokenizer.json and *.safetensors.",
    )
    convert.add_argument("source", metavar="NAME|DIR")
    convert.add_argument(
        "--quant",
        choices=("F16", "Q8_0", "Q4_K_M"),
        help="output type (default: the registry's choice for NAME, Q4_K_M for a folder)",
    )
    convert.add_argument("--out", metavar="PATH", help="GGUF to write (default: in the data dir)")
    convert.add_argument(
        "--threads", type=int, metavar="N", help="quantiser threads (default: every core)"
    )
    convert.set_defaults(run=run_convert)


def model_rows() -> list[dict[str, Any]]:
    """One row per registry model (present or not), then one per other GGUF here."""
    from tedchat.errors import ModelFormatError
    from tedchat.models.inventory import header_facts, present_models
    from tedchat.models.registry import REGISTRY, entry_path, is_pulled, snapshot_dir

    facts: dict[str, dict[str, Any]] = {}
    others = []
    for model in present_models():
        try:
            facts[model.name] = header_facts(model)[1]
        except ModelFormatError as exc:
            facts[model.name] = {"error": exc.message, "size_bytes": model.size_bytes}
        if model.entry is None:
            others.append(model)
    rows = []
    for entry in REGISTRY.values():
        path = entry_path(entry)
        present = path.is_file()
        rows.append(
            {
                "name": entry.name,
                "present": present,
                "path": str(path),
                "size_bytes": path.stat().st_size if present else None,
                "license": entry.license,
                "description": entry.description,
                "license_url": entry.license_url or None,
                "source": f"hf:{entry.hf_repo}" if entry.hf_repo else "bundled",
                "downloaded": is_pulled(entry.hf_repo) if entry.hf_repo else None,
                "download_path": str(snapshot_dir(entry.hf_repo)) if entry.hf_repo else None,
                "base_model": entry.base_model,
                "prompt_format": entry.prompt_format or "auto",
                "context_length": entry.context_length,
                "quant": _quant_of(path, entry.quants),
                "tools": entry.tools,
                **_header_fields(facts.get(entry.name)),
            }
        )
        # context_length stays the registry's (the model card's); the file's is apart.
        rows[-1]["context_length"] = entry.context_length
        rows[-1]["file_context_length"] = _header_fields(facts.get(entry.name)).get(
            "context_length"
        )
        if entry.gguf:
            rows[-1]["source"] = entry.gguf
            rows[-1]["pull"] = f"tedchat models pull {entry.name}"
            rows[-1]["download_bytes"] = entry.size_bytes
    for model in others:
        fields = _header_fields(facts[model.name])
        rows.append(
            {
                "name": model.name,
                "present": True,
                "path": str(model.paths[0]),
                "size_bytes": model.size_bytes,
                "license": fields.get("license"),
                "source": "hf" if model.name.startswith("hf:") else "file",
                **fields,
            }
        )
    return rows


def _header_fields(facts: dict[str, Any] | None) -> dict[str, Any]:
    """What the GGUF header says, for a list row (nothing for a model that is not here)."""
    if not facts:
        return {}
    if "error" in facts:
        return {"error": facts["error"]}
    keys = ("architecture", "parameters", "quantization", "context_length", "parts")
    out = {k: facts[k] for k in keys}
    out["chat_template"] = facts["chat_template"]
    out["tools"] = facts["template_supports_tools"]
    if facts.get("license"):
        out["license"] = facts["license"]
    return out


def _quant_of(path: Any, quants: tuple[str, ...]) -> str | None:
    return next((q for q in quants if path.name.endswith(f".{q}.gguf")), None)


def run_list(args: argparse.Namespace) -> int:
    if args.engine:
        return run_list_engine(args)
    rows = model_rows()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    present = [r for r in rows if r["present"]]
    table: list[tuple[str, ...]] = [
        ("NAME", "SIZE", "ARCH", "PARAMS", "QUANT", "CONTEXT", "TOOLS", "LICENSE")
    ]
    for r in present:
        if "error" in r:
            table.append((r["name"], _size(r["size_bytes"]), "unreadable: " + r["error"]))
            continue
        table.append(
            (
                r["name"],
                _size(r["size_bytes"]),
                r.get("architecture") or "-",
                _params(r.get("parameters")),
                r.get("quantization") or "-",
                str(r.get("file_context_length") or r.get("context_length") or "-"),
                "yes" if r.get("tools") else "no",
                r.get("license") or "-",
            )
        )
    _print_table(table)
    missing = [r for r in rows if not r["present"]]
    if missing:
        print("\nnot downloaded:")
        for r in missing:
            if r.get("pull"):
                how = f"{r['pull']} ({_size(r.get('download_bytes'))}, {r['license']})"
            elif r.get("downloaded"):
                how = f"tedchat models convert {r['name']}"
            elif r.get("source", "").startswith("hf:"):
                how = f"tedchat models pull {r['name']} && tedchat models convert {r['name']}"
            else:
                how = "not installed"
            print(f"  {r['name']:<16} {how}")
    return 0


def _size(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _params(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def _print_table(table: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in table if i < len(row)) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


def run_list_engine(args: argparse.Namespace) -> int:
    """The models an engine can serve, for engines that declare ``list_models``."""
    import asyncio

    from tedchat.cli import warn_plugin_failures
    from tedchat.engine import as_model_lister, capabilities_of
    from tedchat.engines import load_context
    from tedchat.errors import UsageError

    context = load_context(args.config)
    warn_plugin_failures(context)
    engine = context.engines.get(args.engine)
    if not capabilities_of(engine).list_models:
        raise UsageError(
            f"engine {args.engine!r} (type {engine.type}) cannot list models; "
            "its model is set in its config table"
        )

    async def fetch() -> list[dict[str, Any]]:
        try:
            return await as_model_lister(engine).list_models()
        finally:
            await engine.close()

    models = asyncio.run(fetch())
    if args.json:
        print(json.dumps(models, ensure_ascii=False, indent=2))
        return 0
    for model in models:
        owner = model.get("owned_by")
        print(f"{model['id']}  ({owner})" if owner else model["id"])
    return 0


def run_path(args: argparse.Namespace) -> int:
    from tedchat.models.registry import resolve_model

    print(resolve_model(args.name))
    return 0


def run_info(args: argparse.Namespace) -> int:
    from tedchat.models.inventory import find, header_facts

    model = find(args.name)
    _, facts = header_facts(model)
    if args.json:
        print(json.dumps(facts, ensure_ascii=False, indent=2))
        return 0
    if facts["chat_template"]:
        template = "yes, renders tools" if facts["template_supports_tools"] else "yes, no tools"
    else:
        template = "none (a base model: plain prompts)"
    parts = f", {facts['parts']} parts" if facts["parts"] > 1 else ""
    lines = [
        ("name", facts["name"]),
        ("file", f"{facts['path']} ({_size(facts['size_bytes'])}{parts})"),
        ("architecture", facts["architecture"]),
        ("parameters", f"{_params(facts['parameters'])} ({facts['parameters']:,})"),
        ("quantization", facts["quantization"] or "-"),
        ("context", f"{facts['context_length']:,} tokens" if facts["context_length"] else "-"),
        ("layers", str(facts["layers"] or "-")),
        ("vocabulary", f"{facts['vocab_size']:,} tokens" if facts["vocab_size"] else "-"),
        ("chat template", template),
        ("license", facts["license"] or "-"),
    ]
    for key, value in lines:
        print(f"{key:<14}{value}")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    from tedchat.models.inventory import remove

    model = remove(args.name)
    for path in model.paths:
        print(f"removed {path}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from tedchat.models.hub import gguf_ref, pull, pull_gguf
    from tedchat.models.registry import REGISTRY

    source = gguf_ref(args.name)
    if source is not None:
        ref, entry = source
        got = pull_gguf(ref, entry=entry, revision=args.revision)
        print(got.paths[0])
        if got.downloaded_bytes:
            rate = got.downloaded_bytes / max(got.seconds, 1e-9) / 1e6
            print(
                f"pulled {got.name} at {got.commit[:12]}: {got.downloaded_bytes / 1e9:.2f} GB "
                f"in {got.seconds:.0f} s ({rate:.0f} MB/s)",
                file=sys.stderr,
            )
        use = entry.name if entry is not None else got.name
        print(f'use it: model = "{use}" in an [engines.NAME] table', file=sys.stderr)
        return 0
    result = pull(args.name, revision=args.revision)
    print(result.folder)
    if result.downloaded_bytes:
        rate = result.downloaded_bytes / max(result.seconds, 1e-9) / 1e6
        print(
            f"pulled {result.repo_id} at {result.commit[:12]}: "
            f"{result.downloaded_bytes / 1e9:.2f} GB in {result.seconds:.0f} s ({rate:.0f} MB/s)",
            file=sys.stderr,
        )
    name = args.name if args.name in REGISTRY else str(result.folder)
    print(f"next: tedchat models convert {name}", file=sys.stderr)
    return 0


def run_convert(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from tedchat.errors import ModelNotFoundError
    from tedchat.models.convert import convert_checkpoint
    from tedchat.models.hub import pulled_folder
    from tedchat.models.registry import REGISTRY, gguf_path, models_dir

    entry = REGISTRY.get(args.source)
    folder = Path(args.source).expanduser()
    if entry is None and not folder.is_dir() and args.source.startswith(("/", ".", "~")):
        raise ModelNotFoundError(f"checkpoint folder not found: {folder}")
    if entry is not None or not folder.is_dir():
        folder = pulled_folder(args.source)  # a registry name or a pulled repo id
    quant = args.quant or (entry.quants[0] if entry and entry.quants else "Q4_K_M")
    if args.out:
        out = Path(args.out).expanduser()
    elif entry is not None and entry.quants:
        out = gguf_path(entry, quant)
    else:
        out = models_dir() / f"{folder.name.removesuffix('.partial')}.{quant}.gguf"
    result = convert_checkpoint(
        folder,
        out,
        quant,
        threads=args.threads or os.cpu_count() or 1,
        name=entry.filename.split(".")[0] if entry else folder.name,
        license=entry.license if entry else None,
        source_url=f"https://huggingface.co/{entry.hf_repo}" if entry and entry.hf_repo else None,
        expect=entry,
    )
    print(result.path)
    print(
        f"converted to {result.quant}: {result.size_bytes / 1e9:.2f} GB in {result.seconds:.0f} s",
        file=sys.stderr,
    )
    return 0
