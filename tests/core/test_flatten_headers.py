"""fastsmtp._folding folds every header class of email.headerregistry to the stdlib's bytes.

Each generated header (long address lists, groups, quoted and commented display names,
encoded words, non-ASCII, long words, odd spacing) is folded by ``BaseHeader.fold`` and by
``fold_header`` at several line lengths and line separators; where ``fold_header`` answers
at all, it must answer the same. A second property checks the tree rendering alone.
"""

from __future__ import annotations

import email._header_value_parser as _parser
import email.headerregistry
import email.policy
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from fastsmtp._folding import fold_header, render

_NAMES = [
    *sorted(email.headerregistry.HeaderRegistry().registry),
    "X-Custom",
    "Comments",
    "X-" + "Long-Name" * 9,
]
_ATOM = st.text(alphabet="abcxyz09.-_+", min_size=1, max_size=20)
_DISPLAY = st.sampled_from(
    [
        "",
        "Ann",
        "Ann Example",
        '"Quoted, Name"',
        "(comment) Ann",
        "Zoë",
        "=?utf-8?q?Zo=C3=AB?=",
        '"a\\"b"',
        "Very Long Display Name That Goes On And On",
    ]
)


@st.composite
def _mailbox(draw: st.DrawFn) -> str:
    local = draw(_ATOM).strip(".") or "x"
    domain = draw(st.sampled_from(["example.com", "b", "bücher.de", "x.y.z", "[127.0.0.1]"]))
    name = draw(_DISPLAY)
    space = draw(st.sampled_from([" ", "  ", "\t", ""]))
    comment = draw(st.sampled_from(["", " (work)", "(x)"]))
    if not name:
        return f"{local}@{domain}{comment}"
    return f"{name}{space}<{local}@{domain}>{comment}"


@st.composite
def _address_list(draw: st.DrawFn) -> str:
    items = draw(st.lists(_mailbox(), min_size=1, max_size=60))
    if draw(st.booleans()):
        group = draw(st.lists(_mailbox(), max_size=5))
        name = draw(
            st.sampled_from(
                ["Group", '"Doe, John Jacob Jingleheimer Group"', '"Doe,John. Jacob,Jingle."']
            )
        )
        items.insert(draw(st.integers(0, len(items))), f"{name}: {', '.join(group)};")
    separator = draw(st.sampled_from([", ", ",", " , ", ",\t"]))
    return separator.join(items)


_UNSTRUCTURED = st.lists(
    st.sampled_from(
        [
            *"abc XYZ.,;:@<>()[]\\\"'=?_-\t",
            "=?",
            "?=",
            "é",
            "\u2603",
            "\udcff",
            "=?utf-8?q?caf=C3=A9?=",
            " ",
            "  ",
            "word ",
            "averyverylongwordwithoutanyspaces" * 3,
            "\r\n ",
            "\n",
        ]
    ),
    max_size=80,
).map("".join)


@st.composite
def _value(draw: st.DrawFn, name: str) -> str:
    lower = name.lower()
    resent_address = lower.startswith("resent-") and "date" not in lower and "id" not in lower
    if lower in ("to", "cc", "bcc", "from", "reply-to", "sender") or resent_address:
        return draw(st.one_of(_address_list(), _UNSTRUCTURED))
    if "date" in lower:
        return draw(st.sampled_from(["Sun, 22 Nov 2026 10:00:00 +0000", "garbage", ""]))
    if lower == "content-type":
        params = draw(
            st.lists(
                st.sampled_from(
                    [
                        "charset=utf-8",
                        'boundary="===============123=="',
                        'name="a b.txt"',
                        "name=é.txt",
                        "format=flowed",
                        "x=" + "y" * 80,
                    ]
                ),
                max_size=4,
            )
        )
        return "; ".join(["multipart/mixed", *params])
    if lower == "content-disposition":
        return draw(st.sampled_from(["inline", "attachment; filename=" + "n" * 90]))
    if lower in ("message-id", "in-reply-to", "references"):
        return draw(st.sampled_from(["<a@b>", "<" + "x" * 80 + "@example.com>", "nope", "<é@x>"]))
    return draw(st.one_of(_UNSTRUCTURED, _address_list()))


@st.composite
def _header(draw: st.DrawFn) -> Any:
    name = draw(st.sampled_from(_NAMES))
    value = draw(_value(name))
    try:
        return email.policy.default.header_factory(name, value)
    except Exception:  # the stdlib refused the value
        assume(False)


_ASCII_DISPLAY = st.sampled_from(
    [
        "",
        "Ann",
        "Ann Example",
        '"Quoted, Name"',
        "(comment) Ann",
        '"a\\"b"',
        "A.B",
        "a@b",
        "Very Long Display Name That Goes On And On And On And On And On And On",
    ]
)


