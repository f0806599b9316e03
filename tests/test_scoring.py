"""The QA rule: an answer is right when the first answer it commits to holds an accepted one; the lenient rule, an
accepted answer anywhere, is kept for comparison. Both through `qa_accuracy` and the shipped `evaluate` metric."""

import pytest

from speechgpt_hf.evaluation.scoring import ANYWHERE, FIRST_ANSWER, clauses, first_answer, load_metric, qa_accuracy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is France.  The answer is Paris.", "The answer is France."),
        ("Paris. It is in France.", "Paris."),
        ("1. First think it through: France. 2. Then: Paris.", "1. First think it through: France."),
        ("The tallest mountain is Mt. Everest. It is in Nepal.", "The tallest mountain is Mt. Everest."),
        (
            "Washington, D.C. is the capital of the U.S. and more",
            "Washington, D.C. is the capital of the U.S. and more",
        ),
        ("The capital of France? It is Paris!", "It is Paris!"),  # an echo of the question is no answer
        ("Rome; or maybe Paris", "Rome;"),
        ('Here is the answer:\n\n"Paris."', '"Paris."'),  # an announcement is no answer either
        ("Paris\nRome", "Paris"),
        ("It costs 3.5 dollars. Cheap.", "It costs 3.5 dollars."),
        ("...  ", ""),
        ("", ""),
    ],
)
def test_first_answer_is_the_first_clause_that_is_not_a_question(text, expected):
    assert first_answer(text) == expected


def test_clauses_keep_every_word_in_order():
    text = "Sure!  The answer is Paris. 2. Rome?\nDone"
    assert clauses(text) == ["Sure!", "The answer is Paris.", "2. Rome?", "Done"]


def test_a_list_of_guesses_passes_only_the_lenient_rule():
    answers = ["The answer is France. The answer is Paris.", "It is Paris. Or Rome.", "A spider has 8 legs.", None]
    accepted = [["paris"], ["paris"], ["eight", "8"], ["rome"]]
    assert qa_accuracy(answers, accepted)["correct"] == [False, True, True, False]
    assert qa_accuracy(answers, accepted, FIRST_ANSWER)["accuracy"] == 0.5
    assert qa_accuracy(answers, accepted, ANYWHERE)["correct"] == [True, True, True, False]
    with pytest.raises(ValueError, match="Unknown QA rule"):
        qa_accuracy(answers, accepted, "last_answer")


def test_shipped_metric_applies_the_same_rule():
    metric = load_metric("spoken_qa_accuracy")
    predictions, references = ["Rome. No: Paris.", "paris"], [["paris"], ["paris"]]
    assert metric.compute(predictions=predictions, references=references)["correct"] == [False, True]
    assert metric.compute(predictions=predictions, references=references, rule="anywhere")["accuracy"] == 1.0
    assert metric.compute(predictions=["an apple"], references=[["a"]])["correct"] == [False]  # whole words only
