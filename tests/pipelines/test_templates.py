"""Inline templates render as the reader sees them; others leave a hole."""

from collections import Counter

from albertprep.pipelines import templates
from albertprep.pipelines.sentences import HOLE, SentenceLimits, screen, split_sentences
from albertprep.pipelines.wikitext import wikitext_to_blocks


def _sentences(wikitext: str) -> tuple[list[str], Counter]:
    dropped = Counter()
    sentences = [piece for block in wikitext_to_blocks(wikitext) if not block.heading_level
                 for sentence in split_sentences(block.text) for piece in screen(sentence, SentenceLimits(), dropped)]
    return sentences, dropped


def test_text_carrying_templates_render_inside_the_sentence():
    cases = {
        "The area is about {{convert|93628|sqmi|km2}}.": "The area is about 93628 square miles.",
        "It has an area of {{cvt|5|-|10|km}} and is hilly.": "It has an area of 5–10 km and is hilly.",
        "The sovereign state{{mdashb}}the Republic of Ireland.": "The sovereign state—the Republic of Ireland.",
        "Paris, France {{snd}} a city.": "Paris, France – a city.",
        "He said {{lang|fr|bonjour}} twice.": "He said bonjour twice.",
        "She won {{nowrap|£5 million}} in 1990.": "She won £5 million in 1990.",
        "She was born {{birth date|1815|12|10}} in London.": "She was born December 10, 1815 in London.",
        "She was born {{birth date|1815|12|10|df=y}} in London.": "She was born 10 December 1815 in London.",
        "He died {{death date and age|1852|11|27|1815|12|10}}.": "He died November 27, 1852 (aged 36).",
        "It was built {{circa|1200}} by monks.": "It was built c. 1200 by monks.",
        "It cost {{US$|5 billion}} in total.": "It cost US$5 billion in total.",
        "The temperature was {{convert|20|C|F}} at noon.": "The temperature was 20 °C at noon.",
    }
    for wikitext, expected in cases.items():
        assert _sentences(wikitext)[0] == [expected], wikitext


def test_an_unknown_template_inside_a_sentence_drops_that_sentence_only():
    sentences, dropped = _sentences("Before. The area is {{unknownthing|5}} in size. After it.")
    assert sentences == ["Before.", "After it."]
    assert dropped == {"template_hole": 1}


def test_templates_between_sentences_or_in_citations_leave_no_hole():
    text = ("He died.{{sfn|Smith|2001|p=4}} She lived,{{cn}} and wrote.{{unknown footnote}} "
            "{{another box}} The end.")
    sentences, dropped = _sentences(text)
    assert sentences == ["He died.", "She lived, and wrote.", "The end."]
    assert not dropped


def test_template_names_are_normalised():
    assert templates.normalize_name(" Template:Convert_me ") == "convert me"
    assert templates.render("Nowrap", ["x"], {}) == "x"
    assert templates.render("Citation needed", [], {"date": "May 2020"}) == ""
    assert templates.render("Some box we do not know", [], {}) is None
    assert HOLE not in (templates.render("ndash", [], {}) or "")


def test_the_next_ranked_templates_render_too():
    assert templates.render("chem", ["H", "2", "O"], {}) == "H2O"
    assert templates.render("nihongo", ["Tokyo", "東京", "Tōkyō"], {}) == "Tokyo"
    assert templates.render("vanchor", ["Early life"], {}) == "Early life"
    assert templates.render("angbr", ["a"], {}) == "⟨a⟩"