@st.composite
def _ascii_header(draw: st.DrawFn) -> Any:
    """ASCII headers, long ones: the shapes the fast path folds."""
    name = draw(st.sampled_from(["To", "Cc", "From", "Subject", "X-Custom", "Message-ID"]))
    if name == "Message-ID":
        value = "<" + draw(_ATOM) * draw(st.integers(1, 8)) + "@example.com>"
    elif name in ("Subject", "X-Custom"):
        words = st.sampled_from(["word", "a", "longerword", "x" * 30, "(c)", "q.r", "s,t"])
        spaces = st.sampled_from([" ", "  ", "\t", " \t"])
        value = "".join(
            draw(words) + draw(spaces) for _ in range(draw(st.integers(1, 40)))
        ).rstrip()
    else:
        mailboxes = []
        for _ in range(draw(st.integers(1, 60))):
            local = draw(_ATOM).strip(".") or "x"
            name_ = draw(_ASCII_DISPLAY)
            domain = draw(st.sampled_from(["example.com", "b", "x.y.z", "[127.0.0.1]"]))
            mailboxes.append(f"{name_} <{local}@{domain}>" if name_ else f"{local}@{domain}")
        value = draw(st.sampled_from([", ", ",", " , ", ",\t"])).join(mailboxes)
    try:
        return email.policy.default.header_factory(name, value)
    except Exception:  # the stdlib refused the value
        assume(False)


def _fold(header: Any, policy: Any) -> tuple[str, object]:
    try:
        return ("ok", header.fold(policy=policy))
    except Exception as exc:
        return (type(exc).__name__, str(exc))


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="fast path off on unverified versions")
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(_header(), _ascii_header()),
    st.sampled_from([78, 78, 20, 30, 40, 100, 998, None]),
    st.sampled_from(["\r\n", "\n"]),
    st.booleans(),
    st.sampled_from(["8bit", "7bit"]),
)
def test_fold_header_gives_the_stdlibs_bytes(
    header: Any, limit: int | None, linesep: str, utf8: bool, cte_type: str
) -> None:
    policy = email.policy.SMTP.clone(
        max_line_length=limit, linesep=linesep, utf8=utf8, cte_type=cte_type
    )
    try:
        got = fold_header(header, limit, linesep)
    except Exception as exc:
        # Only where the stdlib fails alike (an empty comment that must be folded raises
        # IndexError in both); flatten_fast then lets the stdlib raise its own.
        assert _fold(header, policy)[0] == type(exc).__name__
        event("raises as the stdlib")
        return
    if got is None:
        event("stdlib")
        return
    event("fast, " + ("folded" if got.count(linesep) > 1 else "one line"))
    assert ("ok", got) == _fold(header, policy)
    # what the policy's fold_binary writes, which send_message's policy returns from this
    assert got.encode("ascii") == policy.fold_binary(header.name, header)


@settings(max_examples=500, deadline=None)
@given(_header())
def test_render_is_str(header: Any) -> None:
    tree = header._parse_tree
    assert render(tree) == str(tree)
    for child in tree:
        assert render(child) == str(child)


def test_a_hundred_recipients_fold_on_the_fast_path() -> None:
    policy = email.policy.SMTP
    value = ", ".join(f"Recipient {i} <rcpt{i}@example.com>" for i in range(100))
    header = policy.header_factory("To", value)
    folded = fold_header(header, 78, "\r\n")
    assert folded is not None
    assert folded == header.fold(policy=policy)
    assert folded.count("\r\n") == 50  # two addresses a line


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Subject", "caf\u00e9 " * 30),  # RFC 2047 encoded words
        ("Subject", "x" * 200),  # one word longer than the line: the stdlib encodes it
        ("Content-Type", 'text/plain; name="' + "n" * 90 + '"'),  # RFC 2231 parameters
        ("To", ""),
    ],
)
def test_what_needs_encoding_is_left_to_the_stdlib(name: str, value: str) -> None:
    header = email.policy.SMTP.header_factory(name, value)
    assert fold_header(header, 78, "\r\n") is None


@pytest.mark.parametrize("limit", [20, 30, 40])
@pytest.mark.parametrize("linesep", ["\r\n", "\n"])
@pytest.mark.parametrize(
    "group",
    [
        '"Doe, John Jacob Jingleheimer Schmidt Group"',  # one quoted word with a special
        '"Doe,John. Jacob,Jingle. Heimer,Schmidt. Group."',  # only words with specials
    ],
)
def test_quoted_text_with_specials_the_stdlib_encodes_is_left_to_it(
    group: str, limit: int, linesep: str
) -> None:
    # An empty group holds no addr-spec, so nothing blocks RFC 2047 encoded words in its
    # display name: when the stdlib unfolds the quoted string to wrap it, it encodes the
    # quoted words that hold a special ("Doe,"). fold_header must not write them plainly.
    header = email.policy.SMTP.header_factory("To", group + ":;")
    policy = email.policy.SMTP.clone(max_line_length=limit, linesep=linesep)
    assert "=?utf-8?q?Doe" in header.fold(policy=policy)
    assert fold_header(header, limit, linesep) is None
    # the same name at a length where nothing needs folding stays on the fast path
    assert fold_header(header, 78, linesep) == header.fold(
        policy=email.policy.SMTP.clone(linesep=linesep)
    )


