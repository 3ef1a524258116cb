"""Corpora the benchmarks build from the shared samples: the enwiki sample's
articles, and each page renamed for a copy (a new title and page id), so a
dump repeated many times still holds distinct pages."""

from __future__ import annotations

import bz2
import pathlib
import re

_PAGE = re.compile(rb"  <page>.*?</page>\n", re.DOTALL)
_TITLE = re.compile(rb"<title>(.*?)</title>")
_ID = re.compile(rb"<id>(\d+)</id>")
ID_STRIDE = 10_000_000  # copy k of page i has id i + k * ID_STRIDE (the sample's ids are below it)


def sample_articles(corpora: pathlib.Path) -> tuple[bytes, list[bytes], bytes]:
    """(header, article pages, footer) of the shared enwiki sample's XML:
    namespace 0, no redirects; each page one `  <page>...</page>\\n`."""
    xml = bz2.decompress((corpora / "wiki" / "enwiki-sample.xml.bz2").read_bytes())
    head_end = xml.index(b"  <page>")
    pages = [p for p in _PAGE.findall(xml) if b"<ns>0</ns>" in p and b"<redirect" not in p]
    return xml[:head_end], pages, b"</mediawiki>\n"


def renamed(page: bytes, copy: int) -> bytes:
    """The page as copy `copy`: its title with ` {copy}` added and its page
    id moved up by copy * ID_STRIDE (the first <id> is the page's)."""
    title, page_id = _TITLE.search(page), _ID.search(page)
    if int(page_id[1]) >= ID_STRIDE:
        raise ValueError(f"page id {page_id[1].decode()} is over {ID_STRIDE}: copies would collide")
    return (page[: title.start()] + b"<title>%s %d</title>" % (title[1], copy)
            + page[title.end(): page_id.start()]
            + b"<id>%d</id>" % (int(page_id[1]) + ID_STRIDE * copy) + page[page_id.end():])
