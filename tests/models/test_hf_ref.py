"""Which GGUF an ``hf:`` name picks (no network: the rules over file lists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tedchat.errors import UsageError
from tedchat.models.hf_ref import (
    Ambiguous,
    HfRef,
    NoMatch,
    choose,
    group_models,
    parse_ref,
    split_siblings,
)

FILES = [
    "M-IQ4_XS.gguf",
    "M-Q4_K_M.gguf",
    "M-Q4_K_S.gguf",
    "m.q8_0.gguf",
    "mmproj-M-f16.gguf",
    "big/M-F16-00001-of-00002.gguf",
    "big/M-F16-00002-of-00002.gguf",
    "cut/M-BF16-00001-of-00003.gguf",  # part 2 and 3 missing: not a model
    "README.md",
]


def pick(name: str, files: list[str] = FILES) -> list[str]:
    return choose(parse_ref(name), files, "the repo")


def test_names_parse() -> None:
    assert parse_ref("hf:a/b") == HfRef("a/b")
    assert parse_ref("hf:a/b:Q4_K_M").quant == "Q4_K_M"
    assert parse_ref("hf:a/b:x/y.GGUF").file == "x/y.GGUF"
    assert str(parse_ref("hf:a/b:Q8_0")) == "hf:a/b:Q8_0"
    for bad in ("hf:", "hf:a", "hf:a/b:", "hf:/b", "hf:a/b/c"):
        with pytest.raises(UsageError):
            parse_ref(bad)


def test_quants_match_whole_words_in_any_case() -> None:
    assert pick("hf:a/b:q4_k_m") == ["M-Q4_K_M.gguf"]
    assert pick("hf:a/b:Q8_0") == ["m.q8_0.gguf"]
    assert pick("hf:a/b:IQ4_XS") == ["M-IQ4_XS.gguf"]
    with pytest.raises(NoMatch):
        pick("hf:a/b:Q4_XS")  # IQ4_XS is another quant
    with pytest.raises(NoMatch):
        pick("hf:a/b:Q4_K")  # not Q4_K_M or Q4_K_S


def test_split_models_are_one_model_and_incomplete_ones_none() -> None:
    assert pick("hf:a/b:F16") == [
        "big/M-F16-00001-of-00002.gguf",
        "big/M-F16-00002-of-00002.gguf",
    ]
    assert pick("hf:a/b:M-F16-00002-of-00002.gguf") == pick("hf:a/b:F16")
    with pytest.raises(NoMatch):
        pick("hf:a/b:BF16")
    assert "cut/M-BF16-00001-of-00003.gguf" not in group_models(FILES)


def test_the_default_is_q4_k_m_else_the_only_model_else_the_choices() -> None:
    assert pick("hf:a/b") == ["M-Q4_K_M.gguf"]
    assert pick("hf:a/b", ["only.Q8_0.gguf", "mmproj.gguf"]) == ["only.Q8_0.gguf"]
    with pytest.raises(Ambiguous) as caught:
        pick("hf:a/b", ["x.Q8_0.gguf", "x.Q6_K.gguf"])
    assert caught.value.exit_code == 2
    assert "x.Q6_K.gguf, x.Q8_0.gguf" in (caught.value.hint or "")
    with pytest.raises(NoMatch):
        pick("hf:a/b", ["README.md"])


def test_split_siblings() -> None:
    first = Path("/m/big/M-F16-00001-of-00003.gguf")
    assert [p.name for p in split_siblings(first)] == [
        "M-F16-00001-of-00003.gguf",
        "M-F16-00002-of-00003.gguf",
        "M-F16-00003-of-00003.gguf",
    ]
    assert split_siblings(Path("/m/x.gguf")) == [Path("/m/x.gguf")]