class _OwnFold(email.headerregistry.UnstructuredHeader):
    def fold(self, *, policy: Any) -> str:
        return f"{self.name}: written by its own fold{policy.linesep}"


def test_a_header_class_with_its_own_fold_is_left_to_it() -> None:
    registry = email.headerregistry.HeaderRegistry()
    registry.map_to_type("x-own", _OwnFold)
    policy = email.policy.SMTP.clone(header_factory=registry)
    header = policy.header_factory("X-Own", "hello world")
    for _ in range(2):  # the class's kind is looked up, then cached
        assert fold_header(header, 78, "\r\n") is None
        assert policy.fold_binary("X-Own", header) == b"X-Own: written by its own fold\r\n"
    assert fold_header("X-Plain: a string", 78, "\r\n") is None


@pytest.mark.parametrize(
    "name", ["Zo\u00eb", "X-A\nB", "X-A\rB", "X-Long-" + "N" * 40, "X-" + "N" * 16]
)
@pytest.mark.parametrize("limit", [20, 40, 78])
def test_a_label_that_is_not_ascii_or_breaks_or_is_too_long_gives_the_stdlibs_bytes(
    name: str, limit: int
) -> None:
    # The stdlib encodes a non-ASCII name, writes a line break in it as it is, and puts a
    # label longer than the line alone on the first line: fold_header leaves all three to it.
    header = email.policy.SMTP.header_factory(name, "hello world " * 3)
    expected = header.fold(policy=email.policy.SMTP.clone(max_line_length=limit))
    got = fold_header(header, limit, "\r\n")
    if len(name) + 2 > limit or not name.isascii() or "\n" in name or "\r" in name:
        assert got is None
    else:
        assert got == expected


@pytest.mark.parametrize("limit", [30, 40, 78])
@pytest.mark.parametrize("overshoot", [-5, -4, -3, -1, 0, 1])
def test_an_address_list_as_long_as_the_line_gives_the_stdlibs_bytes(
    limit: int, overshoot: int
) -> None:
    # A value fits after the label "To: " up to the line's length; one that does not goes on
    # a line of its own only when it is shorter than the line (the fold's leading space
    # must fit too); else it is unfolded.
    first = "a@b.c, "
    value = first + "b" * (limit + overshoot - len(first) - len("@example.com")) + "@example.com"
    assert len(value) == limit + overshoot
    header = email.policy.SMTP.header_factory("To", value)
    policy = email.policy.SMTP.clone(max_line_length=limit)
    expected = header.fold(policy=policy)
    assert fold_header(header, limit, "\r\n") == expected
    assert expected.startswith("To: a@b.c,\r\n") == (overshoot >= 0)


@pytest.mark.parametrize(
    "value",
    [
        "x" * 30 + "@example.com",
        "a@b, " + "x" * 30 + "@example.com",
        "a@b,\t" + "x" * 30 + "@example.com",
        "a@b (" + "c" * 30 + ")",
        "a@b," + " " * 30 + "c@d",
        "a@b,(" + "c" * 30 + ")x@y",
    ],
)
@pytest.mark.parametrize("limit", [10, 20])
def test_words_longer_than_the_line_inside_addresses_give_the_stdlibs_bytes(
    value: str, limit: int
) -> None:
    # A word that cannot be encoded (inside an addr-spec) and fits on no line is moved to a
    # new line after the whitespace before it, or put there whole when it is whitespace, or
    # left on the long line.
    header = email.policy.SMTP.header_factory("To", value)
    expected = header.fold(policy=email.policy.SMTP.clone(max_line_length=limit))
    assert fold_header(header, limit, "\r\n") == expected


class _PtextHeader:
    """A header class whose parse tree is one ptext token (quoted-string content)."""

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        kwds["parse_tree"] = _parser.ValueTerminal(value, "ptext")
        kwds["decoded"] = value


class _ParametersHeader:
    """A header class whose parse tree is MIME parameters alone (RFC 2231 folding)."""

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        kwds["parse_tree"] = tree = _parser.parse_content_type_header("text/plain; " + value)[-1]
        kwds["decoded"] = str(tree)


