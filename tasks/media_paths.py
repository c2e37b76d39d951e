"""File names as they travel through logs, messages and the database.

Library paths may hold spaces, quotes, shell metacharacters, newlines or bytes that are not
UTF-8. Commands never see a shell, so only two conversions matter: a one-line display form
for messages, and a reversible text form for the database (which stores UTF-8 text).
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote_to_bytes

_PCT = "pct:"


def display(path: str | os.PathLike[str]) -> str:
    """One printable line: control characters escaped, undecodable bytes as \\xNN."""
    raw = os.fsencode(path)
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def to_uri(path: str | os.PathLike[str]) -> str:
    """Text for the database: the path itself when it is valid UTF-8, else percent-encoded."""
    p = os.fspath(path)
    try:
        p.encode("utf-8")
        return p if not p.startswith(_PCT) else _PCT + quote(os.fsencode(p), safe="/")
    except UnicodeEncodeError:
        return _PCT + quote(os.fsencode(p), safe="/")


def from_uri(uri: str) -> str:
    """The file-system path of a database uri (inverse of :func:`to_uri`)."""
    if uri.startswith(_PCT):
        return os.fsdecode(unquote_to_bytes(uri[len(_PCT):]))
    return uri
