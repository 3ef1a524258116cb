"""Wikitext to plain paragraphs, driven by mwparserfromhell's tokenizer.

We read the token stream of mwparserfromhell's C tokenizer and render it
in one pass, without building its node tree: the tree was half of the
corpus stage's time, the tokenizer a fourteenth. The tokens are the real
parser's (templates, links, tags, tables, headings, lists, entities), so
no regex guesses at markup.

Three things that are dropped whole are cut out before tokenizing, found
the way MediaWiki itself finds them, because they were most of the
tokenizer's work: refs (by its preprocessor's rules for extension tags),
wikitables (by lines, as its table parser reads them) and the non-prose
sections (by heading lines). Comments and raw tags such as <nowiki> and
<pre> are stepped over, so nothing inside them is taken for markup.

What the renderer keeps, as MediaWiki shows it to a reader:
- text, the visible text of links, bold and italic, and HTML entities;
- the inline templates that carry text (pipelines/templates.py); any other
  template inside a sentence leaves a hole, and the sentence is dropped
  (pipelines/sentences.py counts it), never emitted with a word missing;
- paragraphs as MediaWiki makes them: single newlines join lines, blank
  lines, headings, lists and tables end a paragraph.

What it drops, counted by kind in `Rendered.dropped`: list items, definition
lists and indented lines (kept as sentences with `keep_lists`), tables,
galleries and other non-prose tags, refs, files, categories, interlanguage
links, comments, and the sections that hold only links and citations
(References, External links, See also, ...; never "Literature", which is
prose about literature as often as a reading list).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import re
from collections import Counter
from collections.abc import Iterator

from mwparserfromhell.parser import tokens as T

from albertprep.pipelines import templates
from albertprep.pipelines.sentences import HOLE

try:  # the C tokenizer; the pure-Python one gives the same tokens, slower
    from mwparserfromhell.parser._tokenizer import CTokenizer as _Tokenizer
except ImportError:  # pragma: no cover - wheels ship the C extension
    from mwparserfromhell.parser.tokenizer import Tokenizer as _Tokenizer

# Tags whose contents are not running text: dropped whole, counted by name.
_DROPPED_TAGS = frozenset(
    """ref references table gallery timeline imagemap graph mapframe maplink templatedata templatestyles
    inputbox categorytree includeonly noinclude section indicator pre syntaxhighlight source score
    hiero""".split()
)
# Tags that stand for a word of the sentence we cannot write as text: a hole.
_HOLE_TAGS = frozenset("math chem ce code".split())
_LIST_MARKUP = frozenset("*#;:")
# Sections that hold lists of links and citations, not prose.
DROPPED_SECTIONS = frozenset(
    s.strip() for s in """see also|references|external links|further reading|notes|bibliography|sources|
    citations|footnotes|notes and references|references and notes|works cited|selected bibliography|
    general references|cited sources|cited works|specific references|explanatory notes|reference notes|
    notes and sources|sources and further reading|primary sources|secondary sources|publications|
    discography|filmography|selected works|works|external sources|links|online sources|gallery|
    further information|other sources""".replace("\n", "").split("|")
)

# English canonical names; a dump's <siteinfo> adds its localised names.
DEFAULT_HIDDEN_LINK_NAMESPACES = frozenset({"file", "image", "media", "category"})
_INTERLANGUAGE_PREFIX = re.compile(r"^[a-z]{2,3}(-[a-z]+)*$")

_HEADING = "\x00"  # "\x00<level>\x00<title>" on a line of its own
_LIST_ITEM = "\x01"  # starts a line that is a list item
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_QUOTE_MARKUP = re.compile(r"'{2,}")
_EMPTY_PARENS = re.compile(r"[(\[]\s*[,;:]*\s*[)\]]")
_DANGLING_SEPARATOR = re.compile(r"(?<=\()\s*[,;:]\s*|\s*[,;:]\s*(?=\))")
# After whitespace is collapsed, an empty or dangling bracket always holds one
# of these; they are searched first because the patterns above, which may
# start at any space, are slow to scan a paragraph with (about 60 ns a char).
_EMPTY_OR_DANGLING_OPEN = re.compile(r"[(\[][ ,;:)\]]")
_DANGLING_CLOSE = re.compile(r"[,;:] ?\)")
_SPACE_BEFORE_PUNCT = re.compile(r" (?=[,.;:!?])")  # whitespace is collapsed first
# A template right after a sentence's end, or before a paragraph's or a
# sentence's capital first word, is not inside a sentence (a footnote, an
# icon, a box): it leaves no hole. Anywhere else it does.
_EDGE_HOLE = re.compile(
    rf"(?<=[.!?])([\"'\u201d\u2019)\]]*){HOLE}+"
    rf"|(^|[.!?][\"'\u201d\u2019)\]]*\s+)[{HOLE}\s]*{HOLE}\s*(?=[^\sa-z{HOLE}])"
)
# Markup the tokenizer left as text (an unclosed "<ref>", "{{" or "[["):
# made a hole, so its sentence is dropped rather than emitted with markup.
_LEFTOVER_MARKUP = re.compile(r"\{\{|\}\}|\[\[|\]\]|\{\||\|\}|</?[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?>|<ref\b")
_LETTER = re.compile(r"[^\W\d_]")


class WikitextError(ValueError):
    """The page's markup could not be parsed; the page is dropped alone."""


