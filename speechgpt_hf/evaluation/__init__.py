"""Evaluation: the harness (`evaluate_speechgpt`), text normalisation, WER/CER, offline ASR judges and the DNSMOS
naturalness scorer."""

from .harness import EvaluationConfig, EvaluationReport, evaluate_speechgpt
from .judges import DEFAULT_ASR_JUDGE, ASRJudge, DNSMOSScorer, JudgeResult, TransformersASRJudge, load_asr_judge
from .metrics import character_error_rate, word_error_rate
from .normalize import normalize_text, number_to_words

__all__ = [
    "ASRJudge",
    "DEFAULT_ASR_JUDGE",
    "DNSMOSScorer",
    "EvaluationConfig",
    "EvaluationReport",
    "JudgeResult",
    "TransformersASRJudge",
    "character_error_rate",
    "evaluate_speechgpt",
    "load_asr_judge",
    "normalize_text",
    "number_to_words",
    "word_error_rate",
]