class _StaticParseHeader:
    """A header class whose parse is a staticmethod (BaseHeader.__new__ calls it the same)."""

    @staticmethod
    def parse(value: str, kwds: dict[str, Any]) -> None:
        kwds["parse_tree"] = _parser.get_unstructured(value)
        kwds["decoded"] = value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Static", "word " * 30),
        ("X-Ptext", "a,b"),  # a ptext with a special: the stdlib encodes it, even on one line
        ("X-Ptext", "plain"),
        ("X-Parameters", "charset=utf-8; name=x"),
        ("To", "averyveryverylongwordforagroupname:;"),  # no addr-spec: encoded to wrap it
        ("To", "Undisclosed recipients:;"),
    ],
)
@pytest.mark.parametrize("limit", [20, 40, 78])
def test_trees_that_are_one_token_or_hold_no_address_give_the_stdlibs_bytes(
    name: str, value: str, limit: int
) -> None:
    registry = email.headerregistry.HeaderRegistry()
    registry.map_to_type("x-ptext", _PtextHeader)
    registry.map_to_type("x-parameters", _ParametersHeader)
    registry.map_to_type("x-static", _StaticParseHeader)
    policy = email.policy.SMTP.clone(header_factory=registry, max_line_length=limit)
    header = policy.header_factory(name, value)
    assert fold_header(header, limit, "\r\n") in (None, header.fold(policy=policy))


# --- the core's tree rendering, on both implementations -----------------------------------


@settings(max_examples=300, deadline=None)
@given(_header())
def test_core_renders_parse_trees_as_str(header: Any) -> None:
    import fastsmtp._parser_py as pure
    from fastsmtp._folding import _KIND

    tree = header._parse_tree
    if not isinstance(tree, list):
        return
    assert pure.render_tokens(tree, _KIND) == str(tree)
    assert pure.render_children(tree, _KIND) == [str(child) for child in tree]


def test_render_tokens_on_both_cores(impl: Any) -> None:
    from fastsmtp._folding import _KIND

    value = '"Ann, A." <a@example.com> (work), =?utf-8?q?Zo=C3=AB?= <z@b>, Group: x@y;'
    tree = email.policy.SMTP.header_factory("To", value)._parse_tree
    assert impl.render_tokens(tree, _KIND) == str(tree)
    assert impl.render_children(tree, _KIND) == [str(child) for child in tree]
    # An empty table asks every node for str(); a wrong kind is not trusted either.
    assert impl.render_tokens(tree, {}) == str(tree)
    odd = {type(tree[0]): impl.TERMINAL, str: impl.TOKEN_LIST}
    assert impl.render_children(tree, odd) == [str(child) for child in tree]
    with pytest.raises(TypeError, match=r"^render_tokens\(\) needs a token list, not str$"):
        impl.render_tokens("text", _KIND)
    with pytest.raises(TypeError, match=r"^render_children\(\) needs a token list, not int$"):
        impl.render_children(7, _KIND)


def test_node_classes_are_classified_by_their_str() -> None:
    # A node is rendered as its own text only when its class keeps str's __str__, as its
    # children's texts only when it keeps TokenList's, else by str() (what it prints may
    # differ: an encoded word's whitespace prints as "", a comment with its parentheses).
    from email import _header_value_parser as parser

    from fastsmtp._folding import _LIST, _OTHER, _TERMINAL, _classify

    class NotAString:
        __str__ = str.__str__

    class NotATokenList:
        __str__ = parser.TokenList.__str__

    assert _classify(parser.ValueTerminal) == _TERMINAL
    assert _classify(parser.WhiteSpaceTerminal) == _TERMINAL
    assert _classify(parser.EWWhiteSpaceTerminal) == _OTHER
    assert _classify(parser.Phrase) == _LIST
    assert _classify(parser.QuotedString) == _LIST
    assert _classify(parser.Comment) == _OTHER
    assert _classify(parser.MimeParameters) == _OTHER
    assert _classify(NotAString) == _OTHER
    assert _classify(NotATokenList) == _OTHER
    assert _classify(object) == _OTHER


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.text(max_size=12), max_size=30),
    start=st.integers(min_value=0, max_value=35),
    room=st.integers(min_value=-5, max_value=120),
)
def test_parts_that_fit_counts_what_joins_the_line(texts: list[str], start: int, room: int) -> None:
    # The folding loop's "does the next part fit" step, on both cores: the longest run
    # of parts from start whose lengths add up to at most room.
    from fastsmtp import _parser_py as pure
    from fastsmtp import _speedups

    expected = 0
    used = 0
    for text in texts[start:]:
        used += len(text)
        if used > room:
            break
        expected += 1
    assert pure.parts_that_fit(texts, start, room) == expected
    assert _speedups.parts_that_fit(texts, start, room) == expected


