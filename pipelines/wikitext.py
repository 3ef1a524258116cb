"""Wikitext to plain paragraphs, with mwparserfromhell.

We walk mwparserfromhell's node tree instead of calling `strip_code()`:
strip_code keeps the captions of images and the text of tables and refs
and turns headings into sentences. Here templates, refs, tables, files and
images, categories, interlanguage links, comments and math are dropped;
links keep their visible text; bold and italic keep their contents; and a
heading becomes a `Section`, never a sentence.
"""

from __future__ import annotations

import dataclasses
import re

import mwparserfromhell
from mwparserfromhell import nodes as mw

# Tags whose contents are not prose.
_DROPPED_TAGS = frozenset(
    """ref references table tr td th caption gallery math chem ce code
    syntaxhighlight source pre score timeline imagemap hiero graph mapframe
    maplink templatedata templatestyles inputbox categorytree includeonly
    noinclude section indicator""".split()
)
# Sections that hold lists of links and citations, not prose.
_DROPPED_SECTIONS = frozenset(
    """see also|references|external links|further reading|notes|bibliography|
    sources|citations|footnotes|notes and references|works cited|
    literature|selected bibliography""".replace("\n", "").split("|")
)
_DROPPED_SECTIONS = frozenset(s.strip() for s in _DROPPED_SECTIONS)

# English canonical names; a dump's <siteinfo> adds its localised names.
DEFAULT_HIDDEN_LINK_NAMESPACES = frozenset({"file", "image", "media", "category"})
_INTERLANGUAGE_PREFIX = re.compile(r"^[a-z]{2,3}(-[a-z]+)*$")

_HEADING_MARK = "\x00"
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_QUOTE_MARKUP = re.compile(r"'{2,}")
_EMPTY_PARENS = re.compile(r"[(\[]\s*[,;:]*\s*[)\]]")
_DANGLING_SEPARATOR = re.compile(r"(?<=\()\s*[,;:]\s*|\s*[,;:]\s*(?=\))")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_LEFTOVER_MARKUP = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|<ref|</?[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?>")
_LETTER = re.compile(r"[^\W\d_]")


class WikitextError(ValueError):
    """The page's markup could not be parsed; the page is dropped alone."""


@dataclasses.dataclass(frozen=True)
class Block:
    """A paragraph of plain text, or a heading when `heading_level` > 0."""

    text: str
    heading_level: int = 0


@dataclasses.dataclass
class _Renderer:
    hidden_link_namespaces: frozenset[str]
    out: list[str] = dataclasses.field(default_factory=list)

    def render(self, wikicode: mwparserfromhell.wikicode.Wikicode) -> None:
        for node in wikicode.nodes:
            self.node(node)

    def node(self, node: mw.Node) -> None:
        if isinstance(node, mw.Text):
            self.out.append(node.value)
        elif isinstance(node, mw.Wikilink):
            self.wikilink(node)
        elif isinstance(node, mw.ExternalLink):
            if node.title is not None:
                self.render(node.title)
        elif isinstance(node, mw.Tag):
            self.tag(node)
        elif isinstance(node, mw.Heading):
            title = _plain(node.title, self.hidden_link_namespaces)
            self.out.append(f"\n{_HEADING_MARK}{node.level}{_HEADING_MARK}{title}\n")
        elif isinstance(node, mw.HTMLEntity):
            char = node.normalize()
            self.out.append(" " if char.isspace() else char)
        # Templates, arguments ({{{1}}}) and comments render as nothing.

    def wikilink(self, node: mw.Wikilink) -> None:
        target = str(node.title).strip()
        if target.startswith(":"):  # [[:Category:X]] is a visible link
            target = target[1:]
        elif ":" in target:
            prefix = target.split(":", 1)[0].strip().lower()
            if prefix in self.hidden_link_namespaces:
                return
            if node.text is None and _INTERLANGUAGE_PREFIX.match(prefix):
                return
        if node.text is not None:
            self.render(node.text)
        else:
            self.out.append(target.split("#", 1)[0] or target)

    def tag(self, node: mw.Tag) -> None:
        name = str(node.tag).strip().lower()
        if name in _DROPPED_TAGS:
            return
        if name in ("br", "hr"):
            self.out.append(" " if name == "br" else "\n")
            return
        if node.contents is not None and not node.self_closing:
            self.render(node.contents)


def _plain(wikicode: mwparserfromhell.wikicode.Wikicode, hidden: frozenset[str]) -> str:
    renderer = _Renderer(hidden)
    renderer.render(wikicode)
    return _tidy("".join(renderer.out))


def _tidy(text: str) -> str:
    text = _MAGIC_WORD.sub("", text)
    text = _QUOTE_MARKUP.sub("", text)
    text = " ".join(text.split())
    text = _EMPTY_PARENS.sub("", text)
    text = _DANGLING_SEPARATOR.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return " ".join(text.split())


def wikitext_to_blocks(
    wikitext: str,
    hidden_link_namespaces: frozenset[str] = DEFAULT_HIDDEN_LINK_NAMESPACES,
) -> list[Block]:
    """Paragraphs and headings of a page, markup removed.

    Paragraphs that still hold markup after cleaning (unbalanced brackets,
    stray tags) are dropped rather than guessed at, as are the reference
    and link-list sections named in `_DROPPED_SECTIONS`.
    """
    try:
        parsed = mwparserfromhell.parse(wikitext)
        renderer = _Renderer(hidden_link_namespaces)
        renderer.render(parsed)
    except Exception as error:  # the parser's failures are not one class
        raise WikitextError(f"{type(error).__name__}: {error}") from error

    blocks: list[Block] = []
    skip_below_level = 0  # inside a dropped section of this level
    for line in "".join(renderer.out).split("\n"):
        if line.startswith(_HEADING_MARK):
            _, level, title = line.split(_HEADING_MARK, 2)
            level = int(level)
            if skip_below_level and level > skip_below_level:
                continue
            skip_below_level = level if title.strip().lower() in _DROPPED_SECTIONS else 0
            if not skip_below_level and title:
                blocks.append(Block(title, level))
            continue
        if skip_below_level:
            continue
        stripped = line.strip()
        if not stripped or stripped[0] in "|!{":  # table rows the parser left as text
            continue
        text = _tidy(stripped)
        if _LETTER.search(text) and not _LEFTOVER_MARKUP.search(text):
            blocks.append(Block(text))
    return blocks
