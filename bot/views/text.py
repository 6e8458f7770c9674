"""Pure text helpers: channel names, Slack escaping and Slack-to-Markdown conversion.

Nothing here talks to Slack; every function is a plain ``str -> str`` transform so it
can be property-tested.

Two different markups are involved:

* Slack ``mrkdwn`` (message ``text`` and ``mrkdwn`` text objects): ``*bold*``,
  ``_italic_``, ``~strike~``, `` `code` ``, ``> quote`` and ``<...>`` tokens for
  mentions and links.  Slack delivers user text with ``&``, ``<`` and ``>`` escaped as
  ``&amp;``, ``&lt;`` and ``&gt;``.
* GitHub-flavoured Markdown, used for postmortem documents.
"""

from __future__ import annotations

import bisect
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "MAX_CHANNEL_NAME",
    "SlackNames",
    "channel_name",
    "escape",
    "literal",
    "markdown_code_block",
    "markdown_code_span",
    "markdown_escape",
    "markdown_link",
    "markdown_piece",
    "markdown_with_pieces",
    "parse_user_name",
    "parse_user_ref",
    "slack_to_markdown",
    "split_command",
    "unescape",
    "with_suffix",
]

# Slack rejects channel names longer than this.
MAX_CHANNEL_NAME = 80

# ---------------------------------------------------------------------------
# Channel names
# ---------------------------------------------------------------------------

# Letters NFKD leaves alone because they are not "letter + accent" in Unicode.
# Input is casefolded first, so only lowercase forms are needed (casefold
# already turns ß into "ss").
_TRANSLITERATE = str.maketrans(
    {
        "æ": "ae",
        "œ": "oe",
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "ı": "i",
    }
)
_DISALLOWED = re.compile(r"[^a-z0-9_-]+")
_DASHES = re.compile(r"-{2,}")
# Cutting back to a word boundary is only worth it if it costs at most this
# many characters; otherwise a long first word would leave almost no slug.
_MAX_WORD_CUT = 20
_DEFAULT_PREFIX = "inc"


def _slugify(text: str) -> str:
    """Lowercase ASCII slug made of ``a-z 0-9 - _``; may be empty."""
    text = text.casefold().translate(_TRANSLITERATE)
    # NFKD splits "é" into "e" + combining accent and folds compatibility
    # forms (fullwidth letters, ligatures, superscripts) to plain ASCII.
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    # NFKD can produce uppercase again ("™" -> "TM").
    text = _DISALLOWED.sub("-", text.lower())
    return _DASHES.sub("-", text).strip("-_")


def channel_name(prefix: str, number: int, title: str) -> str:
    """Slack channel name ``<prefix>-<number>-<slug>``, at most 80 characters.

    The result always matches ``^[a-z0-9_-]{1,80}$``.  Titles with nothing
    transliterable (emoji, CJK, punctuation) give ``<prefix>-<number>``.
    """
    if number < 0:
        raise ValueError("incident number must not be negative")
    digits = str(number)
    room_for_prefix = MAX_CHANNEL_NAME - 1 - len(digits)
    if room_for_prefix < 1:
        raise ValueError("incident number too large for a channel name")
    # A prefix that slugifies to nothing (e.g. "🚨") still needs a word.
    slug_prefix = _slugify(prefix) or _DEFAULT_PREFIX
    slug_prefix = slug_prefix[:room_for_prefix].rstrip("-_") or _DEFAULT_PREFIX[:room_for_prefix]
    head = f"{slug_prefix}-{digits}"

    slug = _slugify(title)
    room = MAX_CHANNEL_NAME - len(head) - 1
    if not slug or room < 1:
        return head
    if len(slug) > room:
        cut = slug[:room]
        if slug[room] != "-":
            boundary = cut.rfind("-")
            if boundary > 0 and room - boundary <= _MAX_WORD_CUT:
                cut = cut[:boundary]
        # slug never starts with "-" or "_", so this cannot become empty.
        slug = cut.rstrip("-_")
    return f"{head}-{slug}"


def with_suffix(name: str, n: int) -> str:
    """``name-<n>`` trimmed to 80 characters, for retrying after ``name_taken``.

    ``name`` is the unsuffixed result of :func:`channel_name`.
    """
    if n < 2:
        raise ValueError("suffix must be at least 2")
    suffix = f"-{n}"
    keep = MAX_CHANNEL_NAME - len(suffix)
    if keep < 1:
        raise ValueError("suffix too large for a channel name")
    base = name[:keep].rstrip("-_") or _DEFAULT_PREFIX[:keep]
    return base + suffix


