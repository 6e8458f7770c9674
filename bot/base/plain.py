"""Plain text every layer may need: a person's input cut to one line of bounded length."""


def one_line(text: str, limit: int) -> str:
    """Collapse all whitespace to single spaces and cut to ``limit`` characters.

    A cut text ends in ``…`` and the result is never longer than ``limit``.
    Apply before escaping (``bot.views.text``) so the cut cannot split an
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
