"""Knowledge retention: text QA asked of a bare LM in its chat template, and of a SpeechGPT in text."""

import torch

from speechgpt_hf.evaluation.eval_data import SpokenQuestion
from speechgpt_hf.evaluation.knowledge import ANSWER_BRIEFLY, base_text_qa, system_text_qa
from speechgpt_hf.testing_utils import build_tiny_tokenizer

QUESTIONS = [
    SpokenQuestion("q1", "What is the capital of France?", ["paris"], "geography"),
    SpokenQuestion("q2", "How many legs does a spider have?", ["eight", "8"], "animals"),
]
TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}<s>assistant:"


class ScriptedLM:
    """Answers each prompt it recognises with a fixed text, after the prompt's own tokens (as `generate` does)."""

    def __init__(self, tokenizer, replies: dict[str, str]) -> None:
        self.tokenizer, self.replies, self.prompts = tokenizer, replies, []

    def generate(self, input_ids, max_new_tokens, **_):
        prompt = self.tokenizer.decode(input_ids[0])
        self.prompts.append(prompt)
        reply = next(text for key, text in self.replies.items() if key in prompt)
        new = self.tokenizer(reply, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :max_new_tokens]
        return torch.cat([input_ids, new], dim=1)


def test_base_text_qa_asks_in_the_chat_template_and_scores_the_new_text_only():
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = TEMPLATE
    model = ScriptedLM(tokenizer, {"France": "It is Paris.", "spider": "Six, I think."})
    result = base_text_qa(model, tokenizer, QUESTIONS)
    assert result.accuracy == 0.5 and result.correct == [True, False]
    assert result.answers == ["It is Paris.", "Six, I think."]
    assert model.prompts[0].startswith("<s>user: " + ANSWER_BRIEFLY) and model.prompts[0].endswith("assistant:")


def test_base_text_qa_without_a_template_asks_for_an_answer():
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = None
    model = ScriptedLM(tokenizer, {"France": "paris", "spider": "8 legs"})
    assert base_text_qa(model, tokenizer, QUESTIONS).accuracy == 1.0
    assert model.prompts[1].rstrip().endswith("Question: How many legs does a spider have?\nAnswer:")


class ScriptedChat:
    """A stand-in SpeechGPTChat: text in, a text reply; records that each question starts a fresh conversation."""

    def __init__(self) -> None:
        self.history, self.resets, self.budgets = [], 0, []

    def reset(self) -> None:
        self.history, self.resets = [], self.resets + 1

    def respond(self, text, output_modality, max_new_tokens):
        assert output_modality == "text" and not self.history
        self.budgets.append(max_new_tokens)
        self.history.append(text)
        answer = "Paris." if "France" in text else "I do not know."
        return type("Reply", (), {"response": type("Response", (), {"text": answer})()})()


def test_system_text_qa_asks_each_question_afresh():
    chat = ScriptedChat()
    result = system_text_qa(chat, QUESTIONS)
    assert result.correct == [True, False] and chat.resets == 2
    assert chat.budgets == [64, 64]  # a runaway answer is cut short, not written to the chat's 512-token default
    assert result.to_dict()["accuracy"] == 0.5