# ---------------------------------------------------------------------------
# Slack escaping
# ---------------------------------------------------------------------------

# Zero-width, never a line-break opportunity, and not a word boundary.
# U+200B ZERO WIDTH SPACE is the wrong choice: it is the character people put
# around markers to *force* bold/italic in the middle of a word (jsx-slack's
# "exact mode"), so next to a marker it can switch formatting on, not off.
# Slack does not document an escape for markers; this relies on its
# word-boundary rule.
_WORD_JOINER = "\u2060"
# Soft hyphen is what is known to stop Slack from seeing a line-leading ">" as
# a quote.  It renders as nothing at the start of a line, where no hyphenation
# can happen.
_QUOTE_GUARD = "\u00ad"

_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone))", re.IGNORECASE)
_SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")
_SLACK_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}


def escape(text: str) -> str:
    """Escape plain text for a Slack ``text`` field or ``mrkdwn`` object.

    ``&``, ``<`` and ``>`` become entities, which is all Slack needs to stop
    ``<!channel>``, ``<@U1>`` or ``<http://x|y>`` from turning into mentions or
    links.  Bare ``@channel``/``@here``/``@everyone`` get an invisible word
    joiner after the ``@`` because Slack links them when ``link_names`` is on.

    Not idempotent: apply it exactly once to plain text.  Text received from
    Slack is already escaped; pass it through :func:`unescape` first.
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@" + _WORD_JOINER, text)


def slack_link(url: str, label: str) -> str:
    """A link the bot makes, in Slack's ``<url|label>`` form, from an http(s) URL that came
    from elsewhere (an alert) and a label shown as plain text."""
    if not url.startswith(("https://", "http://")):
        return escape(label)
    target = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{target}|{escape(' '.join(label.split()))}>"


def unescape(text: str) -> str:
    """Undo Slack's ``&amp;``/``&lt;``/``&gt;`` escaping (single pass)."""
    return _SLACK_ENTITY.sub(lambda m: _SLACK_ENTITIES[m[1]], text)


# Slack formats with *, _, ~ and `; the fullwidth forms that CJK input
# methods produce are honoured too (jsx-slack escapes them for that reason).
_LITERAL_MARKERS = "*_~`＊＿｀"
# Emoji shortcodes keep their underscores so :white_check_mark: still renders;
# an underscore between two name characters can never open or close italics.
# URLs are left alone because Slack links them before formatting, and a
# joiner inside would break the link (think ?q=is_open).  The price: markers
# glued to a URL, up to the next space, are not guarded.
_LITERAL_SKIP_OR_MARKER = re.compile(
    r":[a-z0-9+'-]+(?:_[a-z0-9+'-]+)+:"
    r"|(?:https?|ftp)://[0-9a-z][^\s]*|mailto:[0-9a-z][^\s]*"
    r"|(?P<marker>[" + re.escape(_LITERAL_MARKERS) + r"])",
    re.IGNORECASE,
)
_QUOTE_START = re.compile(r"^(?=[ \t]*(?:&gt;|＞))", re.MULTILINE)


def _guard_marker(match: re.Match[str]) -> str:
    if match["marker"] is None:
        return match[0]
    # Slack only formats when the marker sits at a word boundary.  A joiner
    # on both sides makes the marker part of a "word": it can neither open
    # (joiner before) nor close (joiner after), even when the caller wraps
    # the result in its own *...*.
    return _WORD_JOINER + match[0] + _WORD_JOINER


def literal(text: str) -> str:
    """Plain user text for ``mrkdwn``, shown exactly as typed.

    :func:`escape`, plus invisible characters that keep ``*bold*``,
    ``_italic_``, ``~strike~``, `` `code` `` and a line-leading ``>`` from
    formatting.  Only invisible characters are added; the visible text is
    unchanged.  Not idempotent.
    """
    text = escape(text)
    text = _LITERAL_SKIP_OR_MARKER.sub(_guard_marker, text)
    return _QUOTE_START.sub(_QUOTE_GUARD, text)


# ---------------------------------------------------------------------------
# Parsing command arguments
# ---------------------------------------------------------------------------

_USER_ID = r"[UW][A-Z0-9]{2,}"
_USER_MENTION = re.compile(rf"<@({_USER_ID})(?:\|[^<>]*)?>")
_BARE_USER_ID = re.compile(_USER_ID)
_USER_NAME = re.compile(r"@([\w.'-]+)")
_BROADCAST_NAMES = frozenset({"here", "channel", "everyone"})


