"""How fast the history store answers with a big history: list, show and search.

Builds a history of 100,000 messages (conversations of 20: ten user messages, each with one
reply; English and Japanese text) in a temporary folder through the store's own import path,
then times each call, best of several runs, and prints a table. Exits 1 if any call takes
longer than its bound (100 ms), so it can guard against regressions.

    python benchmarks/history_store.py [--messages 100000] [--runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tedchat.history.schema import SCHEMA_VERSION
from tedchat.history.store import Store

BOUND_S = 0.100
MESSAGES_PER_CONVERSATION = 20

ENGLISH = [
    "The wafer-scale engine keeps every layer's weights in on-chip SRAM.",
    "Time to first token depends on prompt length and the prefill throughput.",
    "Give me a list of ten great computer scientists and their greatest achievement.",
    "Alan Turing formalised computation; Grace Hopper built the first compiler.",
    "The GPU streams its weights from HBM for every generated token.",
    "Latency matters more than throughput when a person is waiting for the answer.",
    "SQLite in WAL mode lets one writer and many readers work at the same time.",
    "Quantised models trade a little accuracy for a lot of memory bandwidth.",
    "Donald Knuth wrote The Art of Computer Programming and created TeX.",
    "Speculative decoding drafts tokens with a small model and verifies them in batches.",
]
JAPANESE = [
    "東京エレクトロンデバイスの技術者が大規模言語モデルを評価しました。",
    "昨日は東京タワーに行きました。夜景がとてもきれいでした。",
    "ウェハースケールのエンジンは全ての重みをオンチップSRAMに置きます。",
    "最初のトークンまでの時間はプロンプトの長さに依存します。",
    "日本語に強いモデルを継続事前学習で作りました。",
    "コンピュータ科学者を十人挙げて、それぞれの最大の業績を教えてください。",
    "推論サーバーの応答速度を比較するためにベンチマークを実行しました。",
    "京都の紅葉は十一月が見頃です。",
    "エレクトロンの流れを制御する半導体デバイスについて説明します。",
    "量子化したモデルはメモリ帯域を節約できますが、精度が少し下がります。",
]


def paragraph(rng: random.Random) -> str:
    pool = JAPANESE if rng.random() < 0.5 else ENGLISH
    other = ENGLISH if pool is JAPANESE else JAPANESE
    sentences = [rng.choice(pool) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.3:  # mixed-language messages are common in practice
        sentences.append(rng.choice(other))
    return " ".join(sentences) + f" (#{rng.randint(0, 10**6)})"


def conversation_doc(rng: random.Random, n: int, t0: float) -> dict[str, Any]:
    messages = []
    for k in range(MESSAGES_PER_CONVERSATION // 2):
        t = t0 + k * 60
        messages.append(
            {
                "role": "user",
                "content": paragraph(rng),
                "created": t,
                "replies": [
                    {
                        "engine": rng.choice(["wafer", "llamacpp", "http"]),
                        "model": "smollm2",
                        "content": "\n\n".join(paragraph(rng) for _ in range(rng.randint(1, 3))),
                        "created": t + 1,
                        "finish_reason": "stop",
                        "metrics": {"ttft_s": 0.05, "output_tokens_per_s": 80.0},
                    }
                ],
            }
        )
    return {
        "format": "tedchat-conversation",
        "version": 1,
        "conversation": {
            "title": f"Conversation {n}",
            "created": t0,
            "updated": t0 + 600,
            "system": None,
            "params": {"temperature": 0.7},
        },
        "messages": messages,
    }


def build(path: Path, n_messages: int) -> float:
    rng = random.Random(42)
    start = time.perf_counter()
    n_conversations = n_messages // MESSAGES_PER_CONVERSATION
    with Store.open(path) as store:
        for n in range(n_conversations):
            store.import_json(conversation_doc(rng, n, 1.7e9 + n * 3600))
            if n % 500 == 499:
                print(f"  built {n + 1}/{n_conversations} conversations", file=sys.stderr)
    return time.perf_counter() - start


def pad(text: str, width: int) -> str:
    """Left-justify to a terminal width: CJK characters take two columns."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)


def best_of(runs: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the database in this folder")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        path = folder / "history.db"
        if path.exists():
            print(f"reusing {path}", file=sys.stderr)
            build_s: float | None = None
        else:
            print(f"building {args.messages} messages in {path} ...", file=sys.stderr)
            build_s = build(path, args.messages)

        open_s, store = best_of(1, lambda: Store.open(path))
        assert isinstance(store, Store)
        with store:
            everything = store.list_conversations(limit=10**9)
            total = sum(c.message_count for c in everything)
            ids = [c.id for c in everything]
            rng = random.Random(7)
            picks = [rng.choice(ids) for _ in range(args.runs)]
            pick = iter(picks * 2)
            cases: list[tuple[str, Callable[[], object]]] = [
                ("list (first page of 50)", lambda: store.list_conversations()),
                ("list (page at offset 4000)", lambda: store.list_conversations(offset=4000)),
                ("last conversation id", store.last_conversation_id),
                ("show (20 messages)", lambda: store.get_conversation(next(pick))),
                ("search 東京 (2-char kanji)", lambda: store.search("東京")),
                ("search エレクトロン (katakana)", lambda: store.search("エレクトロン")),
                ("search 紅葉 (rarer 2-char)", lambda: store.search("紅葉")),
                ("search latency (English)", lambda: store.search("latency")),
                ("search the (very common)", lambda: store.search("the")),
                ("search Knuth 東京 (2 terms)", lambda: store.search("Knuth 東京")),
                ("search zyxwvut (no match)", lambda: store.search("zyxwvut")),
                # Worst case: every bigram is common but the phrase never occurs, so FTS5 must
                # check positions in every document holding all of them.
                ("search 東京の技術 (absent phrase)", lambda: store.search("東京の技術")),
                ("search the model the (common AND)", lambda: store.search("the model the")),
            ]
            rows = []
            failed = False
            for name, fn in cases:
                seconds, result = best_of(args.runs, fn)
                count = len(result) if isinstance(result, list) else 1
                ok = seconds < BOUND_S
                failed |= not ok
                rows.append((name, seconds, count, ok))
            plan = " | ".join(store.explain_search("東京"))
            size_mb = path.stat().st_size / 1e6

    built = f"built in {build_s:.1f} s" if build_s is not None else "reused"
    print(
        f"history: {total} messages, {len(ids)} conversations, schema v{SCHEMA_VERSION},"
        f" {size_mb:.0f} MB, {built}; open (quick_check + sweep) {open_s * 1000:.0f} ms"
    )
    print(f"search plan: {plan}")
    header = f"best of {args.runs}"
    print(f"{pad('call', 34)} {header:>12} {'results':>8}  bound {BOUND_S * 1000:.0f} ms")
    for name, seconds, count, ok in rows:
        print(f"{pad(name, 34)} {seconds * 1000:9.2f} ms {count:8}  {'ok' if ok else 'TOO SLOW'}")
    if failed:
        print("FAIL: some calls exceeded the bound", file=sys.stderr)
        return 1
    print(json.dumps({name: round(s * 1000, 2) for name, s, _, _ in rows}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
