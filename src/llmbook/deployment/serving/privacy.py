"""Masking personal data before a text is logged (chapter 15, used by
:mod:`llmbook.deployment.serving.app`).

:func:`mask_pii` replaces e-mail addresses (non-ASCII ones too), IPv4/IPv6 addresses,
payment-card-like numbers (13-19 digits, optionally grouped by spaces, dashes, dots, slashes or
underscores) and phone numbers by a tag such as ``[EMAIL]``. Patterns are applied most-specific
first, so a card number is not half-eaten by the phone pattern. This is a safety net for logs,
not an anonymiser: names and addresses in free text are left as they are.
"""

from __future__ import annotations

import re

_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    # any letters (internationalised addresses: josé@exämple.de), not only ASCII ones
    ("EMAIL", re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")),
    ("IP", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")),
    # IPv6: eight groups, or fewer with one "::" (so a time such as 12:30:45 is left alone)
    ("IP", re.compile(r"(?<![\w:])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|"
                      r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?::"
                      r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4})*)?)(?![\w:])")),
    # grouped by spaces, dashes, dots, slashes or underscores (one separator at a time)
    ("CARD", re.compile(r"(?<!\d)\d(?:[ ./_-]?\d){12,18}(?!\d)")),
    ("PHONE", re.compile(r"(?<![\w+])\+?\(?\d{1,4}\)?(?:[ .-]?\(?\d{2,4}\)?){2,5}(?!\w)")),
)


def mask_pii(text: str) -> str:
    """``text`` with e-mails, IP addresses, card-like numbers and phone numbers replaced."""
    if not isinstance(text, str):
        raise TypeError(f"mask_pii expects a str, got {type(text).__name__}")
    for tag, pattern in _PATTERNS:
        text = pattern.sub(f"[{tag}]", text)
    return text
