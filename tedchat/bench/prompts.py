"""The prompts a bench runs: the built-in set, or a file of the user's own.

The built-in set covers what changes the figures: the reference question of the product
(the scene every comparison starts from), a short prompt (TTFT dominated by fixed costs), a long
one (prefill dominates TTFT) and Japanese ones (TEDLLM's language; several tokens per character
in most tokenizers, so tok/s and characters/s part ways).

``--prompts`` takes ``builtin`` (all of them), ``builtin:ID,ID`` (some), or a file:

- ``*.json``: a list whose items are strings or objects ``{"id", "prompt", "system"?}``;
- anything else: plain text, one prompt per non-blank line (``#`` starts a comment line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tedchat.errors import UsageError

REFERENCE_QUESTION = (
    "Give me a list of 10 great computer scientists, "
    "and tell me what each one's greatest achievement was."
)


@dataclass(frozen=True)
class Prompt:
    """One prompt of a bench; ``id`` names it in tables, charts and the record."""

    id: str
    text: str
    system: str | None = None


_LONG_EN = """\
Read the passage below and summarise it in three bullet points.

In December 1947, John Bardeen and Walter Brattain, working in William Shockley's group at Bell \
Telephone Laboratories, pressed two gold contacts onto a small slab of germanium and saw a signal \
come out stronger than it went in. The point-contact transistor was fragile and hard to make, \
but it proved that a solid crystal could do the job of a vacuum tube: amplify and switch an \
electric current without a glowing filament, without a warm-up delay and with a fraction of the \
power. Within a few years Shockley's junction transistor made the device robust enough for mass \
production, and by the late 1950s transistors had replaced tubes in radios, hearing aids and the \
first commercial computers. The next step came in 1958 and 1959, when Jack Kilby at Texas \
Instruments and Robert Noyce at Fairchild Semiconductor showed, independently, that several \
transistors, resistors and capacitors could be built on a single piece of semiconductor and \
wired together there. Noyce's planar version, with its flat layers of silicon dioxide and \
evaporated metal, could be made by photolithography, and that process has been refined ever \
since. In 1965 Gordon Moore observed that the number of components on a chip was doubling \
roughly every year, a pace he later revised to every two years. The observation became a \
planning target for a whole industry, and a chip today holds tens of billions of transistors, \
each smaller than most viruses."""

_LONG_JA = """\
次の文章を読んで、要点を三つの箇条書きにまとめてください。

1964年10月1日、東京オリンピックの開幕を九日後に控えて、東海道新幹線が東京と新大阪の間で開業した。\
最高速度は時速210キロメートルで、それまで特急でおよそ6時間半かかっていた両都市の間を、\
翌年の秋には3時間10分で結ぶようになった。建設にあたっては、急なカーブや踏切をなくすために\
専用の線路が新たに敷かれ、列車の運行は中央の指令所から一括して管理された。\
開業当初は、これほど速い列車が本当に安全なのかと疑う声も少なくなかったが、\
それから半世紀以上、脱線や衝突による乗客の死亡事故は一度も起きていない。\
新幹線の成功は、鉄道はもはや時代遅れの乗り物だという当時の世界の見方を覆し、\
フランスのTGVやドイツのICEをはじめ、各国の高速鉄道の計画にも大きな影響を与えた。\
一方で、沿線の騒音や振動は長く社会問題となり、トンネルの出口で「ドン」という破裂音が\
響く現象を抑えるために、先頭車両の形は世代を追うごとに細長く改良されてきた。\
現在では路線網が北海道から九州まで広がり、毎日多くの人々の移動を支えている。"""

BUILTIN_PROMPTS: tuple[Prompt, ...] = (
    Prompt("reference", REFERENCE_QUESTION),
    Prompt("short-en", "What is the capital of France? Answer in one sentence."),
    Prompt("long-en", _LONG_EN),
    Prompt(
        "reference-ja",
        "偉大なコンピュータ科学者を10人挙げて、それぞれの一番の功績を教えてください。",
    ),
    Prompt("short-ja", "日本の首都はどこですか。一文で答えてください。"),
    Prompt("long-ja", _LONG_JA),
)

# Not in the built-in set: the prompt speculative decoding is measured on
# (benchmarks/llamacpp_speculative.py), one whose answer repeats much of the prompt.
REPETITIVE_PROMPT = Prompt(
    "repetitive",
    "Repeat the following list exactly as it is written:\n\n"
    "1. Alan Turing: the Turing machine\n"
    "2. Grace Hopper: the first compiler\n"
    "3. Donald Knuth: The Art of Computer Programming\n"
    "4. Edsger Dijkstra: the shortest path algorithm\n"
    "5. Barbara Liskov: the Liskov substitution principle\n"
    "6. John McCarthy: the Lisp language\n"
    "7. Tim Berners-Lee: the World Wide Web\n"
    "8. Ken Thompson: the Unix operating system\n"
    "9. Claude Shannon: information theory\n"
    "10. Frances Allen: optimizing compilers",
)


def load_prompts(spec: str) -> list[Prompt]:
    """The prompts ``--prompts SPEC`` names (see the module docstring), or a UsageError."""
    if spec == "builtin":
        return list(BUILTIN_PROMPTS)
    if spec.startswith("builtin:"):
        by_id = {p.id: p for p in BUILTIN_PROMPTS}
        wanted = [w.strip() for w in spec.removeprefix("builtin:").split(",") if w.strip()]
        unknown = [w for w in wanted if w not in by_id]
        if unknown or not wanted:
            raise UsageError(
                f"unknown built-in prompt {', '.join(unknown) or '(none given)'}; "
                f"built-in prompts: {', '.join(by_id)}",
                hint="list them with: tedchat bench --list-prompts",
            )
        return [by_id[w] for w in dict.fromkeys(wanted)]
    return read_prompt_file(Path(spec).expanduser())


def read_prompt_file(path: Path) -> list[Prompt]:
    """Prompts from a JSON or text file (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"prompt file not found: {path}",
            hint="--prompts takes a file, 'builtin' or 'builtin:ID,ID'",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read prompt file {path}: {exc}") from exc
    prompts = _from_json(path, text) if path.suffix.lower() == ".json" else _from_lines(text)
    if not prompts:
        raise UsageError(f"no prompts in {path}")
    ids = [p.id for p in prompts]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise UsageError(f"duplicate prompt ids in {path}: {', '.join(duplicates)}")
    return prompts


def _from_lines(text: str) -> list[Prompt]:
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith("#")]
    return [Prompt(f"p{i}", line) for i, line in enumerate(kept, 1)]


def _from_json(path: Path, text: str) -> list[Prompt]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"malformed JSON in {path}: {exc}") from exc
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON list of prompts")
    prompts = []
    for i, item in enumerate(data, 1):
        if isinstance(item, str) and item.strip():
            prompts.append(Prompt(f"p{i}", item))
        elif (
            isinstance(item, dict)
            and isinstance(item.get("prompt"), str)
            and item["prompt"].strip()
            and isinstance(item.get("id", ""), str)
            and isinstance(item.get("system", ""), (str, type(None)))
        ):
            prompts.append(Prompt(item.get("id") or f"p{i}", item["prompt"], item.get("system")))
        else:
            raise UsageError(
                f"{path}: prompt {i} must be a non-empty string or "
                '{"id": "...", "prompt": "...", "system": "..."}'
            )
    return prompts
