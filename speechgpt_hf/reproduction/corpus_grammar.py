"""The grammar of the held-out corpus: distinct English sentences of bounded length, the same for the same seed.

corpus_grammar.json holds everyday nouns, adjectives, verbs with agreement, places, times and numbers, joined by
statement, question and request templates; `corpus` splits the sentences into training and held-out sets and voices
them.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRAMMAR_PATH = Path(__file__).with_name("corpus_grammar.json")
MIN_WORDS, MAX_WORDS = 4, 14
_PLACE_KINDS = ("places", "destination")
_COUNTED_KINDS = ("people", "food", "things", "animals")
_SLOT = re.compile(r"\{(\w+)\}")
_NOT_A_WORD = re.compile(r"[^a-z0-9' ]+")


def normalise(sentence: str) -> str:
    """Lower case, punctuation gone, single spaces: the form in which two sentences count as the same."""
    return " ".join(_NOT_A_WORD.sub(" ", sentence.lower()).split())


@dataclass(frozen=True)
class Noun:
    """A noun and its plural; `plural` is None for a mass noun (rice, tea) or a place."""

    singular: str
    plural: str | None

    @classmethod
    def parse(cls, entry: str) -> Noun:
        """`cup` (plural cups), `knife/knives` or `rice/` (no plural), as written in the grammar file."""
        singular, slash, plural = entry.partition("/")
        return cls(singular, (plural or None) if slash else f"{singular}s")

    @property
    def forms(self) -> set[str]:
        """The written forms of the noun."""
        return {self.singular, self.plural} - {None}


@dataclass(frozen=True)
class Verb:
    """A verb's base, third-person, past and -ing forms and the kinds of object it takes."""

    base: str
    third: str
    past: str
    ing: str
    objects: tuple[str, ...]


@dataclass(frozen=True)
class Grammar:
    """The corpus grammar: word lists by kind and the templates that join them (see corpus_grammar.json)."""

    nouns: dict[str, tuple[Noun, ...]]
    prepositions: dict[str, str]
    adjectives: dict[str, tuple[str, ...]]
    verbs: tuple[Verb, ...]
    rules: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path = GRAMMAR_PATH) -> Grammar:
        """Reads a grammar file; the default is the one shipped with the package."""
        rules = json.loads(Path(path).read_text(encoding="utf-8"))
        nouns = {kind: tuple(map(Noun.parse, entries)) for kind, entries in rules["nouns"].items()}
        places = dict(entry.split(":") for entry in rules["places"])
        nouns["places"] = tuple(Noun(place, None) for place in places)
        verbs = tuple(Verb(*forms.split(), objects=tuple(kinds)) for forms, kinds in rules["verbs"])
        adjectives = {kind: tuple(words) for kind, words in rules["adjectives"].items()}
        return cls(nouns, places, adjectives, verbs, rules)

    def reservable(self) -> dict[str, list[set[str]]]:
        """The word forms of each noun and adjective entry, by kind: what may be held out for testing."""
        groups = {f"nouns:{kind}": [noun.forms for noun in nouns] for kind, nouns in self.nouns.items()}
        groups.update({f"adjectives:{kind}": [{word} for word in words] for kind, words in self.adjectives.items()})
        return groups

    def narrowed(self, per_kind: int) -> Grammar:
        """A copy with the first `per_kind` entries of every noun, adjective, time, number and determiner list, two
        verbs for each kind of object, and no hand-written sentences: a vocabulary small enough that a small corpus
        says each word many times, in many combinations."""
        if per_kind < 1:
            raise ValueError(f"per_kind must be at least 1, got {per_kind}.")
        nouns = {kind: entries[:per_kind] for kind, entries in self.nouns.items()}
        verbs: list[Verb] = []
        for kind in [*nouns, "destination"]:
            verbs += [verb for verb in self.verbs if kind in verb.objects and verb not in verbs][:2]
        rules = {
            **self.rules,
            "sentences": [],
            "numbers": self.rules["numbers"][:per_kind],
            "times": {name: times[:per_kind] for name, times in self.rules["times"].items()},
            "determiners": {name: words[:per_kind] for name, words in self.rules["determiners"].items()},
        }
        adjectives = {kind: words[:per_kind] for kind, words in self.adjectives.items()}
        places = {noun.singular: self.prepositions[noun.singular] for noun in nouns["places"]}
        return Grammar(nouns, places, adjectives, tuple(verbs), rules)

    def without(self, words: set[str] | frozenset[str]) -> Grammar:
        """A copy whose nouns and adjectives use none of `words` (the training side of a split)."""
        nouns = {kind: tuple(n for n in nouns if not n.forms & words) for kind, nouns in self.nouns.items()}
        adjectives = {kind: tuple(a for a in adjs if a not in words) for kind, adjs in self.adjectives.items()}
        return Grammar(nouns, self.prepositions, adjectives, self.verbs, self.rules)


