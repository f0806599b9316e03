"""Word and character error rates of speech transcripts, after the text normalisation of speechgpt-hf.

Load it offline by path: `evaluate.load(speechgpt_hf.evaluation.scoring.metric_path("speechgpt_wer"))`.
"""

import datasets
import evaluate

from speechgpt_hf.evaluation.metrics import character_error_rate, word_error_rate

_DESCRIPTION = (
    "Corpus word error rate and character error rate of predicted transcripts against references. Both sides "
    "are normalised first (case, punctuation, numbers spelled out), as Whisper evaluations do; an empty "
    "prediction counts every reference word as deleted. Per-utterance word error rates come back too."
)
_INPUTS = """
Args:
    predictions: transcripts to score (list of str).
    references: the reference transcripts (list of str, one per prediction, at least one word each).
Returns:
    wer: corpus word error rate (word edits / reference words).
    cer: corpus character error rate.
    item_wer: the word error rate of each utterance, in input order.
"""


class SpeechgptWer(evaluate.Metric):
    """WER and CER with one shared normalisation."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references):
        hypotheses = [text or "" for text in predictions]
        return {
            "wer": word_error_rate(references, hypotheses),
            "cer": character_error_rate(references, hypotheses),
            "item_wer": [word_error_rate([ref], [hyp]) for ref, hyp in zip(references, hypotheses, strict=True)],
        }