def parse_user_ref(token: str) -> str | None:
    """User id from ``<@U123>``, ``<@U123|name>`` or a bare ``U123``/``W123``."""
    token = token.strip()
    mention = _USER_MENTION.fullmatch(token)
    if mention is not None:
        return mention[1]
    return token if _BARE_USER_ID.fullmatch(token) else None


def parse_user_name(token: str) -> str | None:
    """Lowercased name from an unescaped ``@name``; None otherwise.

    ``@here``, ``@channel`` and ``@everyone`` are not people, so they give None.
    """
    match = _USER_NAME.fullmatch(token.strip())
    if match is None:
        return None
    name = match[1].lower()
    return None if name in _BROADCAST_NAMES else name


def split_command(text: str) -> tuple[str, str]:
    """``("verb", "rest")``: first word lowercased, rest stripped, newlines kept."""
    parts = text.strip().split(maxsplit=1)
    if not parts:
        return "", ""
    rest = parts[1].strip() if len(parts) > 1 else ""
    return parts[0].lower(), rest


# ---------------------------------------------------------------------------
# Markdown escaping
# ---------------------------------------------------------------------------

# Output is meant for CommonMark/GFM renderers (GitHub) and for people who
# edit it by hand, so only what would change the rendering is escaped, and
# only where it would: "cities_120", "#rich-text-blocks" and
# "https://status.example.com" stay as typed.  A bare URL stays a URL, which
# GFM shows as a link to itself, as Slack does.
#
# Text is often placed next to other Markdown (a name after "by ", a label
# inside "**…**"), so the characters beyond its ends are unknown (None) and
# emphasis markers there are escaped; "\n" stands for a known line boundary.

_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_ENTITY_AHEAD = re.compile(r"#?[0-9A-Za-z]+;")
_HTML_START = frozenset(string.ascii_letters + "/!?")
_LINE_BREAK_KEEP = re.compile(r"(\r\n|\r|\n)")

# Everything RFC 3986 allows unencoded, minus "(" and ")" which would end a
# Markdown link destination.  "%" stays so existing escapes are not doubled.
_URL_SAFE = ":/?#[]@!$&'*+,;=%-._~"
_BACKTICKS = re.compile(r"`+")


def _tidy(name: str) -> str:
    # Names come from Slack profiles; a newline in one must not start a
    # new Markdown block.
    return " ".join(name.split())


