"""The llamacpp engine on the real bundled model, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

# One thread: the test machine may be busy, and spinning llama.cpp threads collapse there.
ONE_THREAD = {"TEDCHAT_THREADS": "1"}


def test_ask_answers_paris_with_metrics_line(tedchat_home: Path) -> None:
    result = run_cli(
        tedchat_home,
        "ask",
        "--engine",
        "local",
        "--temperature",
        "0",
        "--max-tokens",
        "40",
        "What is the capital of France?",
        **ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    assert "Paris" in result.stdout
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("[local · smollm2] TTFT ") and " tok/s · " in line and "tokens" in line


def test_client_tokens_per_second_agrees_with_llama_cpp_counters(tedchat_home: Path) -> None:
    prompt = "Write a long story about a dragon who learns to bake bread. Make it detailed."
    result = run_cli(
        tedchat_home,
        "ask",
        "--engine",
        "local",
        "--temperature",
        "0",
        "--max-tokens",
        "128",
        "--json",
        prompt,
        **ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["output_tokens"] == 128 and record["finish_reason"] == "length"
    assert record["output_tokens_source"] == "engine"
    timings = record["timings"]
    llama_rate = timings["eval_tokens"] / timings["eval_s"]
    client_rate = record["output_tokens_per_s"]
    assert abs(client_rate / llama_rate - 1) <= 0.10, (client_rate, llama_rate)
    assert record["prompt_tokens"] > 10 and record["ttft_s"] > 0
    assert record["engine"] == "local" and record["model"] == "smollm2"


def test_stdin_is_appended_to_the_prompt(tedchat_home: Path) -> None:
    result = run_cli(
        tedchat_home,
        "ask",
        "--temperature",
        "0",
        "--max-tokens",
        "20",
        "--json",
        "Repeat the word after the colon:",
        input="banana\n",
        **ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    # The piped word reached the model: the prompt grew by it, and the answer repeats it.
    assert "banana" in record["text"].lower()
