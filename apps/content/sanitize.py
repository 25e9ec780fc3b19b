"""Rich text of articles, cleaned on save with an allow-list (nh3, the Ammonia sanitiser).

What survives: paragraphs, headings h2–h4 (the page's h1 is the title), lists, emphasis, quotes,
tables, line breaks, links and images. Links keep `href` (http, https, mailto or a path of this
site) and get `rel="noopener noreferrer nofollow"`; images keep `src` only when it points at an
image uploaded to this site (`/…/images/<id>.<ext>`, re-encoded on upload), plus `alt`, `width`
and `height`. Everything else goes: scripts and styles with their content, every `on*` handler,
`style`, `class`, `id`, `srcset`, forms, frames, objects, SVG and MathML, comments, and
`javascript:`/`data:` URLs. An external image (a tracking pixel) is removed whole.

The output is what is stored, so pages print it as is (`|safe`) and the API returns it as is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html.parser import HTMLParser

import nh3
from django.urls import reverse

ALLOWED_TAGS = frozenset(
    {
        "p",
        "br",
        "h2",
        "h3",
        "h4",
        "strong",
        "em",
        "b",
        "i",
        "u",
        "s",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "blockquote",
        "a",
        "img",
        "hr",
        "table",
        "caption",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
    }
)
#: Removed together with everything inside them (not just the tags).
REMOVED_WITH_CONTENT = frozenset({"script", "style", "template", "noscript", "iframe", "object"})
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "th": {"scope", "colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
    "ol": {"start"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

#: The page's h1 is the title: headings in the text start at h2 and stop at h4.
_HEADING_MAP = {"1": "2", "5": "4", "6": "4"}
_HEADING_TAG = re.compile(r"<(/?)h([156])\b", re.IGNORECASE)
_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
_LOCAL_PATH = re.compile(r"^/[A-Za-z0-9/_.\-]*$")
_DIMENSION = re.compile(r"^[0-9]{1,4}$")


@lru_cache(maxsize=1)
def image_path_prefix() -> str:
    """The path under which uploaded article images are served, e.g. `/info/images/`."""
    sample = reverse(
        "content:image", kwargs={"public_id": "00000000-0000-0000-0000-000000000000", "ext": "png"}
    )
    return sample.rsplit("/", 1)[0] + "/"


def _is_local_image(src: str) -> bool:
    src = src.strip()
    return bool(_LOCAL_PATH.match(src)) and src.startswith(image_path_prefix()) and ".." not in src


def _attribute_filter(tag: str, name: str, value: str) -> str | None:
    if tag == "img":
        if name == "src":
            return value.strip() if _is_local_image(value) else None
        if name in {"width", "height"}:
            return value if _DIMENSION.match(value.strip()) else None
    if tag == "a" and name == "href":
        href = value.strip()
        # Protocol-relative URLs (//host/x) would leave the scheme check behind.
        if href.startswith("//") or href.startswith("\\"):
            return None
        return href
    if name in {"colspan", "rowspan", "start"}:
        return value if value.strip().isdigit() else None
    if name == "scope":
        return value if value in {"row", "col", "rowgroup", "colgroup"} else None
    return value


def sanitize_html(html: str) -> str:
    """The allow-listed form of `html` (see the module docstring). Idempotent."""
    demoted = _HEADING_TAG.sub(lambda m: f"<{m[1]}h{_HEADING_MAP[m[2]]}", html or "")
    cleaned = nh3.clean(
        demoted,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_attribute_filter,
        strip_comments=True,
        link_rel=LINK_REL,
        url_schemes=set(URL_SCHEMES),
    )
    # An image whose source was not ours lost its `src`: drop the empty element too.
    return _IMG_WITHOUT_SRC.sub("", cleaned).strip()


class _Inspector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})

    def handle_data(self, data):
        self.text.append(data)


def images_without_alt(html: str) -> int:
    """How many images of (sanitised) `html` have no text alternative."""
    inspector = _Inspector()
    inspector.feed(html)
    return sum(1 for img in inspector.images if not img.get("alt", "").strip())


def image_sources(html: str) -> list[str]:
    inspector = _Inspector()
    inspector.feed(html)
    return [img.get("src", "") for img in inspector.images]


def plain_text(html: str) -> str:
    """The visible text of `html` (for name checks and summaries)."""
    inspector = _Inspector()
    inspector.feed(html)
    return "".join(inspector.text)
