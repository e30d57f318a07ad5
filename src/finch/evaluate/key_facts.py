"""Key facts: does an answer state the numbers, dates and names of the reference answer? A judge's 1-10 rating or a
ROUGE-L score cannot be checked by a reader; this can, fact by fact. Each reference is cut into key facts by fixed
rules (no model), and a fact is held when the answer states it too:

- dates ("14 September 2021", "September 14, 2021", "2021-09-14", "September 2021", "in September") are one fact
  each; an answer holds one when it states a date with the same day, month and year, in any of those forms;
- numbers, with a unit when one follows from the table UNITS ("249 euros", "-40 °C", "868 MHz", "1.4 kg", "5-minute",
  "€249", "45%"), dimensions ("800 × 480") and versions ("2.4.1"). An answer holds a number when it states the same
  value as a whole number ("1,000" is 1000, a unicode minus is a minus, "14" is not in "140" nor "14.5"; "four" is 4
  in an answer) and, when the fact has a unit, that unit or a synonym right after it ("249 EUR", "-40 degrees").
  A word after a number that is not in UNITS is not part of the fact ("50 tips" is the fact "50"): counted nouns
  are where answers rightly differ. Spelled-out numbers in a reference are not facts ("one" is too common);
- names: runs of capitalised words ("Ilse Varga", "Treaty of Westphalia", "Mast Unit"), acronyms of two or more
  capitals ("SYNC", "USB-C") and codes of capitals and digits ("K-230N", "E01", "CO2"), the last two alone. A
  capitalised word that starts a sentence counts only when the reference or the question capitalises it elsewhere
  too, so "Pour" or "Water" at a sentence's start is no name but "Orlen" is; leading function words ("The", "In")
  and month names are dropped. Matching is case-, accent- and punctuation-insensitive on whole words.

A fact that the question already states is not a key fact: an answer that only echoes the question ("the K-230
costs ...") must not score for it. A reference with no key facts left (a "why" or "how" answer in words) is
reported as "no key facts" and left out of the percentages, never counted as held or missed."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

_MONTH_NAMES = "January February March April May June July August September October November December"
MONTHS = tuple(_MONTH_NAMES.split())
# "Jan" ... "Dec" and "Sept"; "May" is already whole.
_ABBREVIATED = {**{name[:3]: i for i, name in enumerate(MONTHS, 1) if name != "May"}, "Sept": 9}
MONTH_NUMBERS = {**{name: i for i, name in enumerate(MONTHS, 1)}, **_ABBREVIATED}
_MONTH = "(?:" + "|".join(sorted(MONTH_NUMBERS, key=len, reverse=True)) + r")\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE_FORMS = (
    r"(?P<iso_y>\d{4})-(?P<iso_m>\d{2})-(?P<iso_d>\d{2})",
    rf"(?P<dmy_d>{_DAY})\s+(?:of\s+)?(?P<dmy_m>{_MONTH})(?:,?\s+(?P<dmy_y>\d{{4}}))?",
    rf"(?P<mdy_m>{_MONTH})\s+(?P<mdy_d>{_DAY})(?:,?\s+(?P<mdy_y>\d{{4}}))?(?!\d)",
    rf"(?P<my_m>{_MONTH}),?\s+(?P<my_y>\d{{4}})",
)
# A month alone is a date after a lowercase word ("in May"), not at a sentence's start ("May I ...").
_DATE = re.compile(r"(?<![\w.])(?:" + "|".join(_DATE_FORMS) + "|(?<=[a-z] )(?P<m_m>" + "|".join(MONTHS) + r"))(?!\w)")
_DATE_FACT = re.compile(r"(?:" + "|".join(_DATE_FORMS) + "|(?P<m_m>" + "|".join(MONTHS) + "))")

# Unit name: (case-insensitive forms, case-sensitive forms). Single letters are case-sensitive ("5 m", not "5 M").
UNITS = {
    "%": (r"%|percent|per\s?cent|pct", ""),
    "°C": (r"°\s?c|º\s?c|degrees?(?:\s(?:celsius|centigrade|c))?|celsius|centigrade|°", ""),
    "°F": (r"°\s?f|degrees?\sfahrenheit|fahrenheit", ""),
    "kelvin": (r"kelvins?", ""),
    "ms": (r"ms|milliseconds?", ""),
    "second": (r"seconds?|secs?", ""),
    "minute": (r"minutes?|mins?", ""),
    "hour": (r"hours?|hrs?", "h"),
    "day": (r"days?", ""),
    "week": (r"weeks?|wks?", ""),
    "month": (r"months?", ""),
    "year": (r"years?|yrs?", ""),
    "decade": (r"decades?", ""),
    "century": (r"century|centuries", ""),
    "nm": (r"nm|nanomet(?:re|er)s?", ""),
    "µm": (r"µm|μm|micromet(?:re|er)s?|microns?", ""),
    "mm": (r"mm|millimet(?:re|er)s?", ""),
    "cm": (r"cm|centimet(?:re|er)s?", ""),
    "m": (r"met(?:re|er)s?", "m"),
    "km": (r"km|kilomet(?:re|er)s?", ""),
    "inch": (r"inch(?:es)?", ""),
    "foot": (r"foot|feet|ft", ""),
    "yard": (r"yards?|yds?", ""),
    "mile": (r"miles?", ""),
    "cm²": (r"cm²|cm2|square\scentimet(?:re|er)s?|sq\.?\s?cm", ""),
    "m²": (r"m²|m2|square\smet(?:re|er)s?|sq\.?\s?m", ""),
    "km²": (r"km²|km2|square\skilomet(?:re|er)s?|sq\.?\s?km", ""),
    "hectare": (r"hectares?|ha", ""),
    "acre": (r"acres?", ""),
    "mg": (r"mg|milligram(?:me)?s?", ""),
    "g": (r"gram(?:me)?s?", "g"),
    "kg": (r"kg|kilogram(?:me)?s?|kilos?", ""),
    "tonne": (r"tonnes?|tons?", ""),
    "pound": (r"pounds?|lbs?|gbp|£", ""),  # weight and money share the word
    "ounce": (r"ounces?|oz", ""),
    "ml": (r"ml|millilit(?:re|er)s?", ""),
    "cl": (r"cl|centilit(?:re|er)s?", ""),
    "l": (r"lit(?:re|er)s?", "l|L"),
    "gallon": (r"gallons?|gal", ""),
    "Hz": (r"hz|hertz", ""),
    "kHz": (r"khz|kilohertz", ""),
    "MHz": (r"mhz|megahertz", ""),
    "GHz": (r"ghz|gigahertz", ""),
    "V": (r"volts?", "V"),
    "kV": (r"kv|kilovolts?", ""),
    "W": (r"watts?", "W"),
    "kW": (r"kw|kilowatts?", ""),
    "MW": (r"megawatts?", "MW"),
    "kWh": (r"kwh|kilowatt[\s-]hours?", ""),
    "mAh": (r"mah|milliamp[\s-]hours?", ""),
    "A": (r"amps?|amperes?", ""),
    "Ω": (r"ohms?|Ω", ""),
    "Pa": (r"pa|pascals?", ""),
    "hPa": (r"hpa|hectopascals?", ""),
    "kPa": (r"kpa|kilopascals?", ""),
    "mbar": (r"mbar|millibars?", ""),
    "psi": (r"psi", ""),
    "atm": (r"atm|atmospheres?", ""),
    "km/h": (r"km/h|kmh|kph|kilomet(?:re|er)s?\sper\shour", ""),
    "mph": (r"mph|miles\sper\shour", ""),
    "m/s": (r"m/s|met(?:re|er)s?\sper\ssecond", ""),
    "km/s": (r"km/s|kilomet(?:re|er)s?\sper\ssecond", ""),
    "knot": (r"knots?", ""),
    "bit": (r"bits?", ""),
    "byte": (r"bytes?", ""),
    "KB": (r"kb|kilobytes?", ""),
    "MB": (r"mb|megabytes?", ""),
    "GB": (r"gb|gigabytes?", ""),
    "TB": (r"tb|terabytes?", ""),
    "J": (r"joules?", ""),
    "kJ": (r"kj|kilojoules?", ""),
    "kcal": (r"kcal|kilocalories?", ""),
    "cal": (r"cal|calories?", ""),
    "dB": (r"db|decibels?", ""),
    "pixel": (r"pixels?|px", ""),
    "euro": (r"euros?|eur|€", ""),
    "dollar": (r"dollars?|usd|\$", ""),
    "yen": (r"yen|jpy|¥", ""),
}
_UNIT_PATTERNS = {
    name: re.compile(r"(?:\s|-)?(?:(?i:" + forms + ")" + (f"|{exact}" if exact else "") + r")(?![^\W_])")
    for name, (forms, exact) in UNITS.items()
}
CURRENCY_SIGNS = {"€": "euro", "$": "dollar", "£": "pound", "¥": "yen"}
SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_NUMBER = r"[-−–]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?!\.\d)"
# Not inside a word, a decimal or a code ("230" of "K-230", "01" of "E01"); "10" of "5-10" is a number.
_QUANTITY = re.compile(
    r"(?<![\w.])(?<![^\W\d_][-–])(?:(?P<literal>\d+(?:\.\d+){2,}|\d{1,2}:\d{2}(?!\d)|\d{4}s(?![^\W_]))"
    rf"|(?P<currency>[€$£¥])?(?P<number>{_NUMBER}))"
)
_AFTER_NUMBER = re.compile(
    r"(?P<ordinal>(?:st|nd|rd|th)(?![^\W_]))?(?:\s(?P<scale>" + "|".join(SCALES) + r")(?![^\W_]))?"
    rf"(?:(?:\s?[×xX]\s?|\sby\s)(?P<second>{_NUMBER}))?"
)
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
NUMBER_WORDS = {word: i for i, word in enumerate(f"{_ONES} seventeen eighteen nineteen twenty".split())}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_TENS, _DIGITS = "|".join(TENS), "|".join(list(NUMBER_WORDS)[1:10])
_ANY_NUMBER_WORD = "|".join(sorted({*NUMBER_WORDS, *TENS}, key=len, reverse=True))
_NUMBER_WORD = re.compile(
    rf"(?<![^\W_])(?i:(?P<tens>{_TENS})[\s-](?P<ones>{_DIGITS})|(?P<word>{_ANY_NUMBER_WORD}))(?![^\W_])"
)

# Capitalised words that start a run but are not names; runs join names over these lowercase particles.
_FUNCTION_WORDS = (
    "The A An In On At By For From To With Of And Or But If When While After Before It Its This That These Those "
    "There Here He She They We You I His Her Their Our My Your As Since Until Then Also Each Every All Some No Not Yes "
    "Both Only During Between Under Over Into Through Is Was Are Were Be Do Does Did Can Could Will Would Should "
    "Might Must How What Which Who Why Where Up Down So Thus However Although Because Unlike Like About Above Below "
    "Within Without Per Than One Two Three Four Five Six Seven Eight Nine Ten"
)
FUNCTION_WORDS = set(_FUNCTION_WORDS.split())
PARTICLES = {"of", "de", "da", "di", "du", "del", "della", "der", "den", "van", "von", "la", "le", "al", "bin", "ibn"}
TITLES = {"Mr", "Mrs", "Ms", "Dr", "St", "Prof", "Mt", "Gen", "Sen", "Rev", "Jr", "Sr", "Lt", "Col", "Capt"}
NOT_NAMES = FUNCTION_WORDS | TITLES | set(MONTH_NUMBERS)  # never the first word of a name
_LIST_NUMBER = re.compile(r"^\s*(\d+)[.)]\s", re.M)
_TOKEN = re.compile(r"[^\W_](?:[\w'’]|-(?=[^\W_]))*")


@dataclass(frozen=True)
class _Quantity:
    value: tuple[Decimal, ...] | str  # a number, a dimension (800, 480), or literal text (a version, "10:30")
    unit: str | None
    start: int
    end: int


def _decimal(text: str) -> Decimal:
    return Decimal(text.replace(",", "").replace("−", "-").replace("–", "-"))


def _unit_at(text: str, position: int) -> tuple[str, int] | None:
    """The longest unit right after `position` (a space or a hyphen before it allowed): (unit name, its end)."""
    found = [(m.end(), name) for name, pattern in _UNIT_PATTERNS.items() if (m := pattern.match(text, position))]
    if not found:
        return None
    end, name = max(found, key=lambda f: f[0])
    return name, end


def _quantities(text: str, words: bool = False) -> list[_Quantity]:
    """Every number in `text` with its unit; `words`: also "four", "twenty-five" (for answers, not references)."""
    found = []
    for match in _QUANTITY.finditer(text):
        if found and match.start() < found[-1].end:
            continue  # the second number of a dimension
        if match["literal"]:
            found.append(_Quantity(match["literal"], None, match.start(), match.end()))
            continue
        after = _AFTER_NUMBER.match(text, match.end())
        values = [_decimal(match["number"]) * SCALES.get(after["scale"] or "", 1)]
        if after["second"]:
            values.append(_decimal(after["second"]))
        unit = CURRENCY_SIGNS.get(match["currency"] or "")
        end = after.end()
        if unit is None and (tail := _unit_at(text, end)):
            unit, end = tail
        elif end < len(text) and (text[end].isalpha() or text[end].isdigit()):
            continue  # "3D", "5G": part of a word, not a number
        found.append(_Quantity(tuple(values), unit, match.start(), end))
    if words:
        for match in _NUMBER_WORD.finditer(text):
            tens, ones, word = (match[group] and match[group].lower() for group in ("tens", "ones", "word"))
            number = TENS[tens] + NUMBER_WORDS[ones] if tens else {**NUMBER_WORDS, **TENS}[word]
            tail = _unit_at(text, match.end())
            found.append(
                _Quantity((Decimal(number),), tail and tail[0], match.start(), tail[1] if tail else match.end())
            )
    return found


def _dates(text: str, pattern: re.Pattern = _DATE) -> list[tuple[tuple[int | None, int | None, int | None], int, int]]:
    """((day, month, year), start, end) of every date; None where the text does not say."""
    found = []
    for match in pattern.finditer(text):
        groups = {key.split("_")[1]: value for key, value in match.groupdict().items() if value}
        month = groups["m"].rstrip(".")
        day = int(re.match(r"\d+", groups["d"])[0]) if "d" in groups else None
        date = (day, int(month) if month.isdigit() else MONTH_NUMBERS[month], int(groups.get("y") or 0) or None)
        found.append((date, match.start(), match.end()))
    return found


def _is_sentence_start(text: str, start: int) -> bool:
    """After a full stop (not of "Dr." or an initial), "!", "?", ":", ";", a bullet, a list number (masked: "#)"),
    or at the start."""
    before = text[:start].rstrip(" \t\n\"'“‘([")
    if not before or before[-1] in "!?:;•" or re.search(r"(?:^|\n)\s*(?:[-*]|#+[.)])$", before):  # a list item
        return True
    if before[-1] != ".":
        return False
    word = re.search(r"([^\W\d_]+)\.$", before)
    return not (word and (word[1] in TITLES or len(word[1]) == 1 and word[1].isupper()))


def _token_kind(token: str) -> str | None:
    letters = [c for c in token if c.isalpha()]
    if not letters:
        return None
    if any(c.isdigit() for c in token):
        return "code" if token[0].isupper() else None
    if all(c.isupper() for c in letters):
        return "acronym" if len(letters) >= 2 else "initial"
    return "word" if token[0].isupper() else None


def _tokens(text: str) -> list[tuple[str, str | None, int, int, bool]]:
    """(token, kind, start, end, starts a sentence), a possessive "'s" cut off."""
    tokens = []
    for match in _TOKEN.finditer(text):
        token, start = re.sub(r"['’]s?$", "", match[0]), match.start()
        tokens.append((token, _token_kind(token), start, start + len(token), _is_sentence_start(text, start)))
    return tokens


def _name_runs(text: str, vouched: set[str]) -> list[tuple[int, int]]:
    """Spans of names: runs of capitalised words (and initials, and particles between them), acronyms and codes."""
    tokens, spans, run = _tokens(text), [], []

    def close():
        while run and (run[0][0] in NOT_NAMES or run[0][1] == "initial" or run[0][4] and run[0][0] not in vouched):
            run.pop(0)
        while run and (run[-1][1] is None or run[-1][0] in TITLES):  # a trailing particle, "Jr"
            run.pop()
        if run and not (len(run) == 1 and run[0][1] == "initial"):
            spans.append((run[0][2], run[-1][3]))
        run.clear()

    for i, token in enumerate(tokens):
        word, kind, start, _, _ = token
        gap = text[run[-1][3] : start] if run else ""
        # "John F. Kennedy" and "Dr. Smith" go on over the full stop; "marked N. Turn" does not
        abbreviated = gap == ". " and run and (run[-1][1] == "initial" and len(run) > 1 or run[-1][0] in TITLES)
        joined = run and (gap == " " or abbreviated)
        if kind in ("code", "acronym"):
            close()
            spans.append((start, token[3]))
        elif kind in ("word", "initial"):
            if not joined:
                close()
            run.append(token)
        elif word in PARTICLES and joined and i + 1 < len(tokens) and tokens[i + 1][1] == "word":
            run.append(token)
        else:
            close()
    close()
    return spans


def _vouched(*texts: str) -> set[str]:
    """Capitalised words that some text capitalises away from a sentence's start: names, not sentence openers."""
    return {token for text in texts for token, kind, _, _, first in _tokens(text) if kind == "word" and not first}


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in spans:
        text = text[:start] + "#" * (end - start) + text[end:]
    return text


