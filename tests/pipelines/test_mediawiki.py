import bz2
import io
from collections import Counter

import pytest
from conftest import WIKI, make_multistream

from albertprep.pipelines import mediawiki, sources


def _classify(pages):
    return Counter("other" if p.namespace else "redirect" if p.redirect else "article" for p in pages)




def test_enwiki_sample_pages_by_kind():
    with bz2.open(WIKI / "enwiki-sample.xml.bz2") as f:
        siteinfo = mediawiki.SiteInfo()
        pages = list(mediawiki.iter_pages(f, siteinfo))
    assert len(pages) == 206
    assert _classify(pages) == {"article": 106, "redirect": 99, "other": 1}
    assert siteinfo.dbname == "enwiki"
    assert len({p.page_id for p in pages}) == 206


def test_utf16_dump_is_decoded_from_its_bom():
    with bz2.open(WIKI / "bgwiki-utf16-sample.xml.bz2") as f:
        siteinfo = mediawiki.SiteInfo()
        pages = list(mediawiki.iter_pages(f, siteinfo))
    assert _classify(pages) == {"article": 1, "other": 2}
    article = next(p for p in pages if p.namespace == 0)
    assert article.title == "Григориански календар"
    assert "категория" in siteinfo.hidden_link_namespaces  # localised Category:


def test_truncated_dump_yields_complete_pages_then_reports():
    pages = []
    with open(WIKI / "viwiki-truncated.xml", "rb") as f, pytest.raises(mediawiki.DumpTruncated, match="after 10"):
        for page in mediawiki.iter_pages(f):
            pages.append(page)
    assert _classify(pages) == {"article": 6, "redirect": 3, "other": 1}
    # localised (#đổi) and lower-case (#redirect) redirects
    assert mediawiki.is_redirect_text("#đổi [[Alexandre de Rhodes]]")
    assert mediawiki.is_redirect_text("#redirect [[Internet Society]]")
    assert not mediawiki.is_redirect_text("# A numbered list item")


def test_entity_declarations_are_refused():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b"<mediawiki><page><title>T</title><ns>0</ns><id>1</id><revision><text>&b;</text>"
            b"</revision></page></mediawiki>")
    with pytest.raises(mediawiki.UnsafeDump):
        list(mediawiki.iter_pages(io.BytesIO(bomb)))


def test_multistream_ranges_give_the_same_pages_as_a_plain_read(tmp_path):
    dump = make_multistream(tmp_path, pages_per_stream=10)
    tasks = sources.plan([str(dump)], sources.PlanOptions(split_bytes=100_000))
    assert len(tasks) > 5 and all(t.multistream for t in tasks)
    assert [t.start for t in tasks[1:]] == [t.end for t in tasks[:-1]]  # contiguous ranges
    with open(dump, "rb") as f:
        split_pages = [p for t in tasks for p in mediawiki.iter_multistream_pages(f, t.start, t.end)]
    with bz2.open(WIKI / "enwiki-sample.xml.bz2") as f:
        plain_pages = list(mediawiki.iter_pages(f))
    assert split_pages == plain_pages


def test_cut_multistream_reports_truncation_after_its_complete_pages(tmp_path):
    dump = make_multistream(tmp_path, pages_per_stream=10)
    offsets = mediawiki.read_multistream_offsets(open(str(dump)[: -len(".xml.bz2")] + "-index.txt.bz2", "rb"))
    cut = dump.read_bytes()[: offsets[3] + 500]  # three whole streams of pages, then part of one
    pages = []
    with pytest.raises(mediawiki.DumpTruncated, match="cut off"):
        for page in mediawiki.iter_multistream_pages(io.BytesIO(cut), offsets[0], len(cut)):
            pages.append(page)
    assert len(pages) == 30


def test_the_utf8_repair_gives_the_same_bytes_and_counts_however_the_stream_is_cut():
    """Chunks that need nothing pass through as they are
    (mediawiki._clean); wherever the cuts fall (inside a character, beside
    an invalid byte or a forbidden one), the bytes and the repairs are those
    of the stream repaired whole."""
    text = ("Caf\u00e9 na\u00efve \u201cquoted\u201d \u2014 \u65e5\u672c " * 40).encode()
    stream = text + b"\xff bad byte " + text + b"a NUL \x00 and U+FFFE \xef\xbf\xbe " + text
    whole = mediawiki.Repairs()
    expected = b"".join(mediawiki.repaired_utf8([stream], whole))
    assert (whole.invalid_bytes, whole.control_characters) == (1, 2) and whole.first_at == len(text)
    assert expected.count("\ufffd".encode()) == 3 and b"\x00" not in expected
    for size in (1, 2, 3, 7, 64, 1000, 4096):
        repairs = mediawiki.Repairs()
        pieces = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert b"".join(mediawiki.repaired_utf8(pieces, repairs)) == expected, size
        assert repairs == whole, size
    assert next(mediawiki.repaired_utf8([text], mediawiki.Repairs())) is text  # passed on, not re-encoded
    end = len("Caf\u00e9".encode()) - 1  # a cut inside the "\u00e9"
    repairs = mediawiki.Repairs()
    assert b"".join(mediawiki.repaired_utf8([text[:end]], repairs)) == b"Caf\xef\xbf\xbd"  # cut at the end
    assert (repairs.invalid_bytes, repairs.first_at) == (1, 3)
