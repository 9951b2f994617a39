"""OpenGraph data of an HTML page, as Synapse's ``synapse/media/preview_html.py`` computes
it (with BeautifulSoup's "html.parser" tree), here over a small tree built with the
standard library's ``html.parser``: ``og:``, ``article:`` and ``profile:`` meta tags,
Twitter cards for what they lack; then, for what is still missing, the first
title/h1/h2/h3, a microdata image, the biggest ``<img>`` (else the first, else the
favicon), the meta description or a summary of the page's text.

Pure functions: no I/O. Bounded: at most MAX_NODES elements are kept and the tree is at
most MAX_DEPTH deep (a page beyond that is cut off there, not refused).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

MAX_NODES = 100_000
MAX_DEPTH = 512
# Synapse's: certain elements are not meant for display.
ARIA_ROLES_TO_IGNORE = {"directory", "menu", "menubar", "toolbar"}
TAGS_TO_REMOVE = {
    "head", "header", "nav", "aside", "footer", "script", "noscript", "style", "svg",
    "iframe", "video", "canvas", "img", "picture",
}  # fmt: skip
VOID_ELEMENTS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
}  # fmt: skip
# Text in these is not page text (BeautifulSoup makes it Script/Stylesheet strings).
RAW_TEXT = {"script", "style", "template"}
MAX_META_TAGS = 50

_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.IGNORECASE)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)
    parent: Element | None = None

    def get(self, name: str) -> str | None:
        return self.attrs.get(name)

    @property
    def string(self) -> str | None:
        """BeautifulSoup's ``.string``: the text of an element whose only child is text
        (or an element with such a ``.string``)."""
        if len(self.children) != 1:
            return None
        child = self.children[0]
        return child if isinstance(child, str) else child.string


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("[document]", {})
        self._open: list[Element] = [self.root]
        self._count = 0
        self.raw_text: set[int] = set()  # ids of text nodes inside script/style

    @property
    def _current(self) -> Element:
        return self._open[-1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._count >= MAX_NODES:
            return
        self._count += 1
        values: dict[str, str] = {}
        for name, value in attrs:
            values.setdefault(name, value or "")
        element = Element(tag, values, parent=self._current)
        self._current.children.append(element)
        if tag not in VOID_ELEMENTS and len(self._open) < MAX_DEPTH:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_ELEMENTS and self._open[-1].tag == tag and len(self._open) > 1:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        # Close up to the nearest open element of that name; a stray end tag is ignored.
        for i in range(len(self._open) - 1, 0, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        if self._count >= MAX_NODES:
            return
        current = self._current
        if current.children and isinstance(current.children[-1], str):
            current.children[-1] += data  # adjacent text is one string, as in BeautifulSoup
        else:
            self._count += 1
            current.children.append(data)
        if current.tag in RAW_TEXT:
            self.raw_text.add(id(current))


@dataclass
class Document:
    root: Element
    raw_text_parents: set[int]

    def elements(self) -> Iterator[Element]:
        """Every element in document order."""
        stack: list[Element] = [self.root]
        while stack:
            element = stack.pop()
            yield element
            stack.extend(child for child in reversed(element.children) if isinstance(child, Element))

    def find_all(self, predicate: Callable[[Element], bool]) -> Iterator[Element]:
        return (e for e in self.elements() if predicate(e))

    def find(self, predicate: Callable[[Element], bool]) -> Element | None:
        return next(self.find_all(predicate), None)


def charset_of(body: bytes, content_type: str | None) -> str:
    """The page's encoding: the Content-Type's charset, else a <meta charset> near the
    start, else UTF-8 (a name Python does not know counts as not given)."""
    candidates: list[str] = []
    if content_type:
        m = re.search(r'charset\s*=\s*"?([^";\s]+)', content_type, re.IGNORECASE)
        if m:
            candidates.append(m.group(1))
    meta = _CHARSET_RE.search(body[:4096])
    if meta:
        candidates.append(meta.group(1).decode("ascii", "replace"))
    for name in candidates:
        try:
            return codecs.lookup(name).name
        except LookupError:
            continue
    return "utf-8"


def decode_body(body: bytes, content_type: str | None = None) -> Document | None:
    """The page as a tree; None for an empty one."""
    if not body:
        return None
    text = body.decode(charset_of(body, content_type), "replace")
    builder = _TreeBuilder()
    try:
        builder.feed(text)
        builder.close()
    except Exception:
        return None
    if not builder.root.children:
        return None
    return Document(builder.root, builder.raw_text)


def _non_blank(value: str | None) -> bool:
    # BeautifulSoup's NON_BLANK = re.compile(".+") searched in the value.
    return value is not None and re.search(".+", value) is not None


def _float(value: str | None) -> float:
    try:
        return float(value or "")
    except ValueError:
        return 0.0


def _meta_tags(doc: Document, prop: str, prefix: str, mapper: Callable[[str], str | None] | None = None) -> dict[str, str | None]:
    results: dict[str, str | None] = {}
    pattern = re.compile(rf"^{prefix}:")
    for tag in doc.find_all(
        lambda e: e.tag == "meta" and pattern.search(e.get(prop) or "") is not None and _non_blank(e.get("content"))
    ):
        if len(results) >= MAX_META_TAGS:
            return {}  # "someone is taking the piss", as Synapse says
        key = tag.get(prop) or ""
        if mapper:
            mapped = mapper(key)
            if mapped is None:
                continue
            key = mapped
        results[key] = tag.get("content")
    return results


def _twitter_to_open_graph(key: str) -> str | None:
    if key in ("twitter:card", "twitter:creator"):
        return None
    if key == "twitter:site":
        return "og:site_name"
    return "og" + key[7:]


def _has_class(value: str | None, name: str) -> bool:
    """A multi-valued attribute (rel) matches when the whole value or one word does."""
    return value is not None and (value == name or name in value.split())


def parse_html_to_open_graph(doc: Document) -> dict[str, str | None]:
    og = _meta_tags(doc, "property", "og") | _meta_tags(doc, "property", "article") | _meta_tags(doc, "property", "profile")
    for key, value in _meta_tags(doc, "name", "twitter", _twitter_to_open_graph).items():
        og.setdefault(key, value)

    if "og:title" not in og:
        title = doc.find(lambda e: e.tag in ("title", "h1", "h2", "h3") and e.string is not None)
        og["og:title"] = title.string.strip() if title is not None and title.string else None

    if "og:image" not in og:
        itemprop = re.compile("image", re.IGNORECASE)
        meta_image = doc.find(
            lambda e: e.tag == "meta" and itemprop.search(e.get("itemprop") or "") is not None and _non_blank(e.get("content"))
        )
        if meta_image is not None:
            og["og:image"] = meta_image.get("content")
        else:
            sized = [
                e
                for e in doc.find_all(
                    lambda e: e.tag == "img" and _non_blank(e.get("src")) and _non_blank(e.get("width")) and _non_blank(e.get("height"))
                )
                if _float(e.get("width")) > 10 and _float(e.get("height")) > 10
            ]
            images = sorted(sized, key=lambda e: -1 * _float(e.get("width")) * _float(e.get("height")))
            if not images:
                first = doc.find(lambda e: e.tag == "img" and _non_blank(e.get("src")))
                images = [first] if first is not None else []
            if images:
                og["og:image"] = images[0].get("src")
            else:
                favicon = doc.find(lambda e: e.tag == "link" and _non_blank(e.get("href")) and _has_class(e.get("rel"), "icon"))
                if favicon is not None:
                    og["og:image"] = favicon.get("href")

    if "og:description" not in og:
        name = re.compile("description", re.IGNORECASE)
        meta_description = doc.find(
            lambda e: e.tag == "meta" and name.search(e.get("name") or "") is not None and _non_blank(e.get("content"))
        )
        if meta_description is not None:
            og["og:description"] = meta_description.get("content")
        else:
            og["og:description"] = parse_html_description(doc)
    elif og["og:description"]:
        og["og:description"] = summarize_paragraphs([og["og:description"]])
    return og


def parse_html_description(doc: Document) -> str | None:
    """The page's text outside headers, navigation, scripts and the like, summarised."""
    nodes = (re.sub(r"\s+", "\n", text).strip() for text in _iterate_over_text(doc))
    return summarize_paragraphs(nodes)


