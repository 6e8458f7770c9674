"""What a person reading a Markdown draft sees: the draft parsed by a CommonMark/GFM parser
(markdown-it-py, GFM-like: tables, strikethrough, bare-URL links), never by regular
expressions over its source."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

PARSER = MarkdownIt("gfm-like")


def squash(text: str) -> str:
    """Whitespace runs as one space: rendered Markdown does not show line breaks inside a
    paragraph, nor indentation."""
    return " ".join(text.replace("\x00", "\ufffd").replace("\x01", "\ufffd").split())


def tokens(md: str) -> list[Token]:
    return PARSER.parse(md)


def walk(items: Iterable[Token]) -> Iterator[Token]:
    for token in items:
        yield token
        if token.children:
            yield from walk(token.children)


def inline_text(children: Iterable[Token]) -> str:
    """The text of inline tokens as shown: code as its content, breaks as spaces."""
    out: list[str] = []
    for token in children:
        if token.type in ("text", "code_inline", "html_inline"):
            out.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif token.type == "image":
            out.append(inline_text(token.children or []))
    return "".join(out)


def visible(md: str) -> str:
    """All the text a reader sees, block after block."""
    out: list[str] = []
    for token in tokens(md):
        if token.type == "inline":
            out.append(inline_text(token.children or []))
        elif token.type in ("fence", "code_block", "html_block"):
            out.append(token.content)
    return "\n".join(out)


@dataclass
class Link:
    href: str
    text: str


@dataclass
class Shape:
    """The structure a reader sees, for checking that text never turned into markup."""

    headings: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    images: int = 0
    html: list[str] = field(default_factory=list)
    emphasis: int = 0
    code: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)


def shape(md: str) -> Shape:
    found = Shape()
    stream = tokens(md)
    for i, token in enumerate(stream):
        if token.type.endswith("_open") or token.type in ("fence", "code_block", "hr"):
            found.blocks.append(token.type)
        if token.type == "heading_open":
            found.headings.append(inline_text(stream[i + 1].children or []))
        if token.type == "html_block":
            found.html.append(token.content)
        if token.type in ("fence", "code_block"):
            found.code.append(token.content)
        if token.type != "inline":
            continue
        children = token.children or []
        for j, child in enumerate(children):
            if child.type == "link_open":
                end = next(k for k in range(j, len(children)) if children[k].type == "link_close")
                text = inline_text(children[j + 1 : end])
                found.links.append(Link(str(child.attrs.get("href", "")), text))
            elif child.type == "image":
                found.images += 1
            elif child.type == "html_inline":
                found.html.append(child.content)
            elif child.type in ("em_open", "strong_open", "s_open"):
                found.emphasis += 1
            elif child.type == "code_inline":
                found.code.append(child.content)
    return found


def shows_itself(link: Link) -> bool:
    """A bare URL or e-mail address shown as a link to itself, as Slack shows it too."""
    return link.href in {
        PARSER.normalizeLink(prefix + link.text) for prefix in ("", "http://", "mailto:")
    }


def plain_paragraphs(md: str) -> bool:
    """Only paragraphs of text: no heading, list, quote, code, table, rule or HTML."""
    for token in tokens(md):
        if token.type not in ("paragraph_open", "paragraph_close", "inline"):
            return False
    return True
