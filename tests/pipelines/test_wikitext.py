import re
from collections import Counter

from albertprep.pipelines.sentences import HOLE, SentenceLimits, screen, split_sentences
from albertprep.pipelines.wikitext import Block, render, wikitext_to_blocks

PAGE = """{{Infobox person|name=Ada|birth_date={{birth date|1815|12|10}}}}
'''Ada Lovelace''' (born '''Augusta Ada Byron'''; {{IPAc-en|ˈ|æ|d|ə}}) was an [[England|English]] \
[[mathematician]].<ref name="a">{{cite book|title=X}}</ref> She wrote notes<ref name="b"/> on the \
[[Analytical Engine]].<!-- hidden remark -->
[[File:Ada.jpg|thumb|A portrait of [[Ada Lovelace|Ada]]]]
__NOTOC__
== Early life ==
Her father was [[Lord Byron]]&nbsp;&amp; her mother was [[Anne Isabella Milbanke|Annabella]].
{| class="wikitable"
|-
! Year !! Event
|-
| 1815 || born
|}
* She studied [[mathematics]] with [http://example.org Mary Somerville].
=== Studies ===
<math>x^2</math> was in her notes.
== References ==
{{reflist}}
* A cited book.
== Legacy ==
Ada is a programming language.<ref>Cite.</ref>
[[Category:1815 births]]
[[de:Ada Lovelace]]
[[Kategorie:Mathematiker]]
"""


def test_markup_is_removed_and_headings_are_structure():
    blocks = wikitext_to_blocks(PAGE, frozenset({"file", "image", "category", "media", "kategorie"}))
    assert blocks == [
        Block("Ada Lovelace (born Augusta Ada Byron) was an English mathematician. "
              "She wrote notes on the Analytical Engine."),
        Block("Early life", 2),
        Block("Her father was Lord Byron & her mother was Annabella."),
        Block("Studies", 3),
        Block(HOLE + " was in her notes."),  # the formula is a word we cannot write: screen() drops it
        Block("Legacy", 2),
        Block("Ada is a programming language."),
    ]


def test_reference_sections_are_dropped_with_their_subsections():
    text = "Prose here.\n== See also ==\n* [[Other]]\n=== More ===\nStill skipped.\n== Life ==\nKept."
    assert [b.text for b in wikitext_to_blocks(text)] == ["Prose here.", "Life", "Kept."]


def test_unbalanced_markup_drops_the_sentence_not_the_paragraph():
    text = "A good sentence.\nA broken {{template that never closes.\nAnother [[good]] one."
    (block,) = wikitext_to_blocks(text)  # single newlines join: one paragraph
    dropped = Counter()
    kept = [s for sentence in split_sentences(block.text) for s in screen(sentence, SentenceLimits(), dropped)]
    assert kept == ["A good sentence.", "Another good one."]
    assert dropped == {"template_hole": 1}


def test_visible_links_to_other_namespaces_keep_their_text():
    text = "See [[:Category:Poets|the poets]] and [[Wikipedia:Manual of Style]] and [[wikt:word|word]]."
    assert [b.text for b in wikitext_to_blocks(text)] == [
        "See the poets and Wikipedia:Manual of Style and word."
    ]


def test_single_newlines_join_and_blank_lines_and_lists_end_a_paragraph():
    text = "It is\nestimated that 96.7% of households.\n\nA new paragraph.\n* a list item\nAfter the list."
    rendered = render(text)
    assert [b.text for b in rendered.blocks] == [
        "It is estimated that 96.7% of households.", "A new paragraph.", "After the list."
    ]
    assert rendered.dropped == {"list_item": 1}


def test_lists_tables_galleries_and_definitions_are_counted_and_list_items_kept_on_request():
    text = ("Prose.\n* First item here.\n# Numbered item.\n; Term\n: Definition text.\n"
            "{| class=wikitable\n| cell text\n|}\n<gallery>\nA.jpg|Caption\n</gallery>\nMore prose.")
    rendered = render(text)
    assert [b.text for b in rendered.blocks] == ["Prose.", "More prose."]
    assert rendered.dropped == {"list_item": 2, "definition_list": 2, "table": 1, "gallery": 1}
    kept = render(text, keep_lists=True).blocks
    assert [b.text for b in kept if b.list_item] == ["First item here.", "Numbered item.", "Term", "Definition text."]


def test_only_non_prose_sections_are_dropped_never_literature():
    text = ("Intro.\n== Literature ==\nHomer wrote epics.\n== Further reading ==\n* A book.\n"
            "== Notes ==\nA note.\n== Legacy ==\nKept.")
    assert [b.text for b in wikitext_to_blocks(text)] == [
        "Intro.", "Literature", "Homer wrote epics.", "Legacy", "Kept."
    ]


def test_on_the_shared_sample_no_sentence_is_a_list_item_and_lists_are_counted(corpus_extract):
    _, summary, documents = corpus_extract
    assert summary["blocks_dropped"]["list_item"] > 1000
    assert summary["blocks_dropped"]["table"] > 10
    united_states_style = [s for d in documents.values() if d.source == "enwiki" for s in d.sentences
                           if re.match(r"^[*#:;]", s)]
    assert united_states_style == []
    # a sentence with a hole never comes out; the ones dropped are counted
    assert all(HOLE not in s for d in documents.values() for s in d.sentences)
    assert 0 < summary["sentences_dropped"]["template_hole"] < 0.01 * summary["sentences"]


def test_refs_are_found_as_mediawikis_preprocessor_finds_them():
    # a ref's body is raw text up to its first </ref>: an unbalanced "{{" or
    # "[[" inside it must not swallow the sentences after it
    text = ("First fact.<REF name=x>see {{cite|unclosed and [[also</ref > Second fact.<ref name=x /> "
            "Third<!-- a <ref> in a comment --> fact.<nowiki><ref>shown</ref></nowiki>")
    (block,) = wikitext_to_blocks(text)
    assert block.text.startswith("First fact. Second fact. Third fact.")
    assert "shown" in block.text  # nowiki's body is not a ref (its markup is a hole: that sentence drops)
    # an unclosed ref is text to MediaWiki: what follows it is not cut away
    (block,) = wikitext_to_blocks("Before.<ref>never closed. After it.")
    assert block.text.endswith("After it.")


def test_tables_are_found_by_lines_as_mediawiki_finds_them():
    text = ("Before the table.\n{| class=wikitable\n|-\n| outer {{convert|5|km}}\n"
            "{|\n| inner\n|}\n|}\nAfter the table.\n"
            "<!--\n{|\n-->Still prose.\n:{|\n| indented\n|}\n<pre>\n{|\n</pre>\nEnd.")
    rendered = render(text)
    assert [block.text for block in rendered.blocks] == ["Before the table.", "After the table. Still prose.", "End."]
    assert rendered.dropped["table"] == 2  # nested tables are one table; the one in a comment is none
    # an unclosed table is left to the tokenizer: its rows are dropped and counted, the prose kept
    rendered = render("Prose.\n{|\n| a cell\nMore prose.")
    assert [block.text for block in rendered.blocks] == ["Prose.", "More prose."]
    assert rendered.dropped["table_row"] == 2