@dataclasses.dataclass(frozen=True)
class Block:
    """A paragraph of plain text, a heading when `heading_level` > 0, or a
    list item when `list_item` (only with keep_lists)."""

    text: str
    heading_level: int = 0
    list_item: bool = False


@dataclasses.dataclass
class Rendered:
    blocks: list[Block]
    dropped: Counter  # non-prose blocks dropped, by kind: list_item, table, gallery, ...
    holes: Counter  # unrendered templates inside paragraphs, by name


def _entity(tokens: list, i: int) -> tuple[str, int]:
    """The character of an HTML entity starting at tokens[i] (HTMLEntityStart)."""
    parts = ["&"]
    i += 1
    while not isinstance(tokens[i], T.HTMLEntityEnd):
        token = tokens[i]
        if isinstance(token, T.HTMLEntityNumeric):
            parts.append("#")
        elif isinstance(token, T.HTMLEntityHex):
            parts.append(token.char)
        elif isinstance(token, T.Text):
            parts.append(token.text)
        i += 1
    char = html.unescape("".join(parts) + ";")
    return (" " if char.isspace() else char), i + 1


class _Renderer:
    """One pass over the tokens; `render(i, until)` appends the text of
    tokens[i:] to `out` until a token of a type in `until` at this level."""

    def __init__(self, tokens: list, hidden: frozenset[str]):
        self.tokens = tokens
        self.hidden = hidden
        self.out: list[str] = []
        self.dropped: Counter = Counter()
        self.holes: Counter = Counter()

    def text_of(self, i: int, until: tuple) -> tuple[str, int]:
        saved, self.out = self.out, []
        i = self.render(i, until)
        text, self.out = "".join(self.out), saved
        return text, i

    def skip(self, i: int, open_type: type, close_type: type) -> int:
        """Index after the close token matching the open token at i."""
        depth = 0
        tokens = self.tokens
        while i < len(tokens):
            kind = type(tokens[i])
            if kind is open_type:
                depth += 1
            elif kind is close_type:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return i

    def skip_tag(self, i: int) -> int:
        """Index after the tag opening at i (TagOpenOpen), contents and all."""
        depth = 0
        tokens = self.tokens
        while i < len(tokens):
            kind = type(tokens[i])
            if kind is T.TagOpenOpen:
                depth += 1
            elif kind is T.TagCloseSelfclose or kind is T.TagOpenClose:
                depth -= 1
                if depth == 0:
                    if kind is T.TagOpenClose:
                        while i < len(tokens) and type(tokens[i]) is not T.TagCloseClose:
                            i += 1
                    return i + 1
            i += 1
        return i

    def render(self, i: int, until: tuple = ()) -> int:
        tokens = self.tokens
        out = self.out
        n = len(tokens)
        while i < n:
            token = tokens[i]
            kind = type(token)
            if kind is T.Text:
                out.append(token["text"])  # tokens are dicts: [] is faster than their __getattr__
                i += 1
            elif until and isinstance(token, until):
                return i
            elif kind is T.TemplateOpen:
                i = self.template(i)
            elif kind is T.WikilinkOpen:
                i = self.wikilink(i)
            elif kind is T.TagOpenOpen:
                i = self.tag(i)
            elif kind is T.ExternalLinkOpen:
                i = self.external_link(i)
            elif kind is T.HTMLEntityStart:
                char, i = _entity(tokens, i)
                out.append(char)
            elif kind is T.HeadingStart:
                title, i = self.text_of(i + 1, (T.HeadingEnd,))
                out.append(f"\n{_HEADING}{token.level}{_HEADING}{_tidy(title.replace(HOLE, ''))}\n")
                i += 1
            elif kind is T.CommentStart:
                i = self.skip(i, T.CommentStart, T.CommentEnd)
            elif kind is T.ArgumentOpen:  # {{{1}}}: a template's parameter, nothing on an article
                i = self.skip(i, T.ArgumentOpen, T.ArgumentClose)
            else:  # a stray separator or close at this level: not text
                i += 1
        return i

    def template(self, i: int) -> int:
        start = i
        name, i = self.text_of(i + 1, (T.TemplateParamSeparator, T.TemplateClose))
        if templates.is_silent(name):  # boxes and citations: their parameters are never shown
            return self.skip(start, T.TemplateOpen, T.TemplateClose)
        positional: list[str] = []
        named: dict[str, str] = {}
        while isinstance(self.tokens[i], T.TemplateParamSeparator) if i < len(self.tokens) else False:
            value, i = self.text_of(i + 1, (T.TemplateParamSeparator, T.TemplateParamEquals, T.TemplateClose))
            if i < len(self.tokens) and isinstance(self.tokens[i], T.TemplateParamEquals):
                named[value.strip()], i = self.text_of(i + 1, (T.TemplateParamSeparator, T.TemplateClose))
            else:
                positional.append(value)
        i += 1  # TemplateClose
        text = templates.render(name, positional, named)
        if text is None:
            self.holes[templates.normalize_name(name).lower()] += 1
            self.out.append(HOLE)
        else:
            self.out.append(text)
        return i

    def wikilink(self, i: int) -> int:
        start = i
        target, i = self.text_of(i + 1, (T.WikilinkSeparator, T.WikilinkClose))
        target = target.strip()
        has_text = isinstance(self.tokens[i], T.WikilinkSeparator) if i < len(self.tokens) else False
        visible = target
        if target.startswith(":"):  # [[:Category:X]] is a visible link
            visible = target[1:]
        elif ":" in target:
            prefix = target.split(":", 1)[0].strip().lower()
            if prefix in self.hidden or (not has_text and _INTERLANGUAGE_PREFIX.match(prefix)):
                if prefix in self.hidden and prefix not in ("category", "media"):  # files, localised too
                    self.dropped["file"] += 1
                return self.skip(start, T.WikilinkOpen, T.WikilinkClose)
        if has_text:
            text, i = self.text_of(i + 1, (T.WikilinkClose,))
            self.out.append(text)
        else:
            self.out.append(visible.split("#", 1)[0] or visible)
        return i + 1

    def external_link(self, i: int) -> int:
        bracketed = self.tokens[i].get("brackets")
        url, i = self.text_of(i + 1, (T.ExternalLinkSeparator, T.ExternalLinkClose))
        if i < len(self.tokens) and isinstance(self.tokens[i], T.ExternalLinkSeparator):
            title, i = self.text_of(i + 1, (T.ExternalLinkClose,))
            self.out.append(title)
        elif not bracketed:
            self.out.append(url)  # a bare URL is a word of the sentence
        # [http://x] alone shows as a footnote number: nothing
        return i + 1

    def tag(self, i: int) -> int:
        tokens = self.tokens
        markup = tokens[i].get("wiki_markup")
        j = i + 1
        name_parts = []
        while j < len(tokens) and type(tokens[j]) is T.Text:
            name_parts.append(tokens[j]["text"])
            j += 1
        name = "".join(name_parts).strip().lower()
        while j < len(tokens) and not isinstance(tokens[j], (T.TagCloseOpen, T.TagCloseSelfclose)):
            j += 1  # attributes
        if j >= len(tokens):
            return j
        if isinstance(tokens[j], T.TagCloseSelfclose):
            if markup in _LIST_MARKUP or name in ("li", "dt", "dd"):
                self.out.append(_LIST_ITEM + (markup or "*"))
            elif name == "br":
                self.out.append(" ")
            elif name == "hr":
                self.out.append("\n")
            return j + 1
        if name in _DROPPED_TAGS or name in _HOLE_TAGS:
            if name in _HOLE_TAGS:
                self.out.append(HOLE)
                self.holes[f"<{name}>"] += 1
            elif name not in ("ref", "references", "includeonly", "noinclude", "section", "indicator",
                              "templatestyles", "templatedata"):
                self.dropped["table" if name == "table" else name] += 1
                self.out.append("\n")  # a block: it ends the paragraph
            return self.skip_tag(i)
        if name in ("li", "dt", "dd", "ul", "ol", "dl") and markup is None:
            self.out.append("\n" + _LIST_ITEM + "*" if name in ("li", "dt", "dd") else "\n")
        j = self.render(j + 1, (T.TagOpenClose,))
        while j < len(tokens) and not isinstance(tokens[j], T.TagCloseClose):
            j += 1
        if name in ("p", "div", "blockquote", "center", "poem", "li", "ul", "ol", "dl"):
            self.out.append("\n")
        return j + 1


