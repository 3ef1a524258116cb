"""Inline templates that carry text, rendered as MediaWiki would show them.

A template inside a sentence is part of the sentence: `{{convert|5|km|mi}}`
is "5 kilometres (3.1 mi)" on the page, and dropping it leaves "has an
area of and is hilly". `render` returns the visible text of the templates
that ranked high inside sentences of the shared sample (the ranking is in
README.md, made by benchmarks/templates.py), "" for templates that show
nothing in running text (citations, maintenance tags, hatnotes, boxes), and
None for any other template: the caller then treats it as a hole, and a
sentence with a hole inside is dropped and counted, never emitted broken.

Conversions are not computed: `{{convert|5|km|mi}}` renders its input
("5 kilometres"), which is what the sentence says; the converted figure in
brackets is a second rendering of the same quantity.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Params = tuple[list[str], dict[str, str]]  # positional, named

_SPACES = re.compile(r"[\s_]+")
_MONTHS = ("January February March April May June July August September October "
           "November December").split()

# Templates that show nothing inside running text, by name or name prefix.
_SILENT = frozenset(
    """citation needed|cn|fact|clarify|clarification needed|when|who|whom|which|by whom|according to whom|
    dubious|vague|update after|failed verification|dead link|better source needed|better source|page needed|
    pages needed|full citation needed|citation|cite|sfn|sfnp|sfnm|efn|efn-ua|efn-lr|efn-lg|refn|r|rp|ref|
    note|note label|nb|harvnb|harvp|harv|harvtxt|harvcoltxt|sfnref|anchor|reflist|refbegin|refend|
    notelist|notelist-ua|main|main article|see also|further|further information|details|about|for|other uses|
    redirect|distinguish|hatnote|short description|defaultsort|displaytitle|lowercase title|italic title|
    pp|pp-semi|pp-move|pp-protected|pp-vandalism|good article|featured article|authority control|portal|
    portal bar|commons|commons category|wiktionary|wikiquote|wikisource|sister project links|clear|-|
    toc|toc limit|tocright|multiple image|image|quote box|sidebar|col-begin|col-end|col-break|div col|
    div col end|stub|coord missing|ipa|ipac-en|ipa-en|ipa-all|audio|pronunciation|respell|ipa audio link|
    lang-rtl|sup|unreferenced|more citations needed|refimprove|primary sources|original research|
    citation style|use dmy dates|use mdy dates|use british english|use american english|use indian english|
    use australian english|use canadian english|engvarb|self-published source|verify source|
    nbsp|zwsp|shy|wbr|cbignore|bots|nobots|rp|specify|examples|which?|how|why|elucidate|sic?|
    year needed|date missing|citation needed span-end|fv|verify credibility|
    unreliable source?""".replace("\n", "").split("|")
)
_SILENT = frozenset(name.strip() for name in _SILENT)
_SILENT_PREFIXES = ("cite ", "infobox", "taxobox", "navbox", "automatic taxobox", "speciesbox", "use ",
                    "pp-", "ipa-", "ipac-", "engvar", "good article", "featured", "wikiproject", "campaignbox",
                    "s-", "commons", "portal", "sister", "lang-rtl", "coord", "geobox", "chembox", "drugbox",
                    "sidebar", "wiktionary", "wikisource", "wikiquote", "redirect", "about", "for ", "other ",
                    "see also", "main ", "further", "db-", "afd", "merge", "split", "cleanup", "copy edit",
                    "expand", "update", "citation needed", "refimprove", "more citations", "unreferenced",
                    "multiple issues", "original research", "advert", "pov", "npov", "globalize", "tone",
                    "weasel", "peacock", "refn", "efn", "sfn", "harv", "notelist", "reflist", "dmbox", "ambox",
                    "ombox", "tmbox", "fmbox", "cmbox", "imbox", "quote box", "pull quote", "listen",
                    "multiple image", "wide image", "panorama", "image ", "location map", "weather box",
                    "climate chart", "election box", "football", "cbb", "cfb", "nfl", "mlb", "nba", "nhl")
_SILENT_SUFFIXES = ("-stub", " stub", " sidebar", " navbox", " topics", " portal", "box")

# Unit codes of {{convert}}: (full name, plural, symbol). Unknown codes render as given.
_UNITS = {
    "km": ("kilometre", "kilometres", "km"), "m": ("metre", "metres", "m"), "cm": ("centimetre", "centimetres", "cm"),
    "mm": ("millimetre", "millimetres", "mm"), "mi": ("mile", "miles", "mi"), "ft": ("foot", "feet", "ft"),
    "in": ("inch", "inches", "in"), "yd": ("yard", "yards", "yd"), "nmi": ("nautical mile", "nautical miles", "nmi"),
    "km2": ("square kilometre", "square kilometres", "km2"), "sqkm": ("square kilometre", "square kilometres", "km2"),
    "sqmi": ("square mile", "square miles", "sq mi"), "mi2": ("square mile", "square miles", "sq mi"),
    "m2": ("square metre", "square metres", "m2"), "sqm": ("square metre", "square metres", "m2"),
    "sqft": ("square foot", "square feet", "sq ft"), "ft2": ("square foot", "square feet", "sq ft"),
    "ha": ("hectare", "hectares", "ha"), "acre": ("acre", "acres", "acres"), "kg": ("kilogram", "kilograms", "kg"),
    "g": ("gram", "grams", "g"), "lb": ("pound", "pounds", "lb"), "oz": ("ounce", "ounces", "oz"),
    "t": ("tonne", "tonnes", "t"), "LT": ("long ton", "long tons", "long tons"),
    "ST": ("short ton", "short tons", "short tons"), "C": ("°C", "°C", "°C"), "F": ("°F", "°F", "°F"),
    "K": ("kelvin", "kelvin", "K"), "km/h": ("kilometre per hour", "kilometres per hour", "km/h"),
    "mph": ("mile per hour", "miles per hour", "mph"), "kn": ("knot", "knots", "kn"),
    "m/s": ("metre per second", "metres per second", "m/s"), "L": ("litre", "litres", "L"),
    "l": ("litre", "litres", "l"), "USgal": ("US gallon", "US gallons", "US gal"),
    "impgal": ("imperial gallon", "imperial gallons", "imp gal"), "hp": ("horsepower", "horsepower", "hp"),
    "kW": ("kilowatt", "kilowatts", "kW"), "MW": ("megawatt", "megawatts", "MW"), "W": ("watt", "watts", "W"),
    "e6acre": ("million acres", "million acres", "million acres"),
    "km3": ("cubic kilometre", "cubic kilometres", "km3"),
    "cuft": ("cubic foot", "cubic feet", "cu ft"), "m3": ("cubic metre", "cubic metres", "m3"),
    "e6km2": ("million square kilometres", "million square kilometres", "million km2"),
    "e6sqmi": ("million square miles", "million square miles", "million sq mi"),
    "ton": ("ton", "tons", "tons"), "st": ("stone", "stone", "st"),
    "AU": ("astronomical unit", "astronomical units", "AU"),
    "ly": ("light-year", "light-years", "ly"), "pc": ("parsec", "parsecs", "pc"),
    "kPa": ("kilopascal", "kilopascals", "kPa"),
    "psi": ("pound per square inch", "pounds per square inch", "psi"),
    "inHg": ("inch of mercury", "inches of mercury", "inHg"),
}
_RANGE_WORDS = {"-": "–", "–": "–", "to": " to ", "and": " and ", "or": " or ", "x": " × ", "by": " by ",
                "+/-": " ± ", "to(-)": " to ", "&ndash;": "–", "and(-)": " and ", "×": " × "}
_CHAR_TEMPLATES = {
    "mdash": "—", "ndash": "–", "mdashb": "—", "snd": " – ", "spnd": " – ", "sndash": " – ", "spaced ndash": " – ",
    "spaced en dash": " – ", "spaced mdash": " — ", "dash": " – ", "en dash": "–", "em dash": "—", "--": "–",
    "'": "'", "'s": "'s", "\"'": "\"'", "'\"": "'\"", "=": "=", "!": "|", "!!": "||", "·": " · ", "dot": " · ",
    "middot": "·", "•": " • ", "bull": " • ", "spaces": " ", "space": " ", "thinsp": " ", "nbsp": " ", "okina": "ʻ",
    "ell": "ℓ", "minus": "−", "times": "×", "degree": "°", "pi": "π", "'-": "'", "shy": "", "zwsp": "",
    "nbhyph": "‑", "ampersand": "&", "&": "&", "colon": ":", "pipe": "|", "slash": "/", "tilde": "~",
    "snds": " – ", "ndash ": "–", "break": " ", "-wrap": "", "wbr": "",
}
# Templates that show their first positional parameter (or a named one).
_FIRST_PARAM = frozenset(
    """nowrap|nobr|nobreak|no wrap|small|smaller|big|larger|large|huge|nobold|noitalic|em|strong|sic|not a typo|
    typo|proper name|abbr|abbrlink|visible anchor|vanchor text|lang|langx|script|transl|transliteration|
    rtl-lang|ltr|nowrap begin|resize|midsize|sc|smallcaps|small caps|allcaps|mono|code|kbd|samp|var|tt|
    highlight|color|colour|font|font color|ill|interlanguage link|interlanguage link multi|link-interwiki|
    tooltip|hover title|abbr-link|citation needed span|cns|dubious span|clarify span|vague span|or span|
    when span|who span|better source span|lang-en|center|centre|lower|upper|nowraplinks|ruby|linktext|
    wikt-lang|section link|slink|titlelink|noflag|flagu|flag|flagcountry|flagdeco|country|as written|
    '"|"'|qi|mvar|math|bigmath|yesno|value|hilite|smallcaps all|small-caps|uc|lc|ucfirst|lcfirst|
    visible anchor|vanchor|anchored|proper noun|pslink|srt|isbn|oclc|doi|issn|nihongo|nihongo2|
    quote|cquote|quotation|blockquote|keypress|angbr|chem|chem2""".replace("\n", "").split("|")
)
_FIRST_PARAM = frozenset(name.strip() for name in _FIRST_PARAM)
_DATE_TEMPLATES = frozenset(
    """birth date|birth date and age|death date|death date and age|start date|end date|start date and age|
    end date and age|date|dts|birth-date|death-date|film date|release date|dob|bda|dda|start-date|
    end-date|birth year and age|death year and age|birth based on age as of date""".replace("\n", "").split("|")
)
_DATE_TEMPLATES = frozenset(name.strip() for name in _DATE_TEMPLATES)


def normalize_name(name: str) -> str:
    name = _SPACES.sub(" ", name).strip()
    if name.lower().startswith(("template:", "tl:")):
        name = name.split(":", 1)[1].strip()
    return name[:1].lower() + name[1:] if name else name


def _unit(code: str, plural: bool, symbol: bool) -> str:
    entry = _UNITS.get(code) or _UNITS.get(code.lower())
    if entry is None:
        return code
    return entry[2] if symbol else (entry[1] if plural else entry[0])


def _number(text: str) -> str:
    return text.strip()


def _convert(positional: list[str], named: dict[str, str], abbreviated: bool) -> str | None:
    values = [p.strip() for p in positional]
    if not values or not values[0]:
        return None
    abbr = named.get("abbr", "on" if abbreviated else "off").strip().lower()
    symbol = abbr in ("on", "in", "values")
    text = _number(values[0])
    rest = values[1:]
    while len(rest) >= 2 and rest[0].strip().lower() in _RANGE_WORDS:
        text += _RANGE_WORDS[rest[0].strip().lower()] + _number(rest[1])
        rest = rest[2:]
    if not rest or not rest[0]:
        return None
    try:
        plural = float(values[0].replace(",", "")) != 1 or text != values[0]
    except ValueError:
        plural = True
    unit = _unit(rest[0], plural, symbol)
    if unit.startswith("°"):
        return f"{text} {unit}" if not symbol else f"{text}{unit}"
    if named.get("adj", "").strip().lower() == "on":
        return f"{text}-{_unit(rest[0], False, symbol)}"
    return f"{text} {unit}"


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def _date(positional: list[str], named: dict[str, str], mdy_default: bool = True) -> str | None:
    parts = [p.strip() for p in positional if p.strip()]
    if not parts:
        return None
    year, month, day = (_int(parts[0]), _int(parts[1]) if len(parts) > 1 else None,
                        _int(parts[2]) if len(parts) > 2 else None)
    if year is None:  # {{date|1 January 2000}} style: already text
        return parts[0]
    day_first = any(named.get(k, "").strip().lower() in ("y", "yes", "1", "true") for k in ("df", "day first"))
    if month is None or not 1 <= month <= 12:
        return str(year)
    month_name = _MONTHS[month - 1]
    if day is None:
        return f"{month_name} {year}"
    if day_first or not mdy_default:
        return f"{day} {month_name} {year}"
    return f"{month_name} {day}, {year}"


def _age_suffix(name: str, positional: list[str]) -> str:
    """The "(aged 36)" of {{death date and age}}: computable from its dates."""
    numbers = [_int(p) for p in positional if p.strip()]
    if name not in ("death date and age", "dda") or len(numbers) < 6 or None in numbers[:6]:
        return ""
    y1, m1, d1, y0, m0, d0 = numbers[:6]
    age = y1 - y0 - ((m1, d1) < (m0, d0))
    return f" (aged {age})"


def _positional_text(positional: list[str], index: int) -> str | None:
    return positional[index] if len(positional) > index and positional[index].strip() else None


def _first(name: str, positional: list[str], named: dict[str, str]) -> str | None:
    if name in ("lang", "langx", "script", "transl", "transliteration", "wikt-lang", "rtl-lang", "ltr"):
        return _positional_text(positional, 1) or named.get("text")
    if name in ("abbr", "abbrlink", "tooltip", "hover title", "abbr-link"):
        return _positional_text(positional, 0)
    if name in ("ill", "interlanguage link", "interlanguage link multi", "link-interwiki", "section link", "slink"):
        return named.get("lt") or _positional_text(positional, 0)
    if name in ("color", "colour", "font color", "highlight", "hilite"):
        return _positional_text(positional, 1) or _positional_text(positional, 0)
    if name in ("flag", "flagu", "flagcountry", "flagdeco", "noflag", "country"):
        return None if name == "flagdeco" else (named.get("name") or _positional_text(positional, 0))
    if name in ("uc", "upper"):
        return (_positional_text(positional, 0) or "").upper()
    if name in ("lc", "lower"):
        return (_positional_text(positional, 0) or "").lower()
    if name in ("chem", "chem2"):  # {{chem|H|2|O}}: the formula's parts, written together
        return "".join(p.strip() for p in positional) or None
    if name == "angbr":
        value = _positional_text(positional, 0)
        return f"⟨{value}⟩" if value else None
    if name in ("quote", "cquote", "quotation", "blockquote"):
        return named.get("text") or _positional_text(positional, 0)
    if name in ("isbn", "oclc", "doi", "issn"):
        value = _positional_text(positional, 0)
        return f"{name.upper()} {value}" if value else None
    return _positional_text(positional, 0) or named.get("1") or named.get("text")


def _magic(name: str) -> str | None:
    """Parser functions and variables written as `{{name:argument}}`."""
    function, _, argument = name.partition(":")
    function = function.strip().lower()
    argument = argument.strip()
    if function in ("formatnum", "#formatnum", "padleft", "padright", "#tag", "#expr"):
        return argument if function != "#tag" and function != "#expr" else None
    if function in ("lc", "lcfirst"):
        return argument.lower() if function == "lc" else argument[:1].lower() + argument[1:]
    if function in ("uc", "ucfirst"):
        return argument.upper() if function == "uc" else argument[:1].upper() + argument[1:]
    if function in ("defaultsort", "displaytitle", "#invoke:check for unknown parameters", "__notoc__"):
        return ""
    return None


def _currency(symbol: str) -> Callable[[list[str], dict[str, str]], str | None]:
    def render(positional: list[str], named: dict[str, str]) -> str | None:
        value = _positional_text(positional, 0)
        return f"{symbol}{value.strip()}" if value else symbol.strip()
    return render


_CURRENCIES = {"us$": "US$", "usd": "US$", "£": "£", "gbp": "£", "€": "€", "eur": "€", "a$": "A$", "aud": "A$",
               "ca$": "CA$", "cad": "CA$", "inr": "₹", "₹": "₹", "jpy": "¥", "¥": "¥", "nz$": "NZ$",
               "hk$": "HK$", "s$": "S$", "r$": "R$", "chf": "CHF ", "sek": "SEK ", "rub": "₽", "cny": "CN¥",
               "yen": "¥", "currency": ""}


def is_silent(raw_name: str) -> bool:
    """Whether the template shows nothing in running text (boxes, citations,
    maintenance tags): the renderer then skips its parameters unread."""
    key = normalize_name(raw_name).lower()
    if key in _CHAR_TEMPLATES or key in _FIRST_PARAM or key in _DATE_TEMPLATES or ":" in key:
        return False
    return key in _SILENT or key.startswith(_SILENT_PREFIXES) or key.endswith(_SILENT_SUFFIXES)


def render(raw_name: str, positional: list[str], named: dict[str, str]) -> str | None:
    """The text a template shows inside a sentence; "" for none; None when
    it is not one we know (a hole)."""
    name = normalize_name(raw_name)
    key = name.lower()
    if key in _CHAR_TEMPLATES:
        return _CHAR_TEMPLATES[key]
    if ":" in key and not key.startswith(("ipa", "lang")):
        return _magic(name)
    if key in ("convert", "cvt", "convert2", "convinfobox"):
        return _convert(positional, named, abbreviated=key == "cvt")
    if key in _DATE_TEMPLATES:
        date = _date(positional, named)
        return None if date is None else date + _age_suffix(key, positional)
    if key in ("circa", "c.", "ca", "ca."):
        value = _positional_text(positional, 0)
        return f"c. {value.strip()}" if value else "c."
    if key in ("floruit", "fl.", "fl"):
        value = _positional_text(positional, 0)
        return f"fl. {value.strip()}" if value else "fl."
    if key in ("bce", "bc", "ce", "ad", "bp"):
        value = _positional_text(positional, 0)
        label = key.upper()
        return (f"{label} {value.strip()}" if key == "ad" else f"{value.strip()} {label}") if value else label
    if key in ("frac", "sfrac", "fraction"):
        values = [p.strip() for p in positional]
        if len(values) == 3:
            return f"{values[0]} {values[1]}/{values[2]}"
        if len(values) == 2:
            return f"{values[0]}/{values[1]}"
        return f"1/{values[0]}" if values else None
    if key == "val":
        values = [p.strip() for p in positional]
        if not values:
            return None
        unit = named.get("u") or named.get("ul") or ""
        return f"{values[0]} {unit.strip()}".strip()
    if key in ("as of", "as at"):
        date = _date(positional, named)
        return None if date is None else f"{'As of' if named.get('lc', '') == '' else 'as of'} {date}"
    if key in ("sortname", "sort name"):
        values = [p.strip() for p in positional[:2]]
        return " ".join(v for v in values if v) or None
    if key in ("sort", "sortkey", "hs", "ntsh", "nts", "dts"):
        return _positional_text(positional, 1 if key == "sort" else 0)
    if key in _CURRENCIES:
        return _currency(_CURRENCIES[key])(positional, named)
    if key.startswith("lang-"):  # {{lang-fr|texte}}: the foreign text
        return _positional_text(positional, 0)
    if key in _FIRST_PARAM:
        return _first(key, positional, named)
    if key in _SILENT or key.startswith(_SILENT_PREFIXES) or key.endswith(_SILENT_SUFFIXES):
        return ""
    return None