def test_parts_that_fit_on_both_cores(impl: Any) -> None:
    assert impl.parts_that_fit(["ab", "c", "def"], 0, 3) == 2
    assert impl.parts_that_fit(["ab", "c", "def"], 1, 4) == 2
    assert impl.parts_that_fit(["ab", "c", "def"], 3, 100) == 0
    assert impl.parts_that_fit(["ab", ""], 0, -1) == 0
    assert impl.parts_that_fit(["", "x"], 0, 0) == 1
    assert impl.parts_that_fit(["é" * 5], 0, 5) == 1  # characters, not bytes
    with pytest.raises(TypeError, match=r"^parts_that_fit\(\) needs a list, not tuple$"):
        impl.parts_that_fit(("a",), 0, 5)
    with pytest.raises(TypeError, match=r"^parts_that_fit\(\) needs str parts, not bytes$"):
        impl.parts_that_fit(["a", b"b"], 0, 5)
    assert impl.parts_that_fit(["ab", b"b"], 0, 1) == 0  # stops before it looks further
    with pytest.raises(ValueError, match=r"^parts_that_fit\(\) start must not be negative$"):
        impl.parts_that_fit(["a"], -1, 5)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        impl.parts_that_fit(["a"], "0", 5)


def test_a_header_class_with_its_own_name_is_left_to_the_stdlib() -> None:
    # fold_header reads the stored name (value._name) only where .name is BaseHeader's.
    class Renamed(email.headerregistry.UnstructuredHeader):
        @property
        def name(self) -> str:
            return "X-Renamed"

    # As the header registry builds its classes: the kind, then BaseHeader.
    header = type("_Renamed", (Renamed, email.headerregistry.BaseHeader), {})("Subject", "hi")
    assert fold_header(header, 78, "\r\n") is None
    plain = email.policy.SMTP.header_factory("Subject", "hi")
    assert fold_header(plain, 78, "\r\n") == plain.fold(policy=email.policy.SMTP)


@pytest.mark.parametrize("name", ["Subjé", "X-A\r\nX-B"])
def test_a_name_that_cannot_start_a_line_is_left_to_the_stdlib(name: str) -> None:
    header = email.policy.SMTP.header_factory(name, "hi")
    assert fold_header(header, 78, "\r\n") is None
    assert fold_header(header, 78, "\r\n") is None  # and again, from the label cache


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="fast path off on unverified versions")
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(_header(), _ascii_header()),
    st.sampled_from([78, 78, 20, 30, 40, 100, 998, None]),
    st.sampled_from(["\r\n", "\n"]),
)
def test_fold_line_is_the_stdlibs_one_line_fold_on_both_cores(
    header: Any, limit: int | None, linesep: str
) -> None:
    # The core's one-line step (what the flattener asks first): where it answers, the
    # answer is the stdlib's fold, and the compiled and pure cores answer alike.
    from fastsmtp import _parser_py as pure
    from fastsmtp import _speedups
    from fastsmtp._folding import FOLD_TABLES

    try:
        fold_header(header, limit, linesep)  # fills the tables, as the flattener does
    except Exception:
        assume(False)
    classes, labels, kinds = FOLD_TABLES
    width = limit or sys.maxsize
    got = pure.fold_line(header, classes, labels, width, linesep, kinds)
    assert _speedups.fold_line(header, classes, labels, width, linesep, kinds) == got
    if got is None:
        event("not one line here")
        return
    event("one line")
    assert got.count(linesep) == 1
    policy = email.policy.SMTP.clone(max_line_length=limit, linesep=linesep)
    assert ("ok", got) == _fold(header, policy)


def test_fold_line_on_both_cores(impl: Any) -> None:
    from fastsmtp._folding import FOLD_TABLES

    classes, labels, kinds = FOLD_TABLES
    subject = email.policy.SMTP.header_factory("Subject", "hello there")
    to = email.policy.SMTP.header_factory("To", "Ann <a@example.com>, b@example.com")
    for header in (subject, to):
        fold_header(header, 78, "\r\n")  # learns the class and the label
    assert impl.fold_line(subject, classes, labels, 78, "\r\n", kinds) == (
        "Subject: hello there\r\n"
    )
    assert impl.fold_line(to, classes, labels, 78, "\n", kinds) == (
        "To: Ann <a@example.com>, b@example.com\n"
    )
    # Too long for the line (the tree is not rendered to its end), an unknown class or
    # label, a line break or non-ASCII text: not answered here.
    assert impl.fold_line(to, classes, labels, 20, "\r\n", kinds) is None
    assert impl.fold_line(subject, classes, labels, 20, "\r\n", kinds) == "Subject: hello there\r\n"
    assert impl.fold_line(subject, classes, labels, 19, "\r\n", kinds) is None
    assert impl.fold_line(subject, {}, labels, 78, "\r\n", kinds) is None
    assert impl.fold_line(subject, classes, {}, 78, "\r\n", kinds) is None
    assert impl.fold_line(to, classes, labels, 78, "\r\n", {}) is None
    assert impl.fold_line("Subject: plain", classes, labels, 78, "\r\n", kinds) is None
    accented = email.policy.SMTP.header_factory("Subject", "héllo")
    fold_header(accented, 78, "\r\n")
    assert impl.fold_line(accented, classes, labels, 78, "\r\n", kinds) is None
    with pytest.raises(TypeError):
        impl.fold_line(subject, classes, labels, "78", "\r\n", kinds)


