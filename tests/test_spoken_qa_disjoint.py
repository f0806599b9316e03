"""The spoken QA set measures answers the model was never trained on: no question, no near copy of one, and no
training answer to the same question is among the texts the package ships for training or the reproduction builds."""

import json
from pathlib import Path

import pytest

import speechgpt_hf
from speechgpt_hf.data.sources import INSTRUCTION_KEYS, RESPONSE_KEYS, load_instruction_pairs
from speechgpt_hf.evaluation.contamination import ANSWER_LEAK, COPY, NEAR_COPY, find_overlaps
from speechgpt_hf.evaluation.eval_data import SPOKEN_QA_FILE, SpokenQuestion, load_spoken_questions
from speechgpt_hf.evaluation.normalize import normalize_text
from speechgpt_hf.models.speechgpt.task_descriptions import load_task_descriptions

PACKAGE = Path(speechgpt_hf.__file__).parent
DATA_SUFFIXES = (".jsonl", ".json", ".txt")


def _strings(value) -> list[str]:
    """Every string inside a JSON value (keys left out: they name fields, they are not text)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _records(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if path.suffix == ".json":
        return [json.loads(text)]
    return [line for line in text.splitlines() if line.strip()]


def shipped_files() -> list[Path]:
    """Every text data file in the package (instruction pairs, task descriptions, the corpus grammar, ...), wherever
    it lives, except the question set itself."""
    return sorted(
        path
        for path in PACKAGE.rglob("*")
        if path.suffix in DATA_SUFFIXES and path.is_file() and path.resolve() != SPOKEN_QA_FILE.resolve()
    )


def reproduction_texts() -> dict[str, list[str]]:
    """What each reproduction preset trains on, built the way it builds it: the corpus sentences, the instruction
    pairs and task descriptions it takes, its system prompt."""
    from speechgpt_hf.reproduction.corpus import split_sentences
    from speechgpt_hf.reproduction.settings import PRESETS

    texts = {}
    for name, settings in PRESETS.items():
        pairs = load_instruction_pairs(None)[: settings.com_pairs]
        texts[f"reproduction {name}: training sentences"] = list(
            split_sentences(settings.num_train, settings.num_test, seed=settings.seed).train
        )
        texts[f"reproduction {name}: instruction pairs"] = [p[k] for p in pairs for k in ("instruction", "response")]
        texts[f"reproduction {name}: task descriptions"] = [
            *load_task_descriptions(None, "asr")[: settings.task_descriptions],
            *load_task_descriptions(None, "tts")[: settings.task_descriptions],
        ]
        texts[f"reproduction {name}: system prompt"] = [settings.system_prompt]
    return texts


def training_texts() -> dict[str, list[str]]:
    shipped = {str(p.relative_to(PACKAGE)): [s for r in _records(p) for s in _strings(r)] for p in shipped_files()}
    return {**shipped, **reproduction_texts()}


def training_pairs() -> list[tuple[str, str, str]]:
    """(source, instruction, response) of every shipped file of instruction pairs."""
    pairs = []
    for path in shipped_files():
        records = [r for r in _records(path) if isinstance(r, dict)]
        if records and all(set(r) & set(INSTRUCTION_KEYS) and set(r) & set(RESPONSE_KEYS) for r in records):
            source = str(path.relative_to(PACKAGE))
            pairs += [(source, p["instruction"], p["response"]) for p in load_instruction_pairs(records)]
    return pairs


@pytest.fixture(scope="module")
def overlaps():
    return find_overlaps(load_spoken_questions(), training_texts(), training_pairs())


@pytest.mark.parametrize("kind", [COPY, NEAR_COPY, ANSWER_LEAK])
def test_no_question_is_trained_on(overlaps, kind):
    found = [str(o) for o in overlaps if o.kind == kind]
    assert not found, f"{len(found)} spoken QA question(s) with a training {kind}:\n" + "\n".join(found)


def test_the_sources_hold_what_training_reads():
    """If a data file moves or a loader changes, the check above must still see the texts training uses."""
    texts = {normalize_text(t) for items in training_texts().values() for t in items}
    instruction = load_instruction_pairs(None)[0]
    assert normalize_text(instruction["instruction"]) in texts and normalize_text(instruction["response"]) in texts
    for task in ("asr", "tts"):
        assert normalize_text(load_task_descriptions(None, task)[0]) in texts
    assert {"instructions.jsonl", "corpus_grammar.json"} <= {p.name for p in shipped_files()}
    assert len(training_pairs()) == len(load_instruction_pairs(None))


def test_the_rules_flag_copies_near_copies_and_leaks_and_nothing_else():
    question = SpokenQuestion("q", "What color is grass?", ["green"])
    days = SpokenQuestion("d", "How many days are in a week?", ["seven", "7"])
    texts = {
        "copy": ["Tell me: what color is GRASS?"],
        "near": ["How many days are there in a week?"],
        "other": ["What colour is the sea?", "How many legs does a spider have?"],
    }
    pairs = [
        ("leak", "What is the color of grass?", "Grass is usually green."),
        ("same words, no answer", "What is the colour of grass?", "It depends on the season."),
        ("answer, other words", "What colour are limes?", "Limes are green."),
    ]
    found = {(o.question_id, o.kind, o.source) for o in find_overlaps([question, days], texts, pairs)}
    assert found == {("q", COPY, "copy"), ("d", NEAR_COPY, "near"), ("q", ANSWER_LEAK, "leak")}
    assert find_overlaps([question, days], {"other": texts["other"]}, pairs[1:]) == []


def test_questions_have_a_topic_and_cannot_be_answered_by_echoing_them():
    questions = load_spoken_questions()
    assert 300 <= len(questions) <= 400
    assert len({normalize_text(q.question) for q in questions}) == len(questions)
    assert len({q.id for q in questions}) == len(questions)
    assert all(q.topic for q in questions) and len({q.topic for q in questions}) >= 8
    echoed = [
        q.id for q in questions if any(f" {normalize_text(a)} " in f" {normalize_text(q.question)} " for a in q.answers)
    ]
    assert not echoed, f"an answer that repeats the question scores as right: {echoed}"