def _tidy(text: str) -> str:
    # each substitution only where its trigger occurs: this runs per paragraph
    if "__" in text:
        text = _MAGIC_WORD.sub("", text)
    if "''" in text:  # bold and italic markup (a run of quotes: adjacent runs join once tags are gone)
        text = _QUOTE_MARKUP.sub("", text)
    text = " ".join(text.split())
    if ("(" in text or "[" in text) and (_EMPTY_OR_DANGLING_OPEN.search(text) or _DANGLING_CLOSE.search(text)):
        text = _EMPTY_PARENS.sub("", text)
        text = _DANGLING_SEPARATOR.sub("", text)
        text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub("", text)


def _paragraph(lines: list[str], holes: Counter) -> str:
    text = _tidy(" ".join(lines))
    text, leftovers = _LEFTOVER_MARKUP.subn(HOLE, text)
    if leftovers:
        holes["(unparsed markup)"] += leftovers
    if HOLE not in text:
        return text
    text = _EDGE_HOLE.sub(lambda m: m.group(1) or m.group(2) or "", text)
    return text.rstrip(HOLE + " ") if text.rstrip(HOLE + " ")[-1:] in ".!?\"')" else text


# found after a newline (a literal prefix: scanning for "^" at every line is slower)
_HEADING_LINE = re.compile(r"\n(={1,6})[ \t]*([^=\n][^\n]*?)[ \t]*\1[ \t]*(?=\n|\Z)")


