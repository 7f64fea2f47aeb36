"""The search index's text: a CJK-aware tokenizer in Python in front of FTS5.

FTS5's ``unicode61`` tokenizer treats a run of kanji/kana as one huge token, and the
``trigram`` tokenizer cannot find a query shorter than three characters, so neither finds
東京 inside 東京タワーに行きました. Instead the text is tokenized in Python before it reaches
FTS5 (:func:`index_text`): words in other scripts stay words; a run of CJK characters becomes
its overlapping bigrams followed by its last character alone (東京タワー -> 東京 京タ タワ ワー ー).
The result goes into a one-column FTS5 ``unicode61`` table whose rowid is the message id.
A query is split the same way (:func:`fts_query`): a CJK run of two or more characters becomes
the *phrase* of its bigrams (エレクトロン -> "エレ レク クト トロ ロン", which only matches those
bigrams adjacent and in order, i.e. the substring), a single CJK character becomes the prefix
query ``"東"*`` (every character begins some token, thanks to the trailing single character),
and words are whole-word matches (``word*`` for a prefix). The trailing single character also
keeps a phrase from matching across two separate runs. Search therefore is an FTS5 index
lookup, never a scan; results are newest first (FTS5 walks its rowids backwards and stops at
the limit). Snippets are cut from the original text in Python (:func:`snippet`), since the
indexed text is the tokenized form. Replies enter the index when they are finalised (or marked
interrupted), so the index is not rewritten on every 250 ms flush. If :func:`index_text` ever
changes, a migration (:mod:`tedchat.history.schema`) must rebuild ``message_fts``.
"""

from __future__ import annotations

import re
import unicodedata

# Characters written without spaces between words: kanji, kana (with the prolonged sound mark
# and iteration marks), Hangul. The katakana middle dot ・ is left out: it separates words.
_CJK = (
    "\u3005-\u3007\u3021-\u3029\u3031-\u3035\u303b\u303c"
    "\u3041-\u3096\u309d-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff\u3131-\u318e"
    "\U00020000-\U0003134f"
)
_TOKEN_RE = re.compile(f"(?P<cjk>[{_CJK}]+)|(?P<word>[^\\W{_CJK}]+)")


def _normalize(text: str) -> str:
    # NFKC folds full-width Latin and half-width katakana into their usual forms, so ｔｏｋｙｏ
    # finds tokyo and ｴﾚｸﾄﾛﾝ finds エレクトロン; casefold on top of unicode61's own folding
    # keeps Python's and FTS5's idea of a token identical.
    return unicodedata.normalize("NFKC", text).casefold()


def index_text(text: str) -> str:
    """The text handed to FTS5 for ``text``: words, and CJK runs as bigrams + last character."""
    out: list[str] = []
    for m in _TOKEN_RE.finditer(_normalize(text)):
        run = m.group("cjk")
        if run:
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
            out.append(run[-1])
        else:
            out.append(m.group("word"))
    return " ".join(out)


def _query_terms(query: str) -> list[tuple[str, bool, bool]]:
    """(term, is_cjk, is_prefix) for every term of a search query."""
    text = _normalize(query)
    terms = []
    for m in _TOKEN_RE.finditer(text):
        prefix = m.end() < len(text) and text[m.end()] == "*"
        if m.group("cjk"):
            terms.append((m.group("cjk"), True, prefix))
        else:
            terms.append((m.group("word"), False, prefix))
    return terms


def fts_query(query: str) -> str | None:
    """The FTS5 MATCH expression for a user's search text (None if it has nothing to find).

    Every term is quoted, so no input can be an FTS5 syntax error; all terms must match.
    """
    parts = []
    for term, cjk, prefix in _query_terms(query):
        if cjk and len(term) == 1:
            parts.append(f'"{term}"*')
        elif cjk:
            bigrams = " ".join(term[i : i + 2] for i in range(len(term) - 1))
            parts.append(f'"{bigrams}"*' if prefix else f'"{bigrams}"')
        else:
            parts.append(f'"{term}"*' if prefix else f'"{term}"')
    return " AND ".join(parts) or None


_SNIPPET_BEFORE = 40
_SNIPPET_AFTER = 100


def snippet(content: str, query: str) -> tuple[str, int | None, int | None]:
    """A one-line excerpt of ``content`` around the first match of any query term, and where
    the match lies in it (both None when no term could be located in the original text)."""
    flat = " ".join(content.split())
    best: re.Match[str] | None = None
    for term, cjk, _prefix in _query_terms(query):
        pattern = re.escape(term) if cjk else r"(?<!\w)" + re.escape(term)
        m = re.search(pattern, flat, re.IGNORECASE)
        if m and (best is None or m.start() < best.start()):
            best = m
    if best is None:
        text = flat[: _SNIPPET_BEFORE + _SNIPPET_AFTER]
        return (text + "…" if len(flat) > len(text) else text), None, None
    start = max(0, best.start() - _SNIPPET_BEFORE)
    end = min(len(flat), best.end() + _SNIPPET_AFTER)
    lead = "…" if start > 0 else ""
    tail = "…" if end < len(flat) else ""
    offset = len(lead) - start
    return lead + flat[start:end] + tail, best.start() + offset, best.end() + offset
