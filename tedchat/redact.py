"""Keeping secrets out of everything tedchat shows or writes: the one redactor.

Three layers, each used where it fits:

- **By name**: :func:`is_secret_name` tells a secret-looking setting, header, query parameter or
  environment variable (``api_key``, ``X-Api-Key``, ``access_token``, ``sig``, ``HF_TOKEN``) from
  a harmless one (``api_key_env`` names a variable, ``max_tokens`` and ``tokenizer`` count
  tokens). :func:`redact_settings` hides such values in a settings table (``config show``,
  ``engines``, bench records); every value of an ``env`` table is hidden (environments handed
  to tool servers hold credentials more often than not).
- **In URLs**: :func:`redact_url` hides the whole userinfo (``user:pa%40ss@``) and the values of
  secret-looking query parameters (``?key=``, ``api_key=``, ``sig=``), keeping the rest (an
  Azure ``?api-version=`` stays readable).
- **In free text** (:class:`Redactor`, for logs and error messages): URLs, ``name: value`` and
  ``name=value`` pairs under secret names, ``Bearer``/``Basic`` credentials, and every *known*
  secret value (the configured keys, the variables they name, secret-looking environment
  variables) in each form it may take on the way out: raw, %-encoded, JSON-escaped and inside
  base64 (HTTP Basic auth), whatever it was concatenated with.

:class:`RedactingFormatter` puts a :class:`Redactor` on a logging handler, so third-party
loggers (httpx, httpcore, huggingface_hub) are redacted too.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

MASK = "***"

# Name parts (split on anything not a letter or digit) that make a name secret.
SECRET_PARTS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "sig",
        "signature",
        "auth",
        "authorization",
        "password",
        "passwd",
        "pass",
        "pwd",
        "secret",
        "cookie",
        "credential",
        "credentials",
        "session",
        "jwt",
        "bearer",
    }
)
# A part ending so is secret too: accesskey, apitoken, clientsecret.
SECRET_SUFFIXES = ("key", "token", "secret", "password")
# Words that make a name secret wherever they stand in it (x-goog-api-key, xapikey).
SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "secret",
    "apikey",
    "api_key",
    "authorization",
    "credential",
    "cookie",
    "signature",
)
# Shorter known values are not hunted in free text: they would match innocent words.
MIN_SECRET_LEN = 4
# Environment variables are guessed secret by name alone: demand more of their values.
MIN_ENV_SECRET_LEN = 8
# A base64 fragment shorter than this would match too much by chance.
MIN_BASE64_LEN = 6


def is_secret_name(name: str) -> bool:
    """Whether a setting, header, query parameter or variable of this name holds a secret.

    A name whose last part is ``env`` names an environment variable (``api_key_env``): the
    name is not secret, the variable's value is (see :func:`secrets_in`).
    """
    lowered = str(name).lower().replace("-", "_")
    parts = [p for p in re.split(r"[^a-z0-9]+", lowered) if p]
    if not parts or parts[-1] == "env":
        return False
    if any(p in SECRET_PARTS or p.endswith(SECRET_SUFFIXES) for p in parts):
        return True
    return any(word in lowered for word in SECRET_SUBSTRINGS)


# --- URLs ------------------------------------------------------------------------------------


def _query_secret_values(query: str) -> list[str]:
    values = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_name(unquote_plus(name)):
            values.append(value)
    return values


def _redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_name(unquote_plus(name)):
            pair = f"{name}={MASK}"
        pairs.append(pair)
    return "&".join(pairs)


def redact_url(url: str) -> str:
    """``url`` with its userinfo replaced by ``***`` and secret query values by ``***``.

    ``https://user:pa%40ss@host/v1?api-version=1&key=k`` becomes
    ``https://***@host/v1?api-version=1&key=***``. Text that is not a URL is returned as is.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        # The last @ ends the userinfo: a password may hold a raw @ too.
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = _redact_query(parts.query) if parts.query else parts.query
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str) -> list[str]:
    """The secrets a URL carries: its userinfo (as written and decoded, whole and the
    password alone) and its secret query values (as written and decoded)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if not parts.scheme or not parts.netloc:
        return []
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
        found += [userinfo, unquote(userinfo), f"{unquote(user)}:{unquote(password)}"]
        if password:
            found += [password, unquote(password)]
        elif user:
            found += [user, unquote(user)]  # a token given as the user name alone
    for value in _query_secret_values(parts.query):
        found += [value, unquote_plus(value)]
    return found


# --- settings tables -------------------------------------------------------------------------


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, Mapping):
        return redact_settings(value)
    return value


#: Tables whose every value is a secret: a child process's environment.
SECRET_TABLES = frozenset({"env"})
#: An MCP server's tables: its environment and its HTTP headers are secret whatever the names.
MCP_SECRET_TABLES = frozenset({"env", "headers"})


def redact_settings(
    table: Mapping[str, Any], secret_tables: frozenset[str] = SECRET_TABLES
) -> dict[str, Any]:
    """A copy of a settings table with secret values replaced by ``***``, for display and
    records: values under secret names (nested tables too), every value of a table named in
    ``secret_tables`` (``env``; an MCP server's ``headers`` too, :data:`MCP_SECRET_TABLES`),
    and the userinfo and secret query values of URLs."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            if str(key).lower() in secret_tables:
                out[key] = {k: MASK if v else v for k, v in value.items()}
            else:
                out[key] = redact_settings(value, secret_tables)
        elif is_secret_name(str(key)) and value:
            out[key] = MASK
        else:
            out[key] = _redact_value(value)
    return out


def secrets_in(
    table: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    secret_tables: frozenset[str] = SECRET_TABLES,
) -> list[str]:
    """Every secret value a settings table (one engine's, say) holds or points at, for
    :class:`Redactor`: values
    under secret names, ``env`` table values, URL userinfo and secret query values, and the
    values of the environment variables that ``*_env`` settings (``api_key_env``) name."""
    found: list[str] = []

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                name = str(key)
                if environ is not None and name.lower().endswith("_env"):
                    variable = environ.get(value) if isinstance(value, str) and value else None
                    if variable:
                        found.append(variable)
                walk(value, secret or is_secret_name(name) or name.lower() in secret_tables)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, secret)
        elif isinstance(node, str) and node:
            if secret:
                found.append(node)
                # "Bearer sk-..." in a header: the credential alone may appear elsewhere.
                scheme, _, rest = node.partition(" ")
                if rest and scheme.lower() in ("bearer", "basic", "token"):
                    found.append(rest)
            elif "://" in node:
                found.extend(url_secrets(node))

    walk(table, False)
    return found


