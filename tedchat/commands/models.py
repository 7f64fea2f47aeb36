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
        help="list known models and where their files are",
        description="The model registry: names an engine's 'model' setting accepts.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = actions.add_parser(
        "list",
        parents=parents,
        help="list registry models (or, with --engine, the models a server offers)",
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
    pull = actions.add_parser(
        "pull",
        parents=parents,
        help="download a model's safetensors from the Hugging Face Hub",
        description="Download a registry model's (or any Hugging Face repo's) safetensors, "
        "config and tokenizer into the user data dir, resumably, checking free disk space "
        "first and every file's hash after. HF_TOKEN authenticates (gated or private repos); "
        "HF_ENDPOINT selects a mirror. Then: tedchat models convert NAME.",
    )
    pull.add_argument("name", help="registry name (e.g. tedllm) or Hugging Face repo id org/name")
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
    from tedchat.models.registry import REGISTRY, entry_path, is_pulled, snapshot_dir

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
            }
        )
    return rows


def _quant_of(path: Any, quants: tuple[str, ...]) -> str | None:
    return next((q for q in quants if path.name.endswith(f".{q}.gguf")), None)


def run_list(args: argparse.Namespace) -> int:
    if args.engine:
        return run_list_engine(args)
    rows = model_rows()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        if r["present"]:
            size = f"{r['size_bytes'] / 1e6:.0f} MB"
        else:
            size = "downloaded" if r["downloaded"] else "not present"
        print(f"{r['name']:<10} {size:<12} {r['license']:<12} {r['path']}")
    return 0


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


def run_pull(args: argparse.Namespace) -> int:
    from tedchat.models.hub import pull
    from tedchat.models.registry import REGISTRY

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
