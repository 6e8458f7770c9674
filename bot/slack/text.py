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
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "MAX_CHANNEL_NAME",
    "channel_name",
    "escape",
    "literal",
    "markdown_escape",
    "one_line",
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


def one_line(text: str, limit: int) -> str:
    """Collapse all whitespace to single spaces and cut to ``limit`` characters.

    A cut text ends in ``…`` and the result is never longer than ``limit``.
    Apply before :func:`escape`/:func:`literal` so the cut cannot split an
    entity.
    """
    # str.split() also splits on \r, \v, \f, \x1c-\x1f, \x85, \u2028 and
    # \u2029, so no line break of any kind survives.
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + "…"


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

# Output is meant for CommonMark/GFM renderers (GitHub).  "<" and ">" become
# entities rather than "\<": every Markdown dialect decodes entities, while
# some (Python-Markdown) do not treat "\<" as an escape and would pass raw
# HTML through.
_MD_INLINE = re.compile(
    r"(?P<char>[\\`*_\[\]|~#$])"
    r"|(?P<lt><)|(?P<gt>>)"
    # "&copy;" would render as "©".
    r"|(?P<amp>&(?=#?[0-9A-Za-z]+;))"
    # GFM autolinks bare URLs, www. hosts and e-mail addresses; an escape
    # at the trigger character stops each of them.
    r"|(?P<scheme>:(?=//))"
    r"|(?P<www>(?<![0-9A-Za-z])www\.)"
    r"|(?P<at>(?<=[0-9A-Za-z._+-])@)",
    re.IGNORECASE,
)
# Inside link text GFM never autolinks, so those escapes would only be noise.
_MD_INLINE_IN_LINK = re.compile(
    r"(?P<char>[\\`*_\[\]|~#$])|(?P<lt><)|(?P<gt>>)|(?P<amp>&(?=#?[0-9A-Za-z]+;))"
)