# Parse-tree nodes whose str() differs from what the kinds table says to render, so a
# test sees which way each node was taken (a real tree's str() agrees with its rendering).
class _Tree(list):  # type: ignore[type-arg]
    token_type = "unstructured"

    def __str__(self) -> str:
        return "<tree>"


class _Word(str):
    def __str__(self) -> str:
        return "<word>"


class _OddStr(str):  # in no table: rendered by str()
    def __str__(self) -> str:
        return "odd"


class _OddList(list):  # type: ignore[type-arg]  # in no table: rendered by str()
    def __str__(self) -> str:
        return "[odd]"


class _ListCalledWord(list):  # type: ignore[type-arg]  # TERMINAL but no str: str()
    def __str__(self) -> str:
        return "L"


class _StrCalledTree(str):  # TOKEN_LIST but no list: str()
    def __str__(self) -> str:
        return "S"


class _TreeValue:
    """What fold_line reads of a header object: its parse tree and its name."""

    def __init__(self, tree: object, name: object = "Subject") -> None:
        self._parse_tree = tree
        self._name = name


class _TextValue(str):
    _parse_tree: object = None
    _name: object = "Subject"


def _tables(impl: Any) -> tuple[dict[type, int], dict[str, str], dict[type, int]]:
    classes = {_TreeValue: impl.HEADER_TREE_TEXT, _TextValue: impl.HEADER_VALUE_TEXT}
    kinds = {
        _Tree: impl.TOKEN_LIST,
        _Word: impl.TERMINAL,
        _ListCalledWord: impl.TERMINAL,
        _StrCalledTree: impl.TOKEN_LIST,
    }
    return classes, {"Subject": "Subject: "}, kinds


def test_fold_line_renders_a_tree_as_its_kinds_say_within_the_room(impl: Any) -> None:
    classes, labels, kinds = _tables(impl)

    def fold(tree: object, room: int) -> str | None:
        # "Subject: " is 9 characters: room is what the tree's text may take.
        result: str | None = impl.fold_line(
            _TreeValue(tree), classes, labels, 9 + room, "\r\n", kinds
        )
        return result

    # Terminals are their own text, token lists their children's, anything else str();
    # children after a nested list are rendered too.
    tree = _Tree(
        [
            _Word("ab"),
            _Tree([_Word("cd"), _OddStr("x")]),
            _Word("ef"),
            _OddList([_Word("zz")]),
            _ListCalledWord(["y"]),
            _StrCalledTree("t"),
        ]
    )
    text = "abcdoddef[odd]LS"
    assert fold(tree, len(text)) == f"Subject: {text}\r\n"  # exactly filling the line
    assert fold(tree, len(text) - 1) is None  # the last child does not fit
    assert fold(tree, 100) == f"Subject: {text}\r\n"
    for room in range(len(text)):
        assert fold(tree, room) is None
    # A nested list exactly filling the room, and one running over it.
    nested = _Tree([_Word("ab"), _Tree([_Word("cd")])])
    assert fold(nested, 4) == "Subject: abcd\r\n"
    assert fold(nested, 3) is None
    assert fold(_Tree([_Tree([_Word("abcdef")]), _Word("x")]), 3) is None
    assert fold(_Tree([_Tree([_Word("ab")]), _Word("cd")]), 3) is None
    # The root must be a token list the table knows; an empty one is not answered.
    assert fold(_OddList([_Word("ab")]), 10) is None
    assert fold(_Tree(), 10) is None
    assert impl.fold_line(_TreeValue(tree), classes, labels, 78, "\n", {}) is None
    # A line break or non-ASCII text anywhere in it.
    for word in ("a\nb", "a\rb", "é"):
        assert fold(_Tree([_Word("ok"), _Tree([_Word(word)])]), 20) is None
    # What the tree is: ptext and MIME parameters are left to the stdlib, as is a tree
    # without a str token_type.
    for token_type in ("ptext", "mime-parameters", None, b"unstructured"):
        odd = _Tree([_Word("ab")])
        odd.token_type = token_type  # type: ignore[attr-defined]
        assert fold(odd, 10) is None
    plain = _Tree([_Word("ab")])
    plain.token_type = "address-list"  # type: ignore[attr-defined]
    assert fold(plain, 10) == "Subject: ab\r\n"

    class Untyped(list):  # type: ignore[type-arg]  # a token list without a token_type
        pass

    kinds[Untyped] = impl.TOKEN_LIST
    assert fold(Untyped([_Word("ab")]), 10) is None
    assert fold(_Tree([Untyped([_Word("ab")])]), 10) == "Subject: ab\r\n"


