"""A shields.io "flat" badge as SVG text (widths from a table of Verdana 11px advances, the font
shields.io measures with: no network, no font files), and the markdown that embeds it."""

from __future__ import annotations

from html import escape

GREEN, YELLOW, GREY = "#4c1", "#dfb317", "#9f9f9f"
LABEL_COLOUR = "#555"
# Verdana 11px advance widths in px; anything else counts as a wide letter.
_NARROW = {".": 3.9, ",": 3.9, " ": 3.9, ":": 4.5, "-": 4.9, "i": 3.1, "l": 3.1, "j": 3.9,
           "f": 4.3, "t": 4.4, "r": 4.9, "I": 4.6}  # fmt: skip
_MEDIUM = dict.fromkeys("abcdeghknopqsuvxyz0123456789", 6.9)
_WIDE = {"m": 10.7, "w": 9.0, "M": 9.9, "W": 11.2, "\N{EN DASH}": 7.0}
_WIDTHS = {**_MEDIUM, **_NARROW, **_WIDE}
PAD = 5  # px either side of each text, as shields.io draws it


def text_width(text: str) -> float:
    return sum(_WIDTHS.get(ch, 7.5) for ch in text)


def badge_svg(label: str, message: str, colour: str = GREEN) -> str:
    """The two-part flat badge: grey `label`, coloured `message`; every text escaped."""
    lw = round(text_width(label)) + 2 * PAD
    mw = round(text_width(message)) + 2 * PAD
    width = lw + mw
    title = escape(f"{label}: {message}")
    lab, msg, fill = escape(label), escape(message), escape(colour)

    def texts(x: float, length: int, text: str) -> str:
        # shields.io draws at 10x and scales by 0.1 for sub-pixel placement.
        at, span = round(x * 10), length * 10
        return (
            f'<text aria-hidden="true" x="{at}" y="150" fill="#010101" fill-opacity=".3" '
            f'transform="scale(.1)" textLength="{span}">{text}</text>'
            f'<text x="{at}" y="140" transform="scale(.1)" fill="#fff" '
            f'textLength="{span}">{text}</text>'
        )

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{LABEL_COLOUR}"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{fill}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="110">'
        f"{texts(lw / 2, lw - 2 * PAD, lab)}{texts(lw + mw / 2, mw - 2 * PAD, msg)}</g></svg>\n"
    )


def _md_text(text: str) -> str:
    return "".join("\\" + ch if ch in "\\[]()*_`<>!" else ch for ch in text)


def badge_markdown(image: str, link: str, *, alt: str) -> str:
    """`![alt](image)` linked to `link`; spaces and parentheses percent-encoded."""

    def url(text: str) -> str:
        return text.replace(" ", "%20").replace("(", "%28").replace(")", "%29")

    return f"[![{_md_text(alt)}]({url(image)})]({url(link)})"