def _without_nonprose_sections(wikitext: str) -> str:
    """The page without the sections render() would drop (References,
    External links, ...), cut out before tokenizing: they are mostly
    citation templates, a large share of the tokenizer's work. MediaWiki
    headings are whole lines, so their lines find them; the heading line is
    kept so the section is still counted."""
    if "=" not in wikitext:
        return wikitext
    wikitext = "\n" + wikitext  # so that a heading on the first line follows a newline too
    pieces, position, skip_level = [], 1, 0
    for match in _HEADING_LINE.finditer(wikitext):
        level = len(match[1])
        if skip_level and level > skip_level:
            continue
        if skip_level:
            position = match.start() + 1  # the heading, not the newline before it
            skip_level = 0
        if match[2].strip().lower().strip("'") in DROPPED_SECTIONS:
            pieces.append(wikitext[position:match.end()] + "\n")
            position, skip_level = match.end(), level
    if skip_level:
        position = len(wikitext)
    pieces.append(wikitext[position:])
    return "".join(pieces)


# MediaWiki's preprocessor reads comments and extension tags first, left
# to right, and takes an extension tag's body as raw text up to its first
# closing tag. Refs are dropped whole and are a large share of a page's
# markup (citation templates: half of the tokenizer's time on enwiki), so
# they are cut out here, the way the preprocessor finds them, before the
# tokenizer sees them; comments and the other raw tags are only stepped over
# so that a "<ref>" inside them is left alone. An unclosed ref is left to
# the tokenizer (MediaWiki shows it as text; it becomes a hole).
_PREPROCESSOR_OPEN = re.compile(
    r"<!--|<(ref|references|nowiki|pre|math|chem|ce|code|source|syntaxhighlight|score|timeline|hiero|"
    r"gallery|graph|imagemap|templatedata|inputbox|categorytree|mapframe|maplink)(?=[\s/>])[^>]*?(/?)>",
    re.IGNORECASE,
)
_REF_OPEN = re.compile("<ref", re.IGNORECASE)
@functools.cache
def _closing_tag(name: str) -> re.Pattern:
    return re.compile(rf"</{name}\s*>", re.IGNORECASE)


def _preprocessor_spans(wikitext: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, name) of each comment ("!--") and closed extension tag,
    left to right, as MediaWiki's preprocessor finds them."""
    position = 0
    while match := _PREPROCESSOR_OPEN.search(wikitext, position):
        if match[0] == "<!--":
            end = wikitext.find("-->", match.end())
            end = len(wikitext) if end < 0 else end + 3  # unclosed: the rest of the page is a comment
            yield match.start(), end, "!--"
            position = end
            continue
        name = match[1].lower()
        if match[2]:  # self-closing
            end = match.end()
        else:
            close = _closing_tag(name).search(wikitext, match.end())
            if close is None:  # MediaWiki shows an unclosed tag as text
                position = match.end()
                continue
            end = close.end()
        yield match.start(), end, name
        position = end


