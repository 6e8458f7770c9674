"""Tests for bot.views.text: examples for each rule plus property tests."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.base.plain import one_line
from bot.views.text import (
    MAX_CHANNEL_NAME,
    channel_name,
    escape,
    literal,
    markdown_escape,
    parse_user_name,
    parse_user_ref,
    slack_to_markdown,
    split_command,
    unescape,
    with_suffix,
)
from tests.readable import plain_paragraphs, shape, shows_itself, squash, visible

WJ = "\u2060"
SHY = "\u00ad"
CHANNEL_RE = re.compile(r"[a-z0-9_-]{1,80}")
USERS = {"U1": "Alice", "U2": "Bob *the* <b>"}
CHANNELS = {"C1": "incidents"}
GROUPS = {"S2": "sre"}

# Long strings are cheap for these functions; hypothesis spends its time
# generating them, so keep example counts modest.
LONG = settings(max_examples=60, deadline=None)
SHORT = settings(max_examples=150, deadline=None)


def md(text: str) -> str:
    return slack_to_markdown(text, users=USERS, channels=CHANNELS, usergroups=GROUPS)


# Fragments that exercise Slack tokens and Markdown-significant characters
# far more often than uniform random text would.
FRAGMENTS = [
    "*",
    "_",
    "~",
    "`",
    "```",
    "<",
    ">",
    "&lt;",
    "&gt;",
    "&amp;",
    "&gt; ",
    "&gt;&gt;&gt;",
    "script",
    "SCRIPT",
    "<@U1>",
    "<@U9|x>",
    "<#C1|c>",
    "<#C9>",
    "<!here>",
    "<!subteam^S1|@t>",
    "<!date^1^{date}|d>",
    "<http://x|y>",
    "<http://x>",
    "<mailto:a@b|a@b>",
    "<javascript:alert(1)|z>",
    "\n",
    "\r",
    " ",
    "    ",
    "#",
    "-",
    "+",
    "=",
    "1.",
    ":",
    "---",
    "[",
    "](",
    "|",
    "\\",
    "http://",
    "www.",
    "@",
    "a",
    "é",
    "🔥",
    "\x00",
    "\x01",
]
slackish = st.one_of(
    st.text(max_size=2000),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=80).map("".join),
)


# ---------------------------------------------------------------------------
# channel_name / with_suffix
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "number", "title", "expected"),
    [
        ("inc", 42, "Database down", "inc-42-database-down"),
        ("INC", 7, "Café ÜBER Straße", "inc-7-cafe-uber-strasse"),
        (
            "inc",
            1,
            "Smørrebrød, Łódź, Đakovo, Þór, Æsir, Œuvre",
            "inc-1-smorrebrod-lodz-dakovo-thor-aesir-oeuvre",
        ),
        ("inc", 3, "🔥🔥🔥", "inc-3"),
        ("inc", 4, "数据库故障", "inc-4"),
        ("inc", 5, "خطأ في الخادم", "inc-5"),
        ("inc", 6, "!!! ??? ...", "inc-6"),
        ("inc", 8, "  --Payments -- API__  ", "inc-8-payments-api"),
        ("inc", 9, "ﬁle ＡＢＣ ²", "inc-9-file-abc-2"),
        ("My Incidents!", 10, "x", "my-incidents-10-x"),
        ("🚨", 11, "x", "inc-11-x"),
        ("", 12, "", "inc-12"),
    ],
)
def test_channel_name_examples(prefix: str, number: int, title: str, expected: str) -> None:
    assert channel_name(prefix, number, title) == expected


def test_channel_name_cuts_long_title_at_word_boundary() -> None:
    title = " ".join(["outage"] * 40)  # 279 characters
    name = channel_name("inc", 123, title)
    assert len(name) <= MAX_CHANNEL_NAME
    assert name.startswith("inc-123-outage-")
    assert name.endswith("-outage")


def test_channel_name_cuts_long_word_mid_word() -> None:
    name = channel_name("inc", 1, "a" * 200)
    assert name == "inc-1-" + "a" * 74
    assert len(name) == MAX_CHANNEL_NAME


def test_channel_name_does_not_lose_more_than_a_word() -> None:
    # The only boundary is far back: cutting there would waste the slug.
    name = channel_name("inc", 1, "short " + "b" * 200)
    assert len(name) == MAX_CHANNEL_NAME
    assert name.startswith("inc-1-short-bbb")


def test_channel_name_never_ends_in_separator() -> None:
    title = "x" * 73 + "_" * 20
    assert channel_name("inc", 1, title) == "inc-1-" + "x" * 73


def test_channel_name_long_prefix_is_trimmed() -> None:
    name = channel_name("p" * 200, 99, "title")
    assert len(name) <= MAX_CHANNEL_NAME
    assert name.endswith("-99")


def test_channel_name_rejects_negative_number() -> None:
    with pytest.raises(ValueError):
        channel_name("inc", -1, "x")


@LONG
@given(
    prefix=st.text(max_size=100),
    number=st.integers(min_value=0, max_value=10**12),
    title=st.text(max_size=10_000),
)
def test_channel_name_is_always_valid(prefix: str, number: int, title: str) -> None:
    name = channel_name(prefix, number, title)
    assert CHANNEL_RE.fullmatch(name)
    head = channel_name(prefix, number, "")
    assert CHANNEL_RE.fullmatch(head)
    assert head.endswith(f"-{number}")
    assert name == head or name.startswith(head + "-")
    assert not name.endswith(("-", "_"))
    assert "--" not in name[len(head) :]


def test_with_suffix_examples() -> None:
    assert with_suffix("inc-1-db", 2) == "inc-1-db-2"
    long = channel_name("inc", 1, "x" * 200)
    assert with_suffix(long, 10) == long[:77] + "-10"
    # The trimmed base must not end in "-" before the suffix.
    base = "inc-1-" + "a" * 72 + "-b"
    assert with_suffix(base, 2) == "inc-1-" + "a" * 72 + "-2"


def test_with_suffix_rejects_small_n() -> None:
    with pytest.raises(ValueError):
        with_suffix("inc-1", 1)


@SHORT
@given(
    title=st.text(max_size=300),
    number=st.integers(min_value=0, max_value=10**9),
    n=st.integers(min_value=2, max_value=10**6),
)
def test_with_suffix_is_always_valid(title: str, number: int, n: int) -> None:
    name = with_suffix(channel_name("inc", number, title), n)
    assert CHANNEL_RE.fullmatch(name)
    assert len(name) <= MAX_CHANNEL_NAME
    assert name.endswith(f"-{n}")
    assert not name.removesuffix(f"-{n}").endswith(("-", "_"))


# ---------------------------------------------------------------------------
# escape / literal / unescape
# ---------------------------------------------------------------------------


def test_escape_entities_and_tokens() -> None:
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape("<!channel> <@U1> <#C1> <http://x|y>") == (
        "&lt;!channel&gt; &lt;@U1&gt; &lt;#C1&gt; &lt;http://x|y&gt;"
    )


def test_escape_neutralises_bare_broadcasts() -> None:
    assert escape("@channel @here @Everyone") == f"@{WJ}channel @{WJ}here @{WJ}Everyone"
    assert escape("@bob") == "@bob"


def test_escape_is_not_idempotent() -> None:
    # Documented: apply once.
    assert escape(escape("&")) == "&amp;amp;"


def test_unescape_is_single_pass() -> None:
    assert unescape("&amp;lt; &lt;b&gt; &amp;") == "&lt; <b> &"
    assert unescape(escape("<a & b>")) == "<a & b>"


def test_literal_guards_every_marker() -> None:
    assert literal("*bold*") == f"{WJ}*{WJ}bold{WJ}*{WJ}"
    out = literal("_it_ ~s~ `c`")
    assert out == (f"{WJ}_{WJ}it{WJ}_{WJ} {WJ}~{WJ}s{WJ}~{WJ} {WJ}`{WJ}c{WJ}`{WJ}")


def test_literal_guards_leading_quote() -> None:
    assert literal("> not a quote\n  > nor this\na > b") == (
        f"{SHY}&gt; not a quote\n{SHY}  &gt; nor this\na &gt; b"
    )


def test_literal_keeps_emoji_shortcodes_and_urls() -> None:
    text = ":white_check_mark: see https://x.example/a_b_c and _this_"
    out = literal(text)
    assert ":white_check_mark:" in out
    assert "https://x.example/a_b_c" in out
    assert f"{WJ}_{WJ}this{WJ}_{WJ}" in out


def test_literal_escapes_mentions() -> None:
    assert literal("<!channel> @here") == f"&lt;!channel&gt; @{WJ}here"


@LONG
@given(st.text(max_size=10_000))
def test_escape_and_literal_never_emit_angle_brackets(text: str) -> None:
    for out in (escape(text), literal(text)):
        assert "<" not in out
        assert ">" not in out


@SHORT
@given(st.text(max_size=2000))
def test_literal_only_adds_invisible_characters(text: str) -> None:
    def visible(s: str) -> str:
        return s.replace(WJ, "").replace(SHY, "")

    assert visible(literal(text)) == visible(escape(text))


@SHORT
@given(st.text(alphabet=st.characters(blacklist_characters=":/"), max_size=2000))
def test_literal_markers_are_always_joined(text: str) -> None:
    out = literal(text)
    for match in re.finditer(r"[*_~`＊＿｀]", out):
        i = match.start()
        assert out[i - 1] == WJ
        assert out[i + 1] == WJ


# ---------------------------------------------------------------------------
# one_line
# ---------------------------------------------------------------------------


def test_one_line_examples() -> None:
    assert one_line("  a\n\n b\t c  ", 100) == "a b c"
    assert one_line("abcdefghij", 10) == "abcdefghij"
    assert one_line("abcdefghijk", 10) == "abcdefghi…"
    assert one_line("abcd efgh ij", 6) == "abcd…"
    assert one_line("abc", 0) == ""
    assert one_line("abc", 1) == "…"


@LONG
@given(st.text(max_size=10_000), st.integers(min_value=0, max_value=500))
def test_one_line_properties(text: str, limit: int) -> None:
    out = one_line(text, limit)
    assert len(out) <= limit
    assert len(out.splitlines()) <= 1
    assert out == out.strip()
    collapsed = " ".join(text.split())
    if len(collapsed) <= limit:
        assert out == collapsed
    else:
        assert out == "" if limit == 0 else out.endswith("…")


# ---------------------------------------------------------------------------
# parsing commands
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("<@U123ABC>", "U123ABC"),
        ("<@U123ABC|jane>", "U123ABC"),
        ("<@W0AB>", "W0AB"),
        ("U123ABC", "U123ABC"),
        ("W123ABC", "W123ABC"),
        (" U123ABC ", "U123ABC"),
        ("u123abc", None),
        ("U1", None),
        ("C123ABC", None),
        ("<#C123|x>", None),
        ("@jane", None),
        ("<@U123ABC", None),
        ("", None),
    ],
)
def test_parse_user_ref(token: str, expected: str | None) -> None:
    assert parse_user_ref(token) == expected


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("@Jane", "jane"),
        ("@jane.doe", "jane.doe"),
        ("@josé-m_2", "josé-m_2"),
        ("@here", None),
        ("@Channel", None),
        ("jane", None),
        ("@", None),
        ("<@U1>", None),
        ("@a b", None),
    ],
)
def test_parse_user_name(token: str, expected: str | None) -> None:
    assert parse_user_name(token) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("", "")),
        ("   ", ("", "")),
        ("Declare", ("declare", "")),
        ("  Declare  DB is Down  ", ("declare", "DB is Down")),
        ("note first line\nSecond Line\n", ("note", "first line\nSecond Line")),
        ("assign\n<@U1>", ("assign", "<@U1>")),
    ],
)
def test_split_command(text: str, expected: tuple[str, str]) -> None:
    assert split_command(text) == expected


# ---------------------------------------------------------------------------
# slack_to_markdown
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slack", "expected"),
    [
        ("hi <@U1>", "hi @Alice"),
        ("<@U1|old-name>", "@Alice"),
        ("<@U7>", "@U7"),
        ("<@U7|zed>", "@zed"),
        ("<@U2>", "@Bob \\*the\\* &lt;b>"),
        ("<#C1|old>", "#incidents"),
        ("<#C5|general>", "#general"),
        ("<#C5>", "#C5"),
        ("<!here> <!channel> <!everyone>", "@here @channel @everyone"),
        ("<!subteam^S1|@oncall>", "@oncall"),
        ("<!subteam^S2>", "@sre"),
        ("<!subteam^S2|@old-handle>", "@sre"),
        ("<!date^1392734382^{date} at {time}|Feb 18, 2014>", "Feb 18, 2014"),
        ("<!date^1392734382^{date}>", "2014-02-18 14:39 UTC"),
        ("<http://x|label>", "[label](http://x)"),
        ("see!<http://x|label>", "see\\![label](http://x)"),
        ("<http://x>", "<http://x>"),
        ("<mailto:a@b|a@b>", "[a@b](mailto:a@b)"),
        ("<https://x/?a=1&amp;b=2|q>", "[q](https://x/?a=1&b=2)"),
        ("<https://x/a(b) c|p>", "[p](https://x/a%28b%29%20c)"),
        ("<javascript:alert(1)|click>", "click"),
        ("<javascript:alert(1)>", "javascript:alert(1)"),
        ("*bold*", "**bold**"),
        ("_it_", "*it*"),
        ("~gone~", "~~gone~~"),
        ("*_both_*", "***both***"),
        ("*bold with <http://x|link>*", "**bold with [link](http://x)**"),
        ("snake_case_words stay", "snake_case_words stay"),
        ("cities_120 and #rich-text-blocks", "cities_120 and #rich-text-blocks"),
        ("2*3*4", "2\\*3\\*4"),
        ("* not bold *", "\\* not bold *"),
        ("`*x* _y_ <b>`", "`*x* _y_ <b>`"),
        ("`&lt;b&gt; &amp;`", "`<b> &`"),
        ("a ```x_y *z*\n&lt;q&gt;``` b", "a\n```\nx_y *z*\n<q>\n```\nb"),
        # Inside code, Slack shows link and mention tokens as their text.
        (
            "```wget <http://downloads.example.io/mesos.egg>\n"
            "call <tel:28919.8689279|28919.8689279>```",
            "```\nwget http://downloads.example.io/mesos.egg\ncall 28919.8689279\n```",
        ),
        ("`ping <@U1> in <#C1> &amp;&amp; <!here>`", "`ping @Alice in #incidents && @here`"),
        ("`a `` b`", "`a `` b`"),
        ("```\ncode\n```", "```\ncode\n```"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;script>alert(1)&lt;/script>"),
        ("a &lt; b &gt; c", "a < b > c"),
        ("a &amp; b &amp;copy;", "a & b &amp;copy;"),
        ("&gt; quoted *b*\nplain", "> quoted **b**\n\nplain"),
        ("&gt;no space", "> no space"),
        ("&gt;&gt;&gt; all\nof\nthis", "> all\n> of\n> this"),
        ("&gt; ```q```", "> ```\n> q\n> ```"),
        ("# not a heading", "\\# not a heading"),
        ("- not a list\n+ nor this\n1. nor this", "\\- not a list\n\\+ nor this\n1\\. nor this"),
        ("title\n---\n===", "title\n\\---\n\\==="),
        ("    not code", "not code"),
        ("[x](http://evil)", "\\[x\\](http://evil)"),
        ("see [x](http://evil)", "see [x\\](http://evil)"),
        ("status: https://status.example.com", "status: https://status.example.com"),
        ("a | b\n--|--", "a | b\n\\--|--"),
        ("line one\nline two", "line one\nline two"),
        ("", ""),
    ],
)
def test_slack_to_markdown_examples(slack: str, expected: str) -> None:
    assert md(slack) == expected


@LONG
@given(slackish)
def test_slack_to_markdown_never_makes_html_headings_or_hidden_links(text: str) -> None:
    out = md(text)
    found = shape(out)
    assert found.html == [] and found.headings == [] and found.images == 0
    # Links come from Slack's own link tokens, or are bare URLs shown as themselves.
    tokens = re.findall(r"<((?:https?|mailto):[^|>]*)\|?([^>]*)>", text)
    for link in found.links:
        assert shows_itself(link) or any(link.text for _ in tokens), link
    assert "\x00" not in out
    assert "\x01" not in out


@LONG
@given(slackish)
def test_slack_to_markdown_never_raises(text: str) -> None:
    out = md(text)
    assert isinstance(out, str)
    assert "\x00" not in out
    assert "\x01" not in out


@LONG
@given(st.text(max_size=10_000))
def test_slack_to_markdown_handles_any_unicode(text: str) -> None:
    slack_to_markdown(text, users={}, channels={})


# ---------------------------------------------------------------------------
# markdown_escape
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain words", "plain words"),
        ("*bold* _it_ ~s~ `c`", "\\*bold\\* \\_it\\_ \\~s\\~ \\`c\\`"),
        ("2 * 3 and a _ b", "2 * 3 and a _ b"),
        ("cities_120 snake_case_name", "cities_120 snake_case_name"),
        ("[x](y) ![i](z) [ok]", "\\[x\\](y) \\![i\\](z) [ok\\]"),
        ("wow! great!", "wow! great!"),
        ("see [docs] now", "see [docs] now"),
        ("<script>", "&lt;script>"),
        ("a < b > c", "a < b > c"),
        ("# Heading", "\\# Heading"),
        ("#rich-text-blocks and #1", "#rich-text-blocks and #1"),
        ("> quote", "\\> quote"),
        ("- item\n+ item\n1. item\n2) item", "\\- item\n\\+ item\n1\\. item\n2\\) item"),
        ("version 1. and -x +1", "version 1. and -x +1"),
        ("a\n---", "a\n\\---"),
        ("a\n===", "a\n\\==="),
        ("a|b\n:-:|--:", "a|b\n\\:-:|--:"),
        ("a\n---:", "a\n\\---:"),
        ("***", "\\*\\*\\*"),
        ("~~~ not a fence", "\\~\\~\\~ not a fence"),
        ("[x]: http://evil", "\\[x]: http://evil"),
        ("-x and :x", "-x and :x"),
        ("    code", "code"),
        ("\tcode", "code"),
        ("   ", ""),
        ("a | b", "a | b"),
        ("C:\\path \\*x", "C:\\path \\\\\\*x"),
        ("&copy; & co &#32;", "&amp;copy; & co &amp;#32;"),
        ("$x$ cost", "\\$x\\$ cost"),
        ("costs $5", "costs $5"),
        ("http://x www.y.com me@z.io", "http://x www.y.com me@z.io"),
        ("https://status.example.com", "https://status.example.com"),
        ("line\r\nnext\rlast", "line\r\nnext\rlast"),
    ],
)
def test_markdown_escape_examples(text: str, expected: str) -> None:
    assert markdown_escape(text) == expected


def test_markdown_escape_in_a_table_cell() -> None:
    assert markdown_escape("a | b", table_cell=True) == "a \\| b"


def reads_as_typed(text: str, out: str) -> None:
    """``out`` renders as ``text``: the same characters, in paragraphs only, with no
    emphasis, code, link (but a bare URL shown as itself), image or HTML."""
    found = shape(out)
    assert plain_paragraphs(out), (text, out, found.blocks)
    assert found.emphasis == 0 and found.code == [] and found.images == 0, (text, out)
    assert found.html == [], (text, out)
    assert all(shows_itself(link) for link in found.links), (text, out, found.links)
    if not URL_LIKE.search(text):
        assert squash(visible(out)) == squash(text), (text, out)


# Parsers disagree on bare URLs: markdown-it-py's linkify links "http://evil" (no dot)
# and reads on through "<", ">" or "&lt;" where GitHub ends the link, keeping the
# escapes that GitHub reads as text. The visible text is compared where they agree.
URL_LIKE = re.compile(r"(?:https?|ftp)://|www\.", re.IGNORECASE)


@LONG
@given(st.text(max_size=2_000))
def test_markdown_escape_reads_as_typed(text: str) -> None:
    reads_as_typed(text, markdown_escape(text))


@SHORT
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=80).map("".join))
def test_markdown_escape_reads_as_typed_next_to_markup(text: str) -> None:
    out = markdown_escape(text)
    reads_as_typed(text, out)
    # Placed between other Markdown, as names and titles are, it still reads as typed.
    framed = shape(f"**Role:** {markdown_escape(' '.join(text.split()))} (since now)")
    assert framed.emphasis == 1 and framed.code == [] and framed.html == []


def test_slack_to_plain_reads_command_text_as_typed() -> None:
    from bot.views.text import slack_to_plain

    assert slack_to_plain("DB &amp; cache &lt;slow&gt;") == "DB & cache <slow>"
    assert slack_to_plain("ask <@U123|bob> in <#C9|ops>") == "ask @bob in #ops"
    assert slack_to_plain("<!channel> <!here> <!subteam^S1|@sre>") == "@channel @here @sre"
    assert slack_to_plain("see <https://x.io/a|the doc> or <https://y.io>") == (
        "see the doc (https://x.io/a) or https://y.io"
    )
    assert slack_to_plain("<@U123>") == "@U123"


def test_clean_drops_control_characters_but_keeps_lines() -> None:
    from bot.views.text import clean

    assert clean("a\x00b\x07c\r\nd\te\x7f") == "abc\nd\te"
