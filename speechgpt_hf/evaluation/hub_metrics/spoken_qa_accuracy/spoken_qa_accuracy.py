"""Spoken question answering accuracy: an answer is right when one of its accepted answers appears in it.

This is how Llama Questions / Web Questions evaluations of speech LMs score free-form answers. Matching is on
whole words after speechgpt-hf's text normalisation, so "Paris." and "It is Paris" both match "paris" and
"a" never matches inside "apple". Load it offline by path (see speechgpt_hf.evaluation.scoring).
"""

import datasets
import evaluate

from speechgpt_hf.evaluation.normalize import normalize_text

_DESCRIPTION = "Fraction of answers that contain one of the accepted answers as whole words, after normalisation."
_INPUTS = """
Args:
    predictions: the model's text answers (list of str).
    references: for each prediction, the list of accepted answers (list of list of str).
Returns:
    accuracy: fraction of predictions holding an accepted answer.
    correct: for each prediction, whether it does.
"""


def _contains(answer: str, accepted: str) -> bool:
    words, wanted = answer.split(), accepted.split()
    return bool(wanted) and any(words[i : i + len(wanted)] == wanted for i in range(len(words) - len(wanted) + 1))


class SpokenQaAccuracy(evaluate.Metric):
    """Accepted-answer containment accuracy."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
            ),
        )

    def _compute(self, predictions, references):
        correct = [
            any(_contains(normalize_text(prediction or ""), normalize_text(answer)) for answer in accepted)
            for prediction, accepted in zip(predictions, references, strict=True)
        ]
        return {"accuracy": sum(correct) / len(correct) if correct else 0.0, "correct": correct}
