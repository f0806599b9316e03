"""English text normalisation for word and character error rates, the way Whisper evaluations score ASR.

Both the reference and the transcript go through `normalize_text` before any metric: lower case, accents
dropped, bracketed non-speech annotations ("[music]", "(laughs)") removed, numbers spelled out as words
("23" -> "twenty three", "3.5" -> "three point five", "2nd" -> "second", "50%" -> "fifty percent",
"$5" -> "five dollars"), hyphens and punctuation turned into spaces (apostrophes inside words kept), and
single spaces. Spelling digits out (rather than the reverse) keeps the mapping one-to-one: a TTS reference
written in words and a judge that prints digits agree. Every metric in this package uses this one function.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_NUMBER = re.compile(
    r"(?P<currency>[$£€])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<ord>st|nd|rd|th)?(?P<pct>\s?%)?"
)
_CURRENCY = {"$": "dollars", "£": "pounds", "€": "euros"}
_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")


def number_to_words(number: int) -> str:
    """An integer below 10**15 in English words: 1905 -> "one thousand nine hundred five"."""
    if number < 0:
        return "minus " + number_to_words(-number)
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    for scale, name in _SCALES:
        if number >= scale:
            high, rest = divmod(number, scale)
            return f"{number_to_words(high)} {name}" + (f" {number_to_words(rest)}" if rest else "")
    raise ValueError(f"{number} is too large to spell out.")


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell_number(match: re.Match[str]) -> str:
    words = number_to_words(int(match["int"].replace(",", "")))
    if match["frac"]:
        words += " point " + " ".join(_ONES[int(digit)] for digit in match["frac"])
    if match["ord"]:
        words = _ordinal(words)
    if match["pct"]:
        words += " percent"
    if match["currency"]:
        words += " " + _CURRENCY[match["currency"]]
    return f" {words} "


def normalize_text(text: str) -> str:
    """Lower-cased words with numbers spelled out and punctuation removed, for WER/CER (see the module doc)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(char for char in text if not unicodedata.combining(char)).lower()
    text = _BRACKETED.sub(" ", text.replace("’", "'").replace("&", " and "))
    text = _NUMBER.sub(_spell_number, text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(word.strip("'") for word in text.split() if word.strip("'"))


__all__ = ["normalize_text", "number_to_words"]