def _md_inline_sub(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "lt":
        return "&lt;"
    if kind == "gt":
        return "&gt;"
    if kind == "amp":
        return "&amp;"
    if kind == "www":
        return match[0][:3] + "\\."
    return "\\" + match[0]


def _md_inline(text: str, *, in_link: bool = False) -> str:
    """Escape text that does not start a line."""
    pattern = _MD_INLINE_IN_LINK if in_link else _MD_INLINE
    return pattern.sub(_md_inline_sub, text)


_ORDERED_MARKER = re.compile(r"(\d{1,9})([.)])(?=[ \t]|$)")
# Setext underlines, thematic breaks and table delimiter rows ("|:--|--:|")
# are lines made only of these characters.
_RULE_LIKE = re.compile(r"[-:|\s]*")
_ONLY_EQUALS = re.compile(r"[=\s]*")


def _split_line_start(line: str) -> tuple[str, str]:
    """Split off and neutralise what would make ``line`` a block construct.

    Returns the escaped Markdown prefix and the untouched remainder.  Block
    constructs are decided by the first characters of a line: indentation
    (code block), ``-``/``+``/digits (lists), ``-``/``=``/``:`` lines (setext
    headings, rules, table delimiter rows).  ``#``, ``>``, ``*``, ``_``, backticks, ``~`` and ``|``
    are escaped everywhere by the inline pass.
    """
    if not line or line.isspace():
        # Blank lines only separate paragraphs; keep them blank.
        return "", line
    first = line[0]
    if first in " \t":
        # An entity is not indentation, so nothing after it can be an
        # indented code block, list or heading.
        return ("&#32;" if first == " " else "&#9;"), line[1:]
    if first in "-:" and _RULE_LIKE.fullmatch(line):
        return "\\" + first, line[1:]
    if first in "-+" and line[1:2] in ("", " ", "\t"):
        return "\\" + first, line[1:]
    if first == "=" and _ONLY_EQUALS.fullmatch(line):
        return "\\=", line[1:]
    ordered = _ORDERED_MARKER.match(line)
    if ordered is not None:
        return ordered[1] + "\\" + ordered[2], line[ordered.end() :]
    return "", line


_LINE_BREAK_KEEP = re.compile(r"(\r\n|\r|\n)")


def markdown_escape(text: str) -> str:
    """Escape plain user text so Markdown shows it literally.

    The result never forms a heading, list, quote, code, link, autolink,
    emphasis, strikethrough, table, math or HTML.  Newlines are kept.
    Escapes are backslashes, ``&lt;``/``&gt;``/``&amp;``, and ``&#32;``/``&#9;``
    for leading indentation.
    """
    parts = _LINE_BREAK_KEEP.split(text)
    for i in range(0, len(parts), 2):
        prefix, rest = _split_line_start(parts[i])
        parts[i] = prefix + _md_inline(rest)
    return "".join(parts)


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
_SAFE_SCHEME = re.compile(r"(?:https?|mailto):", re.IGNORECASE)
_ANY_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# Everything RFC 3986 allows unencoded, minus "(" and ")" which would end a
# Markdown link destination.  "%" stays so existing escapes are not doubled.
_URL_SAFE = ":/?#[]@!$&'*+,;=%-._~"
_BACKTICKS = re.compile(r"`+")

_SLACK_MARKERS = {"*": "**", "_": "*", "~": "~~"}


def _tidy(name: str) -> str:
    # Names come from Slack profiles; a newline in one must not start a
    # new Markdown block.
    return " ".join(name.split())


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
    for i, ch in enumerate(text):
        if ch not in _SLACK_MARKERS or ch in active:
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


class _Converter:
    """One slack_to_markdown call: holds the stashed pieces."""

    def __init__(self, users: Mapping[str, str], channels: Mapping[str, str]) -> None:
        self.users = users
        self.channels = channels
        self.pieces: list[str] = []

    def stash(self, rendered: str, mark: str = _INLINE_MARK) -> str:
        self.pieces.append(rendered)
        return f"{mark}{len(self.pieces) - 1}{mark}"

    # -- tokens --------------------------------------------------------------

    def token(self, match: re.Match[str]) -> str:
        if match["block"] is not None:
            return self.stash(self.code_block(unescape(match["block"])), _BLOCK_MARK)
        if match["code"] is not None:
            return self.stash(self.code_span(unescape(match["code"])))
        return self.angle(match["token"])

    @staticmethod
    def code_block(content: str) -> str:
        # Slack users usually write ```\ncode\n```; Markdown fences add those
        # line breaks themselves.
        content = content.removeprefix("\n").removesuffix("\n")
        longest = max((len(run) for run in _BACKTICKS.findall(content)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"{fence}\n{content}\n{fence}" if content else f"{fence}\n{fence}"

    @staticmethod
    def code_span(content: str) -> str:
        # Markdown strips one space from each end of a code span when both
        # are present; pad so the content stays exactly as typed.
        if content.startswith(" ") and content.endswith(" ") and content.strip(" "):
            content = f" {content} "
        return f"`{content}`"

    def angle(self, body: str) -> str:
        """Render a Slack ``<...>`` token (``body`` is still Slack-escaped)."""
        target, _, label = body.partition("|")
        label = unescape(label)
        if target.startswith("@") and len(target) > 1:
            user = target[1:]
            name = _tidy(self.users.get(user) or label) or user
            return self.stash("@" + _md_inline(name))
        if target.startswith("#") and len(target) > 1:
            channel = target[1:]
            name = _tidy(self.channels.get(channel) or label).lstrip("#") or channel
            return self.stash("#" + _md_inline(name))
        if target.startswith("!"):
            return self.special(target[1:], label)
        url = unescape(target)
        if _SAFE_SCHEME.match(url):
            return self.stash(self.link(url, _tidy(label)))
        # Anything else (javascript:, tel:, stray brackets) is shown as text:
        # it goes back into the Slack-escaped stream, which escapes it.
        if label:
            return _slack_plain(label)
        if _ANY_SCHEME.match(url):
            return target
        return f"&lt;{body}&gt;"

    def special(self, command: str, label: str) -> str:
        name, _, argument = command.partition("^")
        if name in ("here", "channel", "everyone"):
            return self.stash("@" + name)
        if name == "subteam":
            handle = _tidy(label).lstrip("@") or argument
            return self.stash("@" + _md_inline(handle))
        if name == "date":
            if label:
                return _slack_plain(label)
            return _format_timestamp(argument.partition("^")[0]) or _slack_plain(command)
        return _slack_plain(label or command)

    @staticmethod
    def link(url: str, label: str) -> str:
        encoded = quote(url, safe=_URL_SAFE)
        if not label or label == url:
            # Autolink contents are not entity-decoded, so only the percent
            # encoding (no spaces, brackets or controls) is needed.
            return f"<{encoded}>"
        destination = re.sub(r"&(?=#?[0-9A-Za-z]+;)", "&amp;", encoded)
        return f"[{_md_inline(label, in_link=True)}]({destination})"

    # -- text ----------------------------------------------------------------

    def plain(self, text: str) -> str:
        """Slack-escaped text with inline pieces -> Markdown."""
        parts = _INLINE_PIECE.split(text)
        for i, part in enumerate(parts):
            parts[i] = self.pieces[int(part)] if i % 2 else _md_inline(unescape(part))
        return "".join(parts)

    def inline(self, text: str, active: frozenset[str] = frozenset()) -> str:
        out: list[str] = []
        position = 0
        for start, end, marker in _emphasis_spans(text, active):
            md = _SLACK_MARKERS[marker]
            out.append(self.plain(text[position:start]))
            out.append(md + self.inline(text[start + 1 : end], active | {marker}) + md)
            position = end + 1
        out.append(self.plain(text[position:]))
        return "".join(out)

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
                prefix, rest = _split_line_start(part)
                out.append(prefix + self.inline(rest))
        return "\n".join(out)


def _slack_plain(text: str) -> str:
    """Plain text put back into the Slack-escaped stream."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _format_timestamp(value: str) -> str:
    try:
        moment = datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def slack_to_markdown(text: str, *, users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    """Convert a Slack message (as delivered, still escaped) to GFM Markdown.

    Mentions become ``@Name``/``#channel`` (the maps win over names embedded
    in the token, then the raw id), http(s)/mailto links become Markdown
    links, other schemes become plain text, Slack emphasis becomes Markdown
    emphasis, code is copied verbatim and quotes become ``>`` lines.  All
    remaining text is escaped with the same rules as :func:`markdown_escape`,
    so user text such as ``<script>`` or ``# title`` is shown, not rendered.

    Lines are kept as lines (Markdown soft breaks).  Fenced blocks get their
    own lines, and a blank line is added after a quote so the next line does
    not fold into it.  Code is the only place where ``<`` appears raw, which
    is safe because Markdown renders code as text.
    """
    converter = _Converter(users, channels)
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
