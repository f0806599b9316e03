"""Knowledge retention: the spoken-QA questions asked in *text*, to a bare text LM (in its own chat template) and to
a SpeechGPT (through its processor's prompt), scored as spoken QA is. Asked of the base before expansion, of the
expanded model and after each stage, it shows how much of the base's knowledge the speech training keeps; spoken-QA
accuracy over the bare base's text accuracy is the cross-modal transfer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .eval_data import SpokenQuestion
from .scoring import qa_accuracy

# The instruction the bare base gets before every question: short answers are what the accuracy scorer reads.
ANSWER_BRIEFLY = "Answer in a few words."


@dataclass
class TextQAResult:
    """Accuracy over the questions, and each answer with whether it held an accepted one."""

    accuracy: float
    answers: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "answers": self.answers, "correct": self.correct}


def _scored(answers: list[str], questions: Sequence[SpokenQuestion]) -> TextQAResult:
    scored = qa_accuracy(answers, [q.answers for q in questions])
    return TextQAResult(float(scored["accuracy"]), answers, [bool(c) for c in scored["correct"]])


@torch.inference_mode()
def base_text_qa(
    model: Any, tokenizer: Any, questions: Sequence[SpokenQuestion], max_new_tokens: int = 24
) -> TextQAResult:
    """Each question in the base's chat template (after `ANSWER_BRIEFLY`, greedy), or as plain text followed by
    "Answer:" when the tokenizer has no template."""
    answers = []
    for question in questions:
        if tokenizer.chat_template:
            messages = [{"role": "user", "content": f"{ANSWER_BRIEFLY} {question.question}"}]
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            prompt = f"{ANSWER_BRIEFLY}\nQuestion: {question.question}\nAnswer:"
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=not tokenizer.chat_template)
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return _scored(answers, questions)


def system_text_qa(system: Any, questions: Sequence[SpokenQuestion], max_new_tokens: int = 64) -> TextQAResult:
    """Each question asked of a `SpeechGPTChat` in text, answered in text, as the spoken-QA task's text mode asks.
    `max_new_tokens` bounds an answer that runs on (a model that answers in units instead of words would otherwise
    write its whole 512-token budget for each question)."""
    answers = []
    for question in questions:
        system.reset()  # each question a fresh conversation
        reply = system.respond(text=question.question, output_modality="text", max_new_tokens=max_new_tokens)
        answers.append(reply.response.text or "")
    return _scored(answers, questions)


__all__ = ["ANSWER_BRIEFLY", "TextQAResult", "base_text_qa", "system_text_qa"]