def environ_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of environment variables with secret-looking names (``HF_TOKEN``,
    ``OPENAI_API_KEY``), which libraries read on their own. Short values (flags such as
    ``true``, socket names) are left out: hunting them would garble innocent text."""
    return [
        value
        for name, value in environ.items()
        if len(value) >= MIN_ENV_SECRET_LEN and is_secret_name(name)
    ]


# --- free text -------------------------------------------------------------------------------

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s<>\"'`]+")
_NAME = r"[A-Za-z0-9_.\-]*"
# name: value / name=value / "name": "value", with an optional auth scheme before the value.
_PAIR = re.compile(
    rf"(?P<name>{_NAME}[A-Za-z0-9]{_NAME})(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<scheme>(?:bearer|basic|token)\s+)?(?P<value>[^\s\"',;&}\]\)]+)",
    re.IGNORECASE,
)
# (b'authorization', b'Bearer ...'): header tuples as httpcore and friends print them.
_TUPLE = re.compile(
    rf"(?P<head>b?[\"'](?P<name>{_NAME})[\"'],\s*b?[\"'])"
    r"(?P<scheme>(?:bearer|basic|token)\s+)?(?P<value>[^\"']+)",
    re.IGNORECASE,
)
_B64 = r"[A-Za-z0-9+/_\-]"
_CREDENTIAL = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+(?P<value>[A-Za-z0-9._~+/=\-]{8,})")


def _base64_fragments(secret: str) -> list[str]:
    """What ``secret`` looks like inside any base64 text, at each of the three byte offsets it
    may start at: the characters that depend on the secret's bytes alone."""
    raw = secret.encode("utf-8")
    fragments = []
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw).decode("ascii")
            start = -(-offset * 8 // 6)  # the first character without prefix bits
            end = (offset + len(raw)) * 8 // 6  # the last one without padding bits
            fragment = encoded[start:end]
            if len(fragment) >= MIN_BASE64_LEN:
                fragments.append(fragment)
    return fragments


def secret_forms(secret: str) -> set[str]:
    """The forms a secret value may take in text: raw, %-encoded, form-encoded, JSON-escaped,
    and inside base64 (Basic auth carries ``user:password`` that way)."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    forms.add(json.dumps(secret)[1:-1])
    forms.update(_base64_fragments(secret))
    return {f for f in forms if len(f) >= MIN_SECRET_LEN}


class Redactor:
    """Redacts free text: URLs, secret ``name: value`` pairs, ``Bearer``/``Basic`` credentials
    and every known secret value in each of its forms (see :func:`secret_forms`)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._base64: set[str] = set()
        self._known: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Hunt these values too (short ones are ignored: they would match innocent words)."""
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LEN:
                self._forms |= secret_forms(secret)
                self._base64.update(_base64_fragments(secret))
        if self._forms:
            # Longest first, so a form inside a longer one does not leave the rest behind. A
            # base64 form takes the whole base64 word it stands in (``Basic dXNlcjpwYXNz``).
            ordered = sorted(self._forms, key=len, reverse=True)
            self._known = re.compile(
                "|".join(
                    f"{_B64}*{re.escape(f)}{_B64}*=*" if f in self._base64 else re.escape(f)
                    for f in ordered
                )
            )

    def __call__(self, text: str) -> str:
        if not text:
            return text
        if self._known is not None:
            text = self._known.sub(MASK, text)
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
        text = _TUPLE.sub(_mask_pair, text)
        text = _PAIR.sub(_mask_pair, text)
        return _CREDENTIAL.sub(lambda m: f"{m.group('scheme')} {MASK}", text)


def _mask_pair(match: re.Match[str]) -> str:
    if not is_secret_name(match.group("name")) or match.group("value") == MASK:
        return match.group(0)
    value_start = match.start("value") - match.start(0)
    return match.group(0)[:value_start] + MASK


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` redacted by a :class:`Redactor` that knows ``secrets``."""
    return Redactor(secrets)(text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line (message, arguments, traceback) is redacted."""

    def __init__(self, fmt: str | None = None, redactor: Redactor | None = None) -> None:
        super().__init__(fmt)
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))