class _SentenceSampler:
    """Draws one sentence at a time from a grammar's templates with subject-verb agreement."""

    def __init__(self, grammar: Grammar, rng: random.Random) -> None:
        self.grammar, self.rng, self.rules = grammar, rng, grammar.rules
        self.templates = [(group, text) for group, texts in self.rules["templates"].items() for text in texts]

    def sentence(self) -> str:
        group, template = self.rng.choice(self.templates)
        kinds = [*self.grammar.nouns, "destination"]
        allowed = [k for k in kinds if group == "any_object" or k not in _PLACE_KINDS]
        verb, kind = self._verb(allowed, counted="{NUM}" in template or "{PL}" in template)
        person, subject = self._subject()
        topic = self.rng.choice([k for k in self.grammar.nouns if k not in _PLACE_KINDS and self._adjectives(k)])
        fill: dict[str, Callable[[], str]] = {
            "S": lambda: subject,
            "V": lambda: verb.base if person != "third" else verb.third,
            "V_BASE": lambda: verb.base,
            "V_PAST": lambda: verb.past,
            "V_ING": lambda: verb.ing,
            "BE": lambda: {"first": "am", "third": "is"}.get(person, "are"),
            "DO": lambda: "does" if person == "third" else "do",
            "O": lambda: self._object(kind),
            "NUM": lambda: self._counted(kind),
            "PL": lambda: self._plural(kind),
            "NUM_ANY": lambda: self._counted(self._pick_counted_kind()),
            "LOC": self._location,
            "P_OBJ": self._object_person,
            "MOOD": lambda: self.rng.choice(self.grammar.adjectives["mood"]),
            "N": lambda: f"the {self._noun(topic).singular}",
            "N_ADJ": lambda: self.rng.choice(self._adjectives(topic)),
            **{
                f"T_{name.upper()}": functools.partial(self.rng.choice, times)
                for name, times in self.rules["times"].items()
            },
        }
        text = _SLOT.sub(lambda match: fill[match.group(1)](), template)
        return text[0].upper() + text[1:]

    def _verb(self, allowed: list[str], counted: bool) -> tuple[Verb, str]:
        def usable(kind: str) -> bool:
            nouns = self.grammar.nouns.get(kind, ())
            exists = any(n.plural for n in nouns) if counted else bool(nouns) or kind in _PLACE_KINDS
            return kind in allowed and exists

        choices = [(verb, kind) for verb in self.grammar.verbs for kind in verb.objects if usable(kind)]
        return self.rng.choice(choices)

    def _subject(self) -> tuple[str, str]:
        if self.rng.random() < 0.4:
            subject, _, person = self.rng.choice(self.rules["pronouns"])
            return person, subject
        plural = self.rng.random() < 0.25
        noun = self._noun("people")
        word = noun.plural if plural else noun.singular
        return ("plural" if plural else "third"), f"{self.rng.choice(self.rules['determiners']['person'])} {word}"

    def _object_person(self) -> str:
        if self.rng.random() < 0.5:
            return self.rng.choice([p[1] for p in self.rules["pronouns"] if p[0] != "you"])
        return self._object("people")

    def _noun(self, kind: str, counted: bool = False) -> Noun:
        return self.rng.choice([n for n in self.grammar.nouns[kind] if n.plural or not counted])

    def _adjectives(self, kind: str) -> list[str]:
        return [a for group in self.rules["adjectives_for"][kind] for a in self.grammar.adjectives[group]]

    def _maybe_adjective(self, kind: str, chance: float = 0.35) -> list[str]:
        return [self.rng.choice(self._adjectives(kind))] if self.rng.random() < chance else []

    def _place(self, chance: float) -> str:
        return " ".join(["the", *self._maybe_adjective("places", chance), self._noun("places").singular])

    def _location(self) -> str:
        place = self._place(0.2)
        return f"{self.grammar.prepositions[place.split()[-1]]} {place}"

    def _object(self, kind: str) -> str:
        if kind in _PLACE_KINDS:
            return ("to " if kind == "destination" else "") + self._place(0.3)
        noun = self._noun(kind)
        if kind == "people":
            determiner, form = self.rng.choice(self.rules["determiners"]["person"]), noun.singular
        else:
            number = "mass" if noun.plural is None else ("plural" if self.rng.random() < 0.3 else "singular")
            determiner = self.rng.choice(self.rules["determiners"][number])
            form = noun.singular if number != "plural" else noun.plural
        phrase = [*self._maybe_adjective(kind), form]
        if determiner == "a" and phrase[0][0] in "aeiou":
            determiner = "an"
        return " ".join([determiner, *phrase])

    def _plural(self, kind: str) -> str:
        return " ".join([*self._maybe_adjective(kind), self._noun(kind, counted=True).plural])

    def _counted(self, kind: str) -> str:
        return f"{self.rng.choice(self.rules['numbers'])} {self._plural(kind)}"

    def _pick_counted_kind(self) -> str:
        return self.rng.choice([k for k in _COUNTED_KINDS if any(n.plural for n in self.grammar.nouns[k])])