def test_render_follows_the_kinds_not_str(impl: Any) -> None:
    # Each node is rendered as the table says (a terminal its own text, a token list its
    # children's), not by its str(), which these nodes make differ.
    _, _, kinds = _tables(impl)
    tree = _Tree(
        [
            _Word("ab"),
            _Tree([_Word("cd"), _OddStr("x")]),
            _OddList([_Word("z")]),
            _ListCalledWord([]),
        ]
    )
    assert impl.render_children(tree, kinds) == ["ab", "cdodd", "[odd]", "L"]
    assert impl.render_tokens(tree, kinds) == "abcdodd[odd]L"


def test_fold_line_reads_the_header_objects_parts_with_care(impl: Any) -> None:
    classes, labels, kinds = _tables(impl)
    tree = _Tree([_Word("ab")])

    def fold(value: object, maxlen: int = 78, **tables: Any) -> str | None:
        result: str | None = impl.fold_line(
            value,
            tables.get("classes", classes),
            tables.get("labels", labels),
            maxlen,
            "\r\n",
            kinds,
        )
        return result

    assert fold(_TreeValue(tree)) == "Subject: ab\r\n"
    # A class in no table, or in the table as neither way of folding.
    assert fold(_TreeValue(tree), classes={}) is None
    assert fold(_TreeValue(tree), classes={_TreeValue: 3}) is None
    assert fold(_TreeValue(tree), classes={_TreeValue: None}) is None

    # A header object without a parse tree or a name, or with a name that is no str.
    class Bare:
        pass

    class Nameless:
        _parse_tree = tree

    class Treeless:
        _name = "Subject"

    for cls in (Bare, Nameless, Treeless):
        assert fold(cls(), classes={cls: impl.HEADER_TREE_TEXT}) is None
    assert fold(_TreeValue(tree, b"Subject")) is None
    assert fold(_TreeValue(tree, "X-Unknown")) is None
    # The label: an empty one or one that is no str, and one longer than the line.
    for label in ("", None, 5, b"Subject: "):
        assert fold(_TreeValue(tree), labels={"Subject": label}) is None
    assert fold(_TreeValue(tree), maxlen=8) is None
    assert fold(_TreeValue(_Tree([_Word("")])), maxlen=9) == "Subject: \r\n"

    # A header whose value is its text: the value, not its tree, is written.
    def text_value(text: str, tree: object = tree) -> _TextValue:
        value = _TextValue(text)
        value._parse_tree = tree
        return value

    assert fold(text_value("hello")) == "Subject: hello\r\n"
    assert fold(text_value("hello"), maxlen=14) == "Subject: hello\r\n"
    assert fold(text_value("hello"), maxlen=13) is None
    assert fold(text_value(""), maxlen=9) == "Subject: \r\n"  # the label alone fits
    assert fold(text_value("hello", _Tree())) is None
    assert fold(text_value("hello", None)) is None
    for text in ("a\nb", "a\rb", "héllo"):
        assert fold(text_value(text)) is None
    # A value-text class whose value is no str.
    assert fold(_TreeValue(tree), classes={_TreeValue: impl.HEADER_VALUE_TEXT}) is None


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="fast path off on unverified versions")
def test_how_each_header_class_is_folded() -> None:
    # From its value's text where the class's parse() makes the value str(tree), from the
    # tree's text for the other registry classes, by the stdlib where the class has its own
    # fold or name (or cannot be vouched for).
    from fastsmtp import _folding
    from fastsmtp._parser_py import HEADER_TREE_TEXT, HEADER_VALUE_TEXT

    factory = email.policy.SMTP.header_factory
    for name in ("Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"):
        assert _folding._header_class(type(factory(name, "x"))) == HEADER_VALUE_TEXT, name
    for name in ("To", "From", "Date"):
        assert _folding._header_class(type(factory(name, "a@b"))) == HEADER_TREE_TEXT, name

    base = email.headerregistry.BaseHeader

    class OwnFold(email.headerregistry.UnstructuredHeader, base):
        def fold(self, *, policy: Any) -> str:
            return "x"

    class NoName:  # BaseHeader's fold borrowed, no name at all
        fold = base.fold

    class NoParse:  # BaseHeader's fold and name, no parse
        fold = base.fold
        name = base.name

    assert _folding._header_class(OwnFold) == 0
    assert _folding._header_class(NoName) == 0
    assert _folding._header_class(NoParse) == HEADER_TREE_TEXT
    assert _folding._header_class(str) == 0


