"""Knowledge retention: the spoken-QA questions asked in *text*, to a bare text LM (in its own chat template) and to
a SpeechGPT (through its processor's prompt), scored as spoken QA is. Asked of the base before expansion, of the
expanded model and after each stage, it shows how much of the base's knowledge the speech training keeps; spoken-QA
accuracy over the bare base's text accuracy is the cross-modal transfer.

Every model is asked the same way: the question as written (as the spoken-QA task's text mode asks it, with no
instruction about the answer's length unless `instruction` is given, and then to every model alike), greedy, with the
same budget of `MAX_NEW_TOKENS` new tokens, and every answer is scored by the same rule (`scoring.FIRST_ANSWER`: the
first answer it commits to must hold an accepted one, so a longer budget cannot buy extra guesses). One thing must
differ: the bare base has no processor, so it is asked in its own chat template, where a SpeechGPT is asked through
its processor (its system prompt and prompt format, the way it was trained and is used). The expanded, untrained
model has the bare base's weights, so its row measures exactly that difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .eval_data import SpokenQuestion
from .scoring import ANYWHERE, FIRST_ANSWER, qa_accuracy

MAX_NEW_TOKENS = 64  # every model's budget: enough for a sentence, and it bounds a model that answers in units
# An instruction a caller may put before every question (to every model alike); the earlier measurements gave it
# to the bare base alone, with 24 new tokens.
ANSWER_BRIEFLY = "Answer in a few words."


@dataclass
class TextQAResult:
    """Accuracy over the questions by the first answer each commits to, each answer with whether it is right, and
    (for comparison) the accuracy and verdicts of the lenient rule that accepts an accepted answer anywhere."""

    accuracy: float
    answers: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    lenient_accuracy: float | None = None
    lenient_correct: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "answers": self.answers,
            "correct": self.correct,
            "lenient_accuracy": self.lenient_accuracy,
            "lenient_correct": self.lenient_correct,
        }


def _scored(answers: list[str], questions: Sequence[SpokenQuestion]) -> TextQAResult:
    accepted = [q.answers for q in questions]
    strict, lenient = qa_accuracy(answers, accepted, FIRST_ANSWER), qa_accuracy(answers, accepted, ANYWHERE)
    return TextQAResult(
        float(strict["accuracy"]),
        answers,
        [bool(c) for c in strict["correct"]],
        float(lenient["accuracy"]),
        [bool(c) for c in lenient["correct"]],
    )


def _asked(question: SpokenQuestion, instruction: str | None) -> str:
    return f"{instruction.strip()} {question.question}" if instruction else question.question


@torch.inference_mode()
def base_text_qa(
    model: Any,
    tokenizer: Any,
    questions: Sequence[SpokenQuestion],
    max_new_tokens: int = MAX_NEW_TOKENS,
    instruction: str | None = None,
) -> TextQAResult:
    """Each question in the base's chat template as the user's turn (greedy), or as "Question: …" followed by
    "Answer:" when the tokenizer has no template; `instruction`, when given, goes before the question."""
    answers = []
    for question in questions:
        if tokenizer.chat_template:
            messages = [{"role": "user", "content": _asked(question, instruction)}]
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            prompt = f"{instruction.strip()}\n" if instruction else ""
            prompt += f"Question: {question.question}\nAnswer:"
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=not tokenizer.chat_template)
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return _scored(answers, questions)


def system_text_qa(
    system: Any,
    questions: Sequence[SpokenQuestion],
    max_new_tokens: int = MAX_NEW_TOKENS,
    instruction: str | None = None,
) -> TextQAResult:
    """Each question asked of a `SpeechGPTChat` in text, answered in text, as the spoken-QA task's text mode asks
    (`instruction`, when given, before the question). `max_new_tokens` bounds an answer that runs on (a model that
    answers in units instead of words would otherwise write its whole 512-token budget for each question)."""
    answers = []
    for question in questions:
        system.reset()  # each question a fresh conversation
        reply = system.respond(
            text=_asked(question, instruction), output_modality="text", max_new_tokens=max_new_tokens
        )
        answers.append(reply.response.text or "")
    return _scored(answers, questions)


__all__ = ["ANSWER_BRIEFLY", "MAX_NEW_TOKENS", "TextQAResult", "base_text_qa", "system_text_qa"]