def _iterate_over_text(doc: Document, stack_limit: int = 1024) -> Iterator[str]:
    """Text nodes depth first, skipping the subtrees of TAGS_TO_REMOVE, of ignored ARIA
    roles, and the raw text of scripts and styles (Synapse's ``_iterate_over_text``)."""
    elements: list[tuple[Element | str, Element | None]] = [(doc.root, None)]
    while elements:
        el, parent = elements.pop()
        if isinstance(el, str):
            if parent is None or id(parent) not in doc.raw_text_parents:
                yield el
            continue
        if el.tag in TAGS_TO_REMOVE or el.get("role") in ARIA_ROLES_TO_IGNORE:
            continue
        for child in reversed(el.children):
            if len(elements) > stack_limit:
                break
            elements.append((child, el))


def summarize_paragraphs(text_nodes: Iterator[str] | list[str], min_size: int = 200, max_size: int = 500) -> str | None:
    """Synapse's: whole paragraphs up to ``min_size`` characters, cut at a word boundary
    past ``max_size`` (with an ellipsis)."""
    description = ""
    for text_node in text_nodes:
        if len(description) < min_size:
            description += re.sub(r"[\t \r\n]+", " ", text_node) + "\n\n"
        else:
            break
    description = description.strip()
    description = re.sub(r"[\t ]+", " ", description)
    description = re.sub(r"[\t \r\n]*[\r\n]+", "\n\n", description)
    if len(description) > max_size:
        new_desc = ""
        for match in re.finditer(r"\s*\S+", description):
            word = match.group()
            if len(word) + len(new_desc) < max_size:
                new_desc += word
            else:
                if len(new_desc) < min_size:
                    new_desc += word
                break
        if len(new_desc) > max_size:
            new_desc = new_desc[:max_size]
        description = new_desc.strip() + "…"
    return description or None


def open_graph_of(body: bytes, content_type: str | None) -> dict[str, str | None]:
    """The OpenGraph data of an HTML body ({} when it has nothing to parse)."""
    doc = decode_body(body, content_type)
    return parse_html_to_open_graph(doc) if doc is not None else {}
