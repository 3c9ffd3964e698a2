"""fastsmtp.esmtp.parse_esmtp_extensions gives aiosmtplib's results."""

from __future__ import annotations

import inspect

import aiosmtplib.esmtp as reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastsmtp.esmtp as ours
from fastsmtp.esmtp import parse_esmtp_extensions


def test_all_and_signature() -> None:
    assert ours.__all__ == reference.__all__ == ("parse_esmtp_extensions",)
    assert inspect.signature(parse_esmtp_extensions, eval_str=True) == inspect.signature(
        reference.parse_esmtp_extensions, eval_str=True
    )


def test_typical_reply() -> None:
    text = (
        "mail.example.com at your service\nSIZE 35882577\n8BITMIME\nAUTH LOGIN PLAIN XOAUTH2\n"
        "ENHANCEDSTATUSCODES\nPIPELINING\nCHUNKING\nSMTPUTF8\nSTARTTLS"
    )
    extensions, methods = parse_esmtp_extensions(text)
    assert extensions == {
        "size": "35882577",
        "8bitmime": "",
        "auth": "LOGIN PLAIN XOAUTH2",
        "enhancedstatuscodes": "",
        "pipelining": "",
        "chunking": "",
        "smtputf8": "",
        "starttls": "",
    }
    assert methods == ["login", "plain", "xoauth2"]


EXAMPLES = [
    "",
    "greet",
    "greet\nSIZE 100\n8BITMIME\nAUTH PLAIN LOGIN\nAUTH=CRAM-MD5\n",
    "g\nauth=login plain",
    "g\nAUTH=LOGIN\nAUTH LOGIN PLAIN",
    "g\n  size   100  \n\n\n",
    "g\nAUTH",
    "g\nAUTH ",
    "g\nauth  plain   login",
    "g\nAUTH\tPLAIN",
    "g\nX\tY Z",
    "g\nauth=",
    "g\nAUTH=PLAIN=X",
    "g\nAUTHX=PLAIN",
    "g\nauth=\tplain",
    "g\n AUTH=PLAIN LOGIN ",
    "g\r\nSIZE 1\r\n",
    "g\nSIZE 1\nsize 2",
    "g\nAUTH PLAIN\nauth= LOGIN",
    "g\nAUTHé x",
    "g\nFOO=BAR baz",
    "g\nauth=login  plain",
    "g\nAUTH PLAIN\u00a0LOGIN",
    "g\nA\x0bB",
    "g\n\x1cAUTH x",
    "g\rSIZE 1",
    "g\nΣ x",
    "g\nauth=x\u2028y",
    "g\nAuTh=Plain",
    "g\nİ x",
    "g\nAUTH PLAIN\nAUTH PLAIN",
    "\n\n\nSIZE",
    "g\n\u212aEY v",
    "g\nauth\u017f x",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_same_as_aiosmtplib(text: str) -> None:
    assert parse_esmtp_extensions(text) == reference.parse_esmtp_extensions(text)


KEYWORDS = st.sampled_from(
    ["AUTH", "auth", "Auth=", "AUTH=", "SIZE", "8BITMIME", "STARTTLS", "X-Y", "auth =", ""]
)
WORDS = st.text(
    alphabet=st.sampled_from(list("aAzZ09-= \t\r\x0bé\xa0\u2028\u017f\u212a")), max_size=12
)
LINES = st.builds(lambda k, w: k + w, KEYWORDS, WORDS)
TEXTS = st.builds(
    lambda greeting, lines, sep: greeting + "".join(sep + line for line in lines),
    st.text(max_size=10),
    st.lists(LINES, max_size=8),
    st.sampled_from(["\n", "\r\n", " \n", "\n "]),
)


@settings(max_examples=800)
@given(st.one_of(TEXTS, st.text(max_size=60)))
def test_differential(text: str) -> None:
    assert parse_esmtp_extensions(text) == reference.parse_esmtp_extensions(text)