def _without_refs(wikitext: str) -> str:
    """The page without its <ref>...</ref>, <ref/> and <references> tags."""
    if not _REF_OPEN.search(wikitext):
        return wikitext
    pieces, kept_from = [], 0
    for start, end, name in _preprocessor_spans(wikitext):
        if name in ("ref", "references"):
            pieces.append(wikitext[kept_from:start])
            kept_from = end
    pieces.append(wikitext[kept_from:])
    return "".join(pieces)


# MediaWiki finds wikitables by lines: "{|" opens one at the start of a line
# (after spaces or ":" indents), "|}" there closes it, and they nest. Tables
# are dropped whole and cost the tokenizer a third of its time on enwiki for
# a twentieth of the text, so a closed one is cut here and counted; one in a
# comment or a raw tag is not a table, and an unclosed one is left to the
# tokenizer (its rows are dropped and counted as table rows).
_TABLE_LINE = re.compile(r"^[ \t:]*(\{\||\|\})", re.MULTILINE)


def _without_tables(wikitext: str) -> tuple[str, int]:
    """The page without its closed wikitables, and how many were cut."""
    if "{|" not in wikitext:
        return wikitext, 0
    opaque = [(start, end) for start, end, _ in _preprocessor_spans(wikitext)]
    pieces, kept_from, depth, table_start, tables, span = [], 0, 0, 0, 0, 0
    for match in _TABLE_LINE.finditer(wikitext):
        where = match.start(1)
        while span < len(opaque) and opaque[span][1] <= where:
            span += 1
        if span < len(opaque) and opaque[span][0] <= where:
            continue  # inside a comment or a raw tag
        if match[1] == "{|":
            if depth == 0:
                table_start = match.start()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                pieces.append(wikitext[kept_from:table_start] + "\n")  # a block: it ends the paragraph
                kept_from = match.end()
                tables += 1
    pieces.append(wikitext[kept_from:])
    return "".join(pieces), tables


def render(
    wikitext: str,
    hidden_link_namespaces: frozenset[str] = DEFAULT_HIDDEN_LINK_NAMESPACES,
    keep_lists: bool = False,
) -> Rendered:
    """The page as paragraphs and headings, with what was dropped counted."""
    try:
        # skip_style_tags: bold and italic stay as text (quote runs, which
        # _tidy removes); parsing them is a tenth of the tokenizer's time
        text, tables = _without_tables(_without_nonprose_sections(_without_refs(wikitext)))
        tokens = _Tokenizer().tokenize(text, 0, True)
    except Exception as error:  # the tokenizer's failures are not one class
        raise WikitextError(f"{type(error).__name__}: {error}") from error
    renderer = _Renderer(tokens, hidden_link_namespaces)
    renderer.render(0)
    dropped = renderer.dropped
    if tables:
        dropped["table"] += tables

    blocks: list[Block] = []
    paragraph: list[str] = []
    skip_below_level = 0  # inside a dropped section of this level

    def flush() -> None:
        if paragraph:
            text = _paragraph(paragraph, renderer.holes)
            if _LETTER.search(text):
                blocks.append(Block(text))
            paragraph.clear()

    for line in "".join(renderer.out).split("\n"):
        if line.startswith(_HEADING):
            flush()
            _, level_text, title = line.split(_HEADING, 2)
            level = int(level_text)
            if skip_below_level and level > skip_below_level:
                continue
            skip_below_level = level if title.strip().lower() in DROPPED_SECTIONS else 0
            if skip_below_level:
                dropped["section"] += 1
            elif title:
                blocks.append(Block(title, level))
            continue
        if skip_below_level:
            continue
        stripped = line.strip()
        if not stripped.strip(HOLE + " "):
            flush()
        elif stripped.startswith(_LIST_ITEM):
            flush()
            markers = stripped[:2]  # the item marker and its markup character
            body = stripped.lstrip(_LIST_ITEM + "*#;:").strip()
            kind = "definition_list" if markers[1:2] in (";", ":") else "list_item"
            if keep_lists and _LETTER.search(body):
                text = _paragraph([body], renderer.holes)
                if _LETTER.search(text):
                    blocks.append(Block(text, list_item=True))
            else:
                dropped[kind] += 1
        elif stripped[0] in "|!" or stripped.startswith("{|"):  # table rows the tokenizer left as text
            flush()
            dropped["table_row"] += 1
        else:
            paragraph.append(stripped)
    flush()
    return Rendered(blocks, dropped, renderer.holes)


def wikitext_to_blocks(
    wikitext: str,
    hidden_link_namespaces: frozenset[str] = DEFAULT_HIDDEN_LINK_NAMESPACES,
    keep_lists: bool = False,
) -> list[Block]:
    """Paragraphs and headings of a page, markup removed."""
    return render(wikitext, hidden_link_namespaces, keep_lists).blocks
