"""Masking of personal data in logged request texts (llmbook.deployment.serving.privacy, chapter
15)."""

import pytest

from llmbook.deployment.serving import mask_pii


@pytest.mark.parametrize(("text", "expected"), [
    ("write to jane.doe+films@example.co.uk today", "write to [EMAIL] today"),
    ("seen from 192.168.0.12, great", "seen from [IP], great"),
    ("v6 2001:db8::1 and 2001:0db8:85a3:0000:0000:8a2e:0370:7334.", "v6 [IP] and [IP]."),
    ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
    ("card 4111-1111-1111-1111 ok", "card [CARD] ok"),
    ("card 4111111111111111", "card [CARD]"),
    ("card 4111.1111.1111.1111 ok", "card [CARD] ok"),
    ("card 4111/1111/1111/1111 ok", "card [CARD] ok"),
    ("card 4111_1111_1111_1111 ok", "card [CARD] ok"),
    ("écrire à josé.müller@exämple.de vite", "écrire à [EMAIL] vite"),
    ("mail 山田@例え.日本 ok", "mail [EMAIL] ok"),
    ("call +44 20 7946 0958 now", "call [PHONE] now"),
    ("call (555) 123-4567 now", "call [PHONE] now"),
    ("call 555.123.4567", "call [PHONE]"),
])
def test_personal_data_is_masked(text, expected):
    assert mask_pii(text) == expected


@pytest.mark.parametrize("text", [
    "Rated 10/10 in 2019: 90 minutes of a 3.5 star film.",
    "The 12:30:45 show, ratio 2:1, std::vector, version 1.2.3",
    "",
])
def test_ordinary_text_is_unchanged(text):
    assert mask_pii(text) == text


def test_several_kinds_in_one_text():
    masked = mask_pii("me@x.org from 10.0.0.1 paid with 5500 0000 0000 0004, tel 555-123-4567")
    assert masked == "[EMAIL] from [IP] paid with [CARD], tel [PHONE]"


def test_non_string_is_rejected():
    with pytest.raises(TypeError, match="expects a str"):
        mask_pii(42)
