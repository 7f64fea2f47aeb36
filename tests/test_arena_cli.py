"""``tedchat arena leaderboard`` and ``tedchat arena export`` as a person runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tedchat.config import load_settings
from tedchat.history.files import open_history
from tedchat.history.records import ReplyMetrics
from tedchat.history.votes import Vote, VotePane
from tests.conftest import run_cli


def test_no_votes_print_an_empty_leaderboard_and_exit_0(tedchat_home: Path) -> None:
    out = run_cli(tedchat_home, "arena", "leaderboard", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["engines"] == [] and doc["method"].startswith("Bradley-Terry")
    text = run_cli(tedchat_home, "arena", "leaderboard")
    assert text.returncode == 0 and "no arena votes yet" in text.stdout
    export = run_cli(tedchat_home, "arena", "export")
    assert export.returncode == 0 and export.stdout == ""


def test_leaderboard_fields_and_the_export_to_a_file(tedchat_home: Path, tmp_path: Path) -> None:
    with open_history(load_settings()) as store:
        for winner in ("A", "A", "B"):
            panes = (
                VotePane("A", "速い", "model-a", reply="はい", metrics=ReplyMetrics(0.2, 40.0)),
                VotePane("B", "slow", "model-b", reply="いいえ", metrics=ReplyMetrics(0.6, 10.0)),
            )
            store.add_vote(Vote("質問", "win", winner, panes))
        store.add_vote(Vote("質問", "all_bad", None, panes))
    out = run_cli(tedchat_home, "arena", "leaderboard", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    first, second = doc["engines"]
    assert set(first) == {
        "engine",
        "model",
        "rating",
        "ci_low",
        "ci_high",
        "votes",
        "wins",
        "losses",
        "ties",
        "median_ttft_s",
        "median_output_tokens_per_s",
    }
    assert (first["engine"], first["model"], first["votes"], first["wins"]) == (
        "速い",
        "model-a",
        3,
        2,
    )
    assert first["ci_low"] < first["rating"] < first["ci_high"]
    assert (first["median_ttft_s"], second["median_output_tokens_per_s"]) == (0.2, 10.0)
    assert doc["excluded"] == {"all_bad": 1, "shared_text_model": 0}
    text = run_cli(tedchat_home, "arena", "leaderboard")
    assert "速い" in text.stdout and "4 votes, 3 fitted (1 all bad" in text.stdout
    target = tmp_path / "votes.jsonl"
    export = run_cli(tedchat_home, "arena", "export", "-o", str(target))
    assert export.returncode == 0, export.stderr
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [v["outcome"] for v in lines] == ["win", "win", "win", "all_bad"]
    assert lines[0]["prompt"] == "質問" and lines[0]["winner_engine"] == "速い"
    assert lines[3]["pairs"] == [{"first": "速い", "second": "slow", "result": "both_bad"}]


def test_misused_options_are_one_line_and_exit_2(tedchat_home: Path) -> None:
    for args in (
        ("arena", "leaderboard", "extra"),
        ("arena", "export", "--json"),
        ("arena", "a", "b", "--json"),
        ("arena", "only-one"),
    ):
        out = run_cli(tedchat_home, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr


def test_compare_blind_and_arena_open_the_arena_with_the_seed(tedchat_home: Path) -> None:
    from tedchat.cli import build_parser
    from tedchat.commands.compare import app_options
    from tedchat.engines import load_context

    parser = build_parser()
    args = parser.parse_args(["compare", "--blind", "--seed", "5", "wafer-70b", "gpu-70b"])
    options = app_options(args, load_context())
    assert (options["compare"], options["blind"], options["seed"]) == (
        ["wafer-70b", "gpu-70b"],
        True,
        5,
    )
    assert options["params"].seed == 5  # as everywhere, --seed also seeds sampling
    plain = app_options(parser.parse_args(["compare", "local", "wafer"]), load_context())
    assert plain["blind"] is False


def test_the_arena_command_reads_as_compare_does(tedchat_home: Path) -> None:
    """``tedchat arena A B`` goes through compare's options (its own --replay, compare's
    defaults for the rest)."""
    from tedchat.cli import build_parser
    from tedchat.commands.arena import _compare_defaults
    from tedchat.commands.compare import app_options
    from tedchat.engines import load_context

    args = build_parser().parse_args(["arena", "local", "wafer", "--replay", "--seed", "2"])
    args.engines = args.words
    _compare_defaults(args)
    options = app_options(args, load_context())
    assert (options["compare"], options["replay"], options["seed"]) == (["local", "wafer"], True, 2)


def test_the_text_leaderboard_lines_up_japanese_names() -> None:
    """Wide characters take two cells: the columns after a Japanese name still line up."""
    import unicodedata

    from tedchat.history.votes import Pair
    from tedchat.leaderboard import leaderboard, render_text

    panes = (VotePane("A", "日本語エンジン", "モデル"), VotePane("B", "en", "model-b"))
    votes = [Vote("q", "win", "A", panes, pairs=(Pair("A", "B", "first"),))] * 3
    header, first, second = render_text(leaderboard(votes)).splitlines()[:3]

    def cells(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    assert "日本語エンジン" in first and "モデル" in first
    # The model column starts at the same cell on every line...
    assert cells(header[: header.index("model")]) == cells(first[: first.index("モデル")])
    assert cells(header[: header.index("model")]) == cells(second[: second.index("model-b")])
    # ...and the right-aligned last column ends at the same cell.
    assert cells(header) == cells(first) == cells(second)
