"""Numbers and digits written as text, read only when they have one meaning.

``float()`` reads far more than a number a person wrote: ``"3_5"`` is 35,
``"٣"`` is 3, and stripping commas first turns the decimal comma of
``"3,5%"`` into 35 %. Here a number is read by one strict grammar: ASCII
digits (full-width ones, as Chinese ERP exports write them, are the same
characters and are mapped to ASCII), a decimal *point*, and optionally
digit groups of exactly three after a first group of one to three digits
(``1,200``, ``1,234,567.5``). Whatever else could be read two ways is
refused with the reason: a decimal comma (``3,5``, ``1.234,5``), digit
groups of another size (``12,50``), underscores, other scripts' digits.
"""

from __future__ import annotations

import re
from typing import Final

# U+FF01..U+FF5E are the full-width forms of ASCII "!".."~"; U+3000 is the ideographic space.
_FULL_WIDTH: Final = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}

_PLAIN: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NUMERIC_LOOKING: Final = re.compile(r"[+-]?[0-9.]*[0-9][0-9.,_ '\u00a0\u202f]*", re.ASCII)
_GROUPED: Final = re.compile(r"[+-]?[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?", re.ASCII)

# A snapshot's contract: a comma groups thousands. A column mapping also knows the
# spaces and the apostrophe that spreadsheets and Swiss exports group digits with.
SNAPSHOT_SEPARATORS: Final = ","
SHEET_SEPARATORS: Final = ", '\u00a0\u202f"

NUMBER_RULE: Final = ("write digits with a decimal point (3.5, 0.035, \"3.5%\"); a comma may "
                      "only group thousands (1,200 or 1,234,567.5)")


class AmbiguousNumber(ValueError):
    """Text that looks like a number but could be read two ways; the message says why."""


def to_ascii(text: str) -> str:
    """Full-width letters, digits and signs (``２０２６－１０``, ``３.５％``) as ASCII."""
    return text.translate(_FULL_WIDTH)


def read_decimal(text: str, separators: str = SNAPSHOT_SEPARATORS) -> float:
    """The number ``text`` writes, or ``ValueError`` saying why it has no one meaning.

    ``separators`` are the characters allowed to group thousands; one kind per number.
    """
    if text.isascii() and "_" not in text and "," not in text:
        try:  # the common case, at C speed: plain ASCII digits and a point
            return float(text)
        except ValueError:
            pass
    written = to_ascii(text).strip()
    if _PLAIN.fullmatch(written):
        return float(written)
    used = {c for c in separators if c in written}
    if len(used) == 1:
        grouped = written.replace(used.pop(), ",")
        if _GROUPED.fullmatch(grouped):
            return float(grouped.replace(",", ""))
    if _NUMERIC_LOOKING.fullmatch(written) or any(
            c.isdigit() and not c.isascii() for c in written):
        raise AmbiguousNumber(_why(text, written))
    raise ValueError(f"must be a number or a percentage like \"3.5%\", got {text!r}")


def _why(text: str, written: str) -> str:
    if "_" in written:
        return f"{text!r} is ambiguous: digits grouped with '_'; {NUMBER_RULE}"
    if not _NUMERIC_LOOKING.fullmatch(written):
        return f"{text!r} uses digits other than 0-9; {NUMBER_RULE}"
    if "," in written and written.rfind(",") > written.rfind("."):
        return (f"{text!r} is ambiguous: a comma not followed by a group of three digits "
                f"(a decimal comma?); {NUMBER_RULE}")
    return f"{text!r} is ambiguous: digits grouped other than by three; {NUMBER_RULE}"