def extract_key_facts(reference: str, question: str = "") -> list[str]:
    """The reference's dates, numbers (with units) and names, in reading order, each once, as written; with a
    `question`, those it already states are left out (see the module docstring for the rules)."""
    dates = [(start, end) for _, start, end in _dates(reference)]
    steps = [match.span(1) for match in _LIST_NUMBER.finditer(reference)]  # "1. Hold ...": no fact
    rest = _mask(reference, dates + steps)
    numbers = [(q.start, q.end) for q in _quantities(rest)]
    names = _name_runs(_mask(rest, numbers), _vouched(rest, question))
    facts, seen = [], set()
    for start, end in sorted(dates + numbers + names):
        fact = reference[start:end].strip(" -")
        if fact.casefold() not in seen and not (question and facts_held(question, [fact])[0]):
            seen.add(fact.casefold())
            facts.append(fact)
    return facts


def _words(text: str) -> str:
    """Lowercase, accents dropped, every run of punctuation and space one space: "Mast Unit's" -> "mast unit s"."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " " + " ".join(re.findall(r"[^\W_]+", plain.casefold())) + " "


def _holds(answer: str, fact: str) -> bool:
    date = _DATE_FACT.fullmatch(fact) and _dates(fact, _DATE_FACT)
    if date:
        wanted = date[0][0]
        return any(all(w is None or w == g for w, g in zip(wanted, got)) for got, _, _ in _dates(answer))
    quantity = _quantities(fact)
    if len(quantity) == 1 and (quantity[0].start, quantity[0].end) == (0, len(fact)):
        return any(_same_quantity(quantity[0], q) for q in _quantities(answer, words=True))
    words = [re.escape(word) for word in _words(fact).split()]
    if words and words[-1].isalpha():
        words[-1] += "(?:e?s)?"  # "Mast Units" holds "Mast Unit"
    return bool(words) and re.search(" " + " ?".join(words) + " ", _words(answer)) is not None


def _same_quantity(wanted: _Quantity, got: _Quantity) -> bool:
    """The same value (or one side of a dimension: "480" is in "800 × 480") and, if the fact has one, the same unit."""
    same = wanted.value == got.value or (
        isinstance(got.value, tuple)
        and isinstance(wanted.value, tuple)
        and len(wanted.value) == 1
        and wanted.value[0] in got.value
    )
    return same and wanted.unit in (None, got.unit)


def facts_held(answer: str, facts: list[str]) -> list[bool]:
    """For each fact (from extract_key_facts), whether `answer` states it: the same date, the same number with the
    same unit (synonyms allowed), or the same name, whatever the case, accents or punctuation."""
    return [_holds(answer, fact) for fact in facts]


@dataclass
class KeyFactResult:
    facts: list[str]
    held: list[bool]
    all_held: bool | None  # None: the reference has no key facts, so the question is not scored
    fraction: float | None


def score_answer(question: str, reference: str, answer: str) -> KeyFactResult:
    facts = extract_key_facts(reference, question)
    held = facts_held(answer, facts)
    if not facts:
        return KeyFactResult(facts, held, None, None)
    return KeyFactResult(facts, held, all(held), sum(held) / len(facts))


def key_fact_report(samples: list, answers: dict[str, list[str]]) -> dict:
    """`samples`: EvalSample-like rows (messages ending in the question, reference, leaf); `answers`: each model's
    answers in the same order. Per model and per leaf: questions, questions with key facts, how many of those had
    every key fact held, the mean share held; and per question the facts and which each model held, to audit."""
    questions = []
    for i, sample in enumerate(samples):
        question = sample.messages[-1]["content"]
        row = {"leaf": sample.leaf or "(no leaf)", "question": question, "reference": sample.reference}
        row["facts"], row["answers"] = extract_key_facts(sample.reference, question), {}
        for label, texts in answers.items():
            result = score_answer(question, sample.reference, texts[i])
            row["answers"][label] = {
                "answer": texts[i],
                "held": result.held,
                "all_held": result.all_held,
                "fraction": result.fraction,
            }
        questions.append(row)
    leaves = {}
    for row in questions:
        leaves.setdefault(row["leaf"], []).append(row)
    summaries = [{"leaf": leaf, **_summary(rows, list(answers))} for leaf, rows in leaves.items()]
    return {"models": _summary(questions, list(answers)), "leaves": summaries, "questions": questions}


def _summary(rows: list[dict], labels: list[str]) -> dict:
    """Questions, those with key facts, and per model how many of those it held every fact of and its mean share."""
    scored = [row["answers"] for row in rows if row["facts"]]
    return {
        "questions": len(rows),
        "with_facts": len(scored),
        "all_held": {label: sum(s[label]["all_held"] for s in scored) for label in labels},
        "mean_fraction": {
            label: sum(s[label]["fraction"] for s in scored) / len(scored) if scored else None for label in labels
        },
    }


def share_all_held(summary: dict, label: str) -> float | None:
    """Of the questions with key facts, the share whose answer by `label` held every one; None when none has any."""
    return summary["all_held"][label] / summary["with_facts"] if summary["with_facts"] else None


def key_fact_scores(report: dict, label: str) -> tuple[dict, dict[str, list[float]]]:
    """One model's results and per-question scores for report.json, from key_fact_report."""
    summary = report["models"]
    results = {"all_key_facts": share_all_held(summary, label), "key_fact_fraction": summary["mean_fraction"][label]}
    results |= {"questions_all_held": summary["all_held"][label], "questions_with_facts": summary["with_facts"]}
    results["questions"] = summary["questions"]
    scored = [row["answers"][label] for row in report["questions"] if row["facts"]]
    per_question = {"all_key_facts": [float(a["all_held"]) for a in scored]}
    per_question["key_fact_fraction"] = [a["fraction"] for a in scored]
    return results, per_question


