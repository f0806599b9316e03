"""Spoken question answering accuracy: an answer is right when the first answer it commits to holds an accepted one.

Llama Questions / Web Questions evaluations of speech LMs score free-form answers by whether an accepted answer
appears in them; an answer that lists several guesses ("The answer is France. ... The answer is Paris.") passes
that test. So by default (`rule="first_answer"`) only the answer's first sentence or clause that is not a question
is searched; `rule="anywhere"` searches the whole answer, as those evaluations do. Matching is on whole words after
speechgpt-hf's text normalisation, so "Paris." and "It is Paris" both match "paris" and "a" never matches inside
"apple". Load it offline by path (see speechgpt_hf.evaluation.scoring, which defines the rule).
"""

import datasets
import evaluate

from speechgpt_hf.evaluation.normalize import normalize_text
from speechgpt_hf.evaluation.scoring import ANYWHERE, FIRST_ANSWER, QA_RULES, first_answer

_DESCRIPTION = (
    "Fraction of answers whose first answer (first sentence or clause that is not a question) contains one of the "
    "accepted answers as whole words, after normalisation; rule='anywhere' searches the whole answer."
)
_INPUTS = """
Args:
    predictions: the model's text answers (list of str).
    references: for each prediction, the list of accepted answers (list of list of str).
    rule: "first_answer" (default) or "anywhere".
Returns:
    accuracy: fraction of predictions holding an accepted answer.
    correct: for each prediction, whether it does.
"""


def _contains(answer: str, accepted: str) -> bool:
    words, wanted = answer.split(), accepted.split()
    return bool(wanted) and any(words[i : i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1))


class SpokenQaAccuracy(evaluate.Metric):
    """Accepted-answer accuracy, by the first answer given (or anywhere in the answer)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references, rule=FIRST_ANSWER):
        if rule not in QA_RULES:
            raise ValueError(f"Unknown rule {rule!r}: choose from {', '.join(QA_RULES)}.")
        searched = [
            prediction or "" if rule == ANYWHERE else first_answer(prediction or "") for prediction in predictions
        ]
        correct = [
            any(_contains(normalize_text(text), normalize_text(answer)) for answer in accepted)
            for text, accepted in zip(searched, references, strict=True)
        ]
        return {"accuracy": sum(correct) / len(correct) if correct else 0.0, "correct": correct}