def generate_sentences(
    count: int,
    seed: int | str = 0,
    grammar: Grammar | None = None,
    exclude: Iterable[str] = (),
    require: Iterable[str] = (),
    taken: Iterable[str] = (),
    allow_fewer: bool = False,
) -> list[str]:
    """`count` distinct grammar sentences of MIN_WORDS-MAX_WORDS words, the same for the same seed.

    Sentences with a word of `exclude` are refused, so are those without a word of `require` (when given) and
    those whose normalised form is in `taken`. Fewer than `count` is an error unless `allow_fewer`.
    """
    grammar = grammar or Grammar.load()
    exclude, require = frozenset(exclude), frozenset(require)
    seen = {normalise(sentence) for sentence in taken}
    sampler = _SentenceSampler(grammar.without(exclude), random.Random(f"{seed}:sentences"))
    sentences: list[str] = []
    for _ in range(50 * count + 1000):
        if len(sentences) == count:
            return sentences
        sentence = sampler.sentence()
        key = normalise(sentence)
        words = set(key.split())
        if key in seen or not MIN_WORDS <= len(key.split()) <= MAX_WORDS or words & exclude:
            continue
        if require and not words & require:
            continue
        seen.add(key)
        sentences.append(sentence)
    if len(sentences) < count and not allow_fewer:
        raise ValueError(
            f"The grammar gave only {len(sentences)} of {count} distinct sentences under these constraints: ask "
            "for fewer sentences or add words and templates to corpus_grammar.json."
        )
    return sentences


__all__ = [
    "GRAMMAR_PATH",
    "MAX_WORDS",
    "MIN_WORDS",
    "Grammar",
    "Noun",
    "Verb",
    "generate_sentences",
    "normalise",
]