def key_fact_markdown(report: dict, labels: list[str]) -> list[str]:
    """report.md's per-leaf counts, then every question with its key facts and which each model held."""
    lines = [
        "",
        "## Per leaf (questions with all key facts)",
        "",
        "| leaf | questions | with key facts | " + " | ".join(labels) + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    for leaf in report["leaves"]:
        n = leaf["with_facts"]
        cells = [f"{leaf['all_held'][label]}/{n}" if n else "no key facts" for label in labels]
        lines.append(f"| {leaf['leaf']} | {leaf['questions']} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "## Per question", ""]
    for number, row in enumerate(report["questions"], 1):
        lines += [
            f"### {number}. {_cell(row['question'])}",
            "",
            f"leaf: {row['leaf']}  ",
            f"reference: {_cell(row['reference'])}",
            "",
        ]
        if row["facts"]:
            lines += ["| key fact | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
            for j, fact in enumerate(row["facts"]):
                held = ["yes" if row["answers"][label]["held"][j] else "no" for label in labels]
                lines.append(f"| {_cell(fact)} | " + " | ".join(held) + " |")
        else:
            lines.append("no key facts: not counted")
        lines += ["", *[f"- {label}: {_cell(row['answers'][label]['answer'])}" for label in labels], ""]
    return lines


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