def test_class_key_on_both_cores(impl: Any) -> None:
    # email.headerregistry makes a class per header object, adding nothing to its bases:
    # such a class is keyed by its bases; any class with a namespace of its own by itself.
    base = email.headerregistry.BaseHeader
    made = type(email.policy.SMTP.header_factory("Subject", "x"))
    assert made is not type(email.policy.SMTP.header_factory("Subject", "y"))
    assert impl.class_key(made) == (email.headerregistry.UniqueUnstructuredHeader, base)
    assert impl.class_key(made) == impl.class_key(
        type(email.policy.SMTP.header_factory("Subject", "y"))
    )
    own = type("_Own", (email.headerregistry.UnstructuredHeader, base), {"fold": base.fold})
    assert impl.class_key(own) is own
    assert impl.class_key(str) is str
    bare = type("_Bare", (email.headerregistry.UnstructuredHeader, base), {})
    assert impl.class_key(bare) == (email.headerregistry.UnstructuredHeader, base)
    bare.extra = 1  # type: ignore[attr-defined]  # a namespace of its own from now on
    assert impl.class_key(bare) is bare
    with pytest.raises(
        TypeError, match=r"^Argument 'cls' has incorrect type \(expected type, got str\)$"
    ):
        impl.class_key("Subject")


def test_fold_line_finds_a_class_by_itself_or_by_its_class_key(impl: Any) -> None:
    from fastsmtp._folding import _KIND

    header = email.policy.SMTP.header_factory("Subject", "hello")
    labels = {"Subject": "Subject: "}
    by_class = {type(header): impl.HEADER_VALUE_TEXT}
    by_key = {impl.class_key(type(header)): impl.HEADER_VALUE_TEXT}
    for classes in (by_class, by_key):
        assert impl.fold_line(header, classes, labels, 78, "\r\n", _KIND) == "Subject: hello\r\n"
    assert impl.fold_line(header, {str: impl.HEADER_VALUE_TEXT}, labels, 78, "\r\n", _KIND) is None


def test_a_fresh_message_s_headers_fit_by_the_core_and_the_table_stays_small(impl: Any) -> None:
    # Every new header object has a new class: the table is keyed so that the next
    # message's headers are known (the core answers) and it does not grow per message.
    from fastsmtp import _folding
    from fastsmtp.email import flatten_message

    def message() -> email.message.EmailMessage:
        m = email.message.EmailMessage()
        m["Subject"] = "hello there"
        m["To"] = "Ann <a@example.com>, b@example.com"
        m.set_content("body\n")
        return m

    flatten_message(message())
    before = len(_folding._HEADER_CLASSES)
    for _ in range(50):
        flatten_message(message())
    assert len(_folding._HEADER_CLASSES) == before
    classes, labels, kinds = _folding.FOLD_TABLES
    fresh = message()
    assert impl.fold_line(fresh["Subject"], classes, labels, 78, "\r\n", kinds) == (
        "Subject: hello there\r\n"
    )
    assert impl.fold_line(fresh["To"], classes, labels, 78, "\r\n", kinds) == (
        "To: Ann <a@example.com>, b@example.com\r\n"
    )


def test_the_header_class_table_is_bounded() -> None:
    from fastsmtp import _folding

    saved = dict(_folding._HEADER_CLASSES)
    try:
        base = email.headerregistry.BaseHeader
        for number in range(1100):
            kind = type(f"_K{number}", (email.headerregistry.UnstructuredHeader, base), {"n": 1})
            header = kind("Subject", "hi")
            assert fold_header(header, 78, "\r\n") == "Subject: hi\r\n"
        assert len(_folding._HEADER_CLASSES) == 1024
    finally:
        _folding._HEADER_CLASSES.clear()
        _folding._HEADER_CLASSES.update(saved)


def test_the_cores_count_characters_not_a_subclasss_len(impl: Any) -> None:
    # Both cores read a string's own length, whatever a str subclass says it is.
    class Long(str):
        def __len__(self) -> int:
            return 1000

    assert impl.parts_that_fit([Long("ab"), "c"], 0, 3) == 2


def test_render_takes_node_classes_from_outside_the_parser() -> None:
    # Classes the parser module does not define are classified on first sight, then cached.
    class Shouting(_parser.TokenList):
        def __str__(self) -> str:
            return super().__str__().upper()

    class Plain(_parser.TokenList):
        pass

    class Word(_parser.ValueTerminal):
        pass

    words = [Word("ab", "atext"), _parser.WhiteSpaceTerminal(" ", "fws"), Word("c", "atext")]
    for _ in range(2):
        assert render(Word("ab", "atext")) == "ab"
        assert render(Plain(words)) == "ab c"
        assert render(Shouting(words)) == "AB C"
        assert render(_parser.TokenList([Shouting(words), Plain(words)])) == "AB Cab c"