_ATX_HEADING = re.compile(r"#{1,6}(?:[ \t]|$)")
_BULLET = re.compile(r"[-+*](?:[ \t]|$)")
_ORDERED_MARKER = re.compile(r"(\d{1,9})[.)](?:[ \t]|$)")
_THEMATIC_BREAK = re.compile(r"([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"(?:=+|-+)[ \t]*$")
# GFM table delimiter rows: "|:--|--:|", "--- | ---".
_TABLE_DELIMITER = re.compile(r"[-:| \t]*-[-:| \t]*$")


def _is_punct(ch: str, *, symbols: bool) -> bool:
    if ch in _ASCII_PUNCT:
        return True
    category = unicodedata.category(ch)
    return category.startswith("P") or (symbols and category.startswith("S"))


def _is_space(ch: str, *, loose: bool) -> bool:
    """CommonMark's whitespace (space separators, tab, line feed, form feed, carriage
    return); ``loose`` also counts what some parsers count (vertical tab, and the
    separators Python counts)."""
    if ch in " \t\n\r\f" or unicodedata.category(ch) == "Zs":
        return True
    return loose and ch.isspace()


def _delimits(marker: str, before: str | None, after: str | None) -> bool:
    """Whether a run of ``marker`` (``*``, ``_`` or ``~``) between these neighbours
    could open or close emphasis or strikethrough.

    CommonMark's flanking rules; an unknown neighbour could be anything. Parsers differ
    on what counts as punctuation (Unicode symbols, since CommonMark 0.31) and as
    whitespace, so the run is escaped if any reading lets it act.
    """
    if before is None or after is None:
        return True
    for symbols in (False, True):
        for loose in (False, True):
            before_space = _is_space(before, loose=loose)
            after_space = _is_space(after, loose=loose)
            before_punct = _is_punct(before, symbols=symbols)
            after_punct = _is_punct(after, symbols=symbols)
            left = not after_space and (not after_punct or before_space or before_punct)
            right = not before_space and (not before_punct or after_space or after_punct)
            if marker != "_":
                if left or right:
                    return True
            elif (left and (not right or before_punct)) or (right and (not left or after_punct)):
                return True
    return False


_URL_START = re.compile(r"(?:https?|ftp)://((?:[A-Za-z0-9_-]+\.)+[A-Za-z0-9_-]+)", re.IGNORECASE)
# Where GFM and other parsers (linkify-it) agree a URL goes on.
_URL_RUN = re.compile(r"(?:[^\s\x00-\x1f\x7f-\x9f<>&\"()\[\]{}]|&(?!#?[0-9A-Za-z]+;))+")


def _bare_url(text: str, start: int) -> str:
    """The bare URL GFM would link at ``start`` ("" if none), as far as every parser
    agrees it goes: up to a space, bracket, quote or "&copy;"-like reference.

    GFM links a scheme followed by a valid domain (a dot, no "_" in its last two
    parts). It leaves trailing punctuation out of the link; kept as typed it cannot
    act as markup, since every marker that could open emphasis is escaped.
    """
    start_match = _URL_START.match(text, start)
    if start_match is None or "_" in "".join(start_match[1].split(".")[-2:]):
        return ""
    match = _URL_RUN.match(text, start)
    return match[0] if match else ""


def _guard_image(rendered: list[str], piece: str) -> None:
    """Before ``piece``: a "!" just before a link would make it an image. What precedes
    is text (people's, or a name), where "\\!" reads the same."""
    if not piece.startswith("["):
        return
    for i in range(len(rendered) - 1, -1, -1):
        if rendered[i]:
            if rendered[i].endswith("!") and not rendered[i].endswith("\\!"):
                rendered[i] = rendered[i][:-1] + "\\!"
            return


def _balanced(text: str) -> bool:
    """Whether every "[" in ``text`` is closed by a "]", in order."""
    depth = 0
    for ch in text:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _has_math(line: str) -> bool:
    # GitHub renders $…$ as math; a single "$" (a price) never pairs.
    return line.count("$") >= 2


# Where escaping may be needed: a character that can be markup, or a bare URL's start.
_MD_NEXT = re.compile(r"[*_~\\`\[\]<&$|!]|(?<![^\W_])(?=(?:https?|ftp)://)", re.IGNORECASE)


def _md_inline(
    text: str,
    *,
    before: str | None = None,
    after: str | None = None,
    in_link: bool = False,
    table_cell: bool = False,
    math: bool | None = None,
) -> str:
    """Escape text that does not start a line, between the given neighbours."""
    if math is None:
        math = _has_math(text)
    balanced = in_link and "](" not in text and _balanced(text)
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        # Most text has nothing to escape: copy it up to the next character that may.
        found = _MD_NEXT.search(text, i)
        if found is None:
            out.append(text[i:])
            break
        out.append(text[i : found.start()])
        i = found.start()
        ch = text[i]
        if not found.group():
            url = "" if in_link else _bare_url(text, i)
            # GFM links a bare URL before it looks for emphasis in it: keep it as is.
            out.append(url or ch)
            i += len(url) or 1
            continue
        if ch in "*_~":
            j = i
            while j < n and text[j] == ch:
                j += 1
            prev = text[i - 1] if i > 0 else before
            nxt = text[j] if j < n else after
            run = text[i:j]
            out.append("\\" + "\\".join(run) if _delimits(ch, prev, nxt) else run)
            i = j
            continue
        nxt = text[i + 1] if i + 1 < n else after
        if ch == "\\":
            # "\" before punctuation is an escape, and before a line end a hard break.
            out.append("\\\\" if nxt is None or nxt in _ASCII_PUNCT or nxt in "\r\n" else ch)
        elif ch == "`":
            out.append("\\`")
        elif ch == "[" and in_link and not balanced:
            out.append("\\[")
        elif ch == "]":
            # Only "](" makes a link (nothing in a draft defines references); inside a
            # link's text, an unbalanced bracket would end it.
            if in_link:
                out.append(ch if balanced else "\\]")
            else:
                out.append("\\]" if nxt is None or nxt == "(" else ch)
        elif ch == "<":
            # Raw HTML and autolinks start with "<" and a letter, "/", "!" or "?".
            out.append("&lt;" if nxt is None or nxt in _HTML_START else ch)
        elif ch == "&":
            # "&copy;" would render as "©".
            out.append("&amp;" if _ENTITY_AHEAD.match(text, i + 1) else ch)
        elif ch == "!" and not in_link:
            # "![" starts an image; before a piece, _image_guard decides.
            out.append("\\!" if nxt == "[" else ch)
        elif ch == "$" and math:
            out.append("\\$")
        elif ch == "|" and table_cell:
            out.append("\\|")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _split_line_start(line: str) -> tuple[str, int]:
    """What would make ``line`` a block construct, neutralised.

    Returns the Markdown for the start of the line and how many characters of
    ``line`` it stands for; the rest is escaped inline. Indentation is dropped
    (rendered Markdown does not show it, and it could start a code block);
    headings, quotes, list markers, thematic breaks, setext underlines, table
    delimiter rows, "~~~" fences and link reference definitions are escaped at
    their first character.
    """
    text = line.lstrip(" \t")
    lead = len(line) - len(text)
    if not text:
        return "", len(line)
    first = text[0]
    if (
        _ATX_HEADING.match(text)
        or first in ">["
        or _BULLET.match(text)
        or _THEMATIC_BREAK.match(text)
        or _SETEXT_UNDERLINE.match(text)
        or _TABLE_DELIMITER.match(text)
        or text.startswith("~~~")
    ):
        return "\\" + first, lead + 1
    ordered = _ORDERED_MARKER.match(text)
    if ordered is not None:
        digits = ordered[1]
        return digits + "\\" + text[len(digits)], lead + len(digits) + 1
    return "", lead


def _escape_line(line: str, *, first: bool, last: bool, table_cell: bool = False) -> str:
    prefix, used = _split_line_start(line)
    if prefix:
        before: str | None = line[used - 1]
    else:
        before = None if first else "\n"
    rest = _md_inline(
        line[used:],
        before=before,
        after=None if last else "\n",
        table_cell=table_cell,
        math=_has_math(line),
    )
    return prefix + rest


def markdown_escape(text: str, *, table_cell: bool = False) -> str:
    """Plain user text as Markdown that shows it as typed.

    The result never forms a heading, list, quote, code, link, image, emphasis,
    strikethrough, table, math or HTML; a bare URL stays a URL. Only what would
    change the rendering is escaped, so the text stays easy to edit. Line breaks
    are kept; indentation at the start of a line is dropped, as rendering would.
    ``table_cell`` also escapes ``|`` for text inside a GFM table.
    """
    parts = _LINE_BREAK_KEEP.split(text)
    last = len(parts) - 1
    for i in range(0, len(parts), 2):
        parts[i] = _escape_line(parts[i], first=i == 0, last=i == last, table_cell=table_cell)
    return "".join(parts)


def markdown_code_span(content: str) -> str:
    """``content`` as a Markdown code span, shown exactly (on one line)."""
    content = content.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    longest = max((len(run) for run in _BACKTICKS.findall(content)), default=0)
    fence = "`" * (longest + 1)
    if (content.startswith("`") or content.endswith("`")) or (
        content.startswith(" ") and content.endswith(" ") and content.strip(" ")
    ):
        # Markdown strips one space from each end when both are present.
        content = f" {content} "
    return f"{fence}{content}{fence}"


def markdown_code_block(content: str) -> str:
    """``content`` as a fenced Markdown code block, shown exactly."""
    content = content.replace("\r\n", "\n").replace("\r", "\n")
    longest = max((len(run) for run in _BACKTICKS.findall(content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{content}\n{fence}" if content else f"{fence}\n{fence}"


def markdown_link(url: str, label: str) -> str:
    """A Markdown link to a http(s)/mailto ``url``; an autolink when ``label`` is the URL."""
    encoded = quote(url, safe=_URL_SAFE)
    label = _tidy(label)
    if not label or label == url:
        # Autolink contents are not entity-decoded, so only the percent
        # encoding (no spaces, brackets or controls) is needed.
        return f"<{encoded}>"
    destination = re.sub(r"&(?=#?[0-9A-Za-z]+;)", "&amp;", encoded)
    return f"[{_md_inline(label, in_link=True)}]({destination})"


# ---------------------------------------------------------------------------
# Slack mrkdwn -> Markdown
# ---------------------------------------------------------------------------

# Private delimiters for stashed, already-rendered pieces.  Input NUL/SOH are
# replaced first so they cannot collide.  \x00 marks inline pieces, \x01
# fenced code blocks (which must sit on their own lines).
_INLINE_MARK = "\x00"
_BLOCK_MARK = "\x01"
_INLINE_PIECE = re.compile(r"\x00(\d+)\x00")
_BLOCK_PIECE = re.compile(r"\x01(\d+)\x01")

_SLACK_TOKENS = re.compile(
    r"```(?P<block>.*?)```|`(?P<code>[^`\n]+)`|<(?P<token>[^<>\n]*)>",
    re.DOTALL,
)
_ANGLE_TOKEN = re.compile(r"<([^<>\n]*)>")
_SAFE_SCHEME = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
_ANY_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")

_SLACK_MARKERS = {"*": "**", "_": "*", "~": "~~"}
_MARKER_CHARS = re.compile(r"[*_~]")


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _emphasis_spans(text: str, active: frozenset[str]) -> list[tuple[int, int, str]]:
    """Top-level Slack emphasis spans as ``(open, close, marker)``.

    Slack formats only when the opening marker follows a non-word character
    and precedes a non-space, and the closing one mirrors that, so
    ``snake_case_name`` or ``2*3*4`` stay plain.  Markers already open in an
    outer span (``active``) are ignored.  Linear apart from the bisect.
    """
    openers: list[int] = []
    closers: dict[str, list[int]] = {marker: [] for marker in _SLACK_MARKERS}
    last = len(text) - 1
    # Only the marker characters matter: found by a regex, not a walk over every character.
    for found in _MARKER_CHARS.finditer(text):
        i = found.start()
        ch = text[i]
        if ch in active:
            continue
        before = text[i - 1] if i > 0 else ""
        after = text[i + 1] if i < last else ""
        if not (before and _is_word(before)) and after and not after.isspace() and after != ch:
            openers.append(i)
        if before and not before.isspace() and before != ch and not (after and _is_word(after)):
            closers[ch].append(i)
    spans: list[tuple[int, int, str]] = []
    resume = 0
    for start in openers:
        if start < resume:
            continue
        candidates = closers[text[start]]
        k = bisect.bisect_right(candidates, start)
        if k < len(candidates):
            end = candidates[k]
            spans.append((start, end, text[start]))
            resume = end + 1
    return spans


def _slack_plain(text: str) -> str:
    """Plain text put back into the Slack-escaped stream."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _format_timestamp(value: str) -> str:
    try:
        moment = datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class SlackNames:
    """Names for the ids in Slack's ``<…>`` tokens; each map wins over a token's own label."""

    def __init__(
        self,
        users: Mapping[str, str],
        channels: Mapping[str, str],
        usergroups: Mapping[str, str] | None = None,
    ) -> None:
        self.users = users
        self.channels = channels
        self.usergroups = usergroups if usergroups is not None else {}

    def user(self, user_id: str, label: str = "") -> str:
        return _tidy(self.users.get(user_id) or label) or user_id

    def channel(self, channel_id: str, label: str = "") -> str:
        return _tidy(self.channels.get(channel_id) or label).lstrip("#") or channel_id

    def usergroup(self, group_id: str, label: str = "") -> str:
        return _tidy(self.usergroups.get(group_id) or label).lstrip("@") or group_id

    def special(self, command: str, label: str) -> str:
        """``<!here>``, ``<!subteam^S1>``, ``<!date^…>`` as a reader sees them."""
        name, _, argument = command.partition("^")
        if name in ("here", "channel", "everyone"):
            return "@" + name
        if name == "subteam":
            return "@" + self.usergroup(argument.partition("|")[0], label)
        if name == "date":
            return label or _format_timestamp(argument.partition("^")[0]) or command
        return label or command

    def token(self, body: str) -> str:
        """What Slack shows for a ``<…>`` token (``body`` still Slack-escaped), as text."""
        target, _, label = body.partition("|")
        label = unescape(label)
        if target.startswith("@") and len(target) > 1:
            return "@" + self.user(target[1:], label)
        if target.startswith("#") and len(target) > 1:
            return "#" + self.channel(target[1:], label)
        if target.startswith("!"):
            return self.special(target[1:], label)
        url = unescape(target)
        if label or _ANY_SCHEME.match(url):
            return _tidy(label) or url
        return f"<{url}>"

    def code(self, content: str) -> str:
        """Slack-escaped text inside code, as Slack shows it: tokens unwrapped, entities
        decoded."""
        return unescape(_ANGLE_TOKEN.sub(lambda m: _slack_plain(self.token(m[1])), content))


class _Converter:
    """One slack_to_markdown call: holds the stashed pieces."""

    def __init__(self, names: SlackNames) -> None:
        self.names = names
        self.pieces: list[str] = []

    def stash(self, rendered: str, mark: str = _INLINE_MARK) -> str:
        self.pieces.append(rendered)
        return f"{mark}{len(self.pieces) - 1}{mark}"

    # -- tokens --------------------------------------------------------------

    def token(self, match: re.Match[str]) -> str:
        if match["block"] is not None:
            # Slack users usually write ```\ncode\n```; Markdown fences add those
            # line breaks themselves.
            content = match["block"].removeprefix("\n").removesuffix("\n")
            return self.stash(markdown_code_block(self.names.code(content)), _BLOCK_MARK)
        if match["code"] is not None:
            return self.stash(markdown_code_span(self.names.code(match["code"])))
        return self.angle(match["token"])

    def angle(self, body: str) -> str:
        """Render a Slack ``<...>`` token (``body`` is still Slack-escaped)."""
        target, _, label = body.partition("|")
        if target[:1] in ("@", "#") and len(target) > 1:
            return self.stash(_md_inline(self.names.token(body)))
        if target.startswith("!"):
            name = target[1:].partition("^")[0]
            shown = self.names.special(target[1:], unescape(label))
            if name in ("here", "channel", "everyone", "subteam"):
                return self.stash(_md_inline(shown))
            return _slack_plain(shown)
        url = unescape(target)
        if _SAFE_SCHEME.match(url):
            return self.stash(markdown_link(url, unescape(label)))
        # Anything else (javascript:, tel:, stray brackets) is shown as text:
        # it goes back into the Slack-escaped stream, which escapes it.
        if label:
            return _slack_plain(unescape(label))
        if _ANY_SCHEME.match(url):
            return target
        return f"&lt;{body}&gt;"

    # -- text ----------------------------------------------------------------

    def quick(self, text: str) -> str | None:
        """Most messages are one line of words with a mention, a link or a code span in
        it: each token as the full conversion renders it, the words between them as they
        are, since nothing in them is markup. None for anything else."""
        if _NOT_QUICK.search(text):
            return None
        out: list[str] = []
        position = 0
        for match in _SLACK_TOKENS.finditer(text):
            words = text[position : match.start()]
            if not _quick_words(words, first=position == 0) or match["block"] is not None:
                return None
            shown = self.token(match)
            if not _INLINE_PIECE.fullmatch(shown):
                return None  # shown as text, which the full conversion escapes
            out += [words, self.pieces[-1]]
            position = match.end()
        words = text[position:]
        if not out or not _quick_words(words, first=position == 0):
            return None
        out.append(words)
        return "".join(out)

    def plain(self, text: str, before: str | None, after: str | None, math: bool) -> str:
        """Text with inline pieces -> Markdown."""
        parts = _INLINE_PIECE.split(text)
        last = len(parts) - 1
        out: list[str] = []
        for i, part in enumerate(parts):
            if i % 2:
                _guard_image(out, self.pieces[int(part)])
                out.append(self.pieces[int(part)])
            else:
                out.append(
                    _md_inline(
                        part,
                        before=before if i == 0 else None,
                        after=after if i == last else None,
                        math=math,
                    )
                )
        return "".join(out)

    def inline(
        self,
        text: str,
        math: bool,
        active: frozenset[str] = frozenset(),
        before: str | None = None,
        after: str | None = None,
    ) -> str:
        out: list[str] = []
        position = 0
        for start, end, marker in _emphasis_spans(text, active):
            md = _SLACK_MARKERS[marker]
            out.append(
                self.plain(text[position:start], before if not position else None, None, math)
            )
            out.append(md + self.inline(text[start + 1 : end], math, active | {marker}) + md)
            position = end + 1
        out.append(self.plain(text[position:], before if not position else None, after, math))
        return "".join(out)

    def text_line(self, raw: str) -> str:
        text = unescape(raw)
        prefix, used = _split_line_start(text)
        math = _has_math(_INLINE_PIECE.sub("", text))
        before = text[used - 1] if prefix else "\n"
        return prefix + self.inline(text[used:], math, before=before, after="\n")

    def line(self, line: str) -> str:
        """One Slack line (quote marker removed) -> one or more Markdown lines."""
        parts = _BLOCK_PIECE.split(line)
        out: list[str] = []
        for i, part in enumerate(parts):
            if i % 2:
                out.append(self.pieces[int(part)])
                continue
            # Text next to a fenced block lands on its own line, where its
            # leading characters decide the block type again.
            if i > 0:
                part = part.lstrip()
            if i < len(parts) - 1:
                part = part.rstrip()
            if part or len(parts) == 1:
                out.append(self.text_line(part))
        return "\n".join(out)


# Text the quick way leaves to the full conversion: line breaks, private marks, entities
# (escaped text), markup and emphasis characters.
_NOT_QUICK = re.compile(r"[\n\r\x00\x01&*_~\\\[\]$|!]")
# A character that is not a letter, a digit, a space or harmless punctuation.
NOT_PLAIN = re.compile(r"[^\w ,.;:'?/()@#%=+\"-]|_")


def _quick_words(words: str, *, first: bool) -> bool:
    """Words with nothing markup in them, that start no block at the start of a line."""
    if first and words and not words[0].isalpha():
        return False  # "- x", "1. x", "# x" would start a block
    return NOT_PLAIN.search(words) is None


def markdown_piece(index: int) -> str:
    """The placeholder for ``pieces[index]`` in text given to :func:`markdown_with_pieces`."""
    return f"{_INLINE_MARK}{index}{_INLINE_MARK}"


def markdown_with_pieces(text: str, pieces: Sequence[str], *, mid_line: bool = False) -> str:
    """Plain text holding placeholders (:func:`markdown_piece`) for Markdown already
    rendered, e.g. links, mentions and code: the text is escaped line by line as
    :func:`markdown_escape` escapes it, line starts included, and each piece is put in
    as it is. A piece counts as an unknown neighbour of the text around it. With
    ``mid_line`` the text goes between other Markdown on one line (inside emphasis
    markers): its ends are unknown neighbours and it starts no line."""
    text = text.replace(_BLOCK_MARK, "\ufffd")
    out: list[str] = []
    edge = None if mid_line else "\n"
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        prefix, used = ("", 0) if mid_line else _split_line_start(line)
        math = _has_math(_INLINE_PIECE.sub("", line))
        parts = _INLINE_PIECE.split(line[used:])
        last = len(parts) - 1
        rendered = [prefix]
        for i, part in enumerate(parts):
            if i % 2:
                _guard_image(rendered, pieces[int(part)])
                rendered.append(pieces[int(part)])
                continue
            before = (line[used - 1] if prefix else edge) if i == 0 else None
            after = edge if i == last else None
            rendered.append(_md_inline(part, before=before, after=after, math=math))
        out.append("".join(rendered))
    return "\n".join(out)


def slack_to_markdown(
    text: str,
    *,
    users: Mapping[str, str],
    channels: Mapping[str, str],
    usergroups: Mapping[str, str] | None = None,
) -> str:
    """Convert a Slack message (as delivered, still escaped) to GFM Markdown.

    Mentions become ``@Name``/``#channel``/``@handle`` (the maps win over names
    embedded in the token, then the raw id), http(s)/mailto links become Markdown
    links, other schemes become plain text, Slack emphasis becomes Markdown
    emphasis, quotes become ``>`` lines. Code is shown as Slack shows it: link and
    mention tokens unwrapped to their text, entities decoded, nothing escaped.
    All remaining text is escaped with the same rules as :func:`markdown_escape`,
    so user text such as ``<script>`` or ``# title`` is shown, not rendered.

    Lines are kept as lines (Markdown soft breaks).  Fenced blocks get their
    own lines, and a blank line is added after a quote so the next line does
    not fold into it.
    """
    converter = _Converter(SlackNames(users, channels, usergroups))
    quick = converter.quick(text)
    if quick is not None:
        return quick
    # Markdown treats a lone \r as a line break too; normalise so every
    # line start is seen and escaped.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace(_INLINE_MARK, "\ufffd").replace(_BLOCK_MARK, "\ufffd")
    skeleton = _SLACK_TOKENS.sub(converter.token, text)

    out: list[str] = []
    quote_rest = False
    previous_quoted = False
    for raw in skeleton.split("\n"):
        line = raw
        quoted = quote_rest
        if not quoted:
            if line.startswith("&gt;&gt;&gt;"):
                # Slack's ">>>" quotes everything that follows.
                quote_rest = quoted = True
                line = line[len("&gt;&gt;&gt;") :]
            elif line.startswith("&gt;"):
                quoted = True
                line = line[len("&gt;") :]
            if quoted:
                line = line.removeprefix(" ")
        rendered = converter.line(line)
        if quoted:
            rendered = "\n".join(f"> {row}" if row else ">" for row in rendered.split("\n"))
        elif previous_quoted and rendered:
            # Without a blank line Markdown continues the quote lazily.
            out.append("")
        out.append(rendered)
        previous_quoted = quoted
    return "\n".join(out)


_COMMAND_TOKEN = re.compile(r"<([^<>\n]*)>")


def _plain_token(match: re.Match[str]) -> str:
    body = match[1]
    target, _, label = body.partition("|")
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        return label or "@" + target[1:].split("^", 1)[0]
    return f"{label} ({target})" if label and label != target else target


def slack_to_plain(text: str) -> str:
    """Typed command text as the person sees it: `<@U1|bob>` -> `@bob`, entities undone.

    Slack delivers slash-command text escaped, with mentions and links as tokens; the
    bot stores what people read, and escapes it again wherever it posts it.
    """
    return unescape(_COMMAND_TOKEN.sub(_plain_token, text))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(text: str) -> str:
    """People's text without control characters (NUL breaks PostgreSQL; none of them
    are visible), keeping tabs and line breaks."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
