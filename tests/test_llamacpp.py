"""The llamacpp engine on the real bundled model, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ONE_THREAD, run_cli, start_long_answer


def test_ask_answers_paris_with_metrics_line(tedchat_home: Path) -> None:
    result = run_cli(
        tedchat_home,
        "ask",
        "--engine",
        "local",
        "What is the capital of France?",  # the model's default sampling, as a person asks
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


def test_ctrl_c_keeps_partial_answer_and_exits_130(tedchat_home: Path) -> None:
    import signal
    import time

    proc = start_long_answer(tedchat_home, 2000)
    try:
        assert proc.stdout is not None
        first = proc.stdout.read(20)  # the answer has started streaming
        assert first
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=60)
        stopped_after = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert len(first + out) > 20
    assert "cancelled" in err.decode().splitlines()[-1]
    assert "Traceback" not in err.decode()
    assert stopped_after < 30  # a wide margin: it stops between tokens, well under a second
