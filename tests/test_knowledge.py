"""Knowledge retention: text QA asked of a bare LM in its chat template, and of a SpeechGPT in text."""

import torch

from speechgpt_hf.evaluation.eval_data import SpokenQuestion
from speechgpt_hf.evaluation.knowledge import ANSWER_BRIEFLY, MAX_NEW_TOKENS, base_text_qa, system_text_qa
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
        self.budgets = [*getattr(self, "budgets", []), max_new_tokens]
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
    # the question as written, as every other model is asked it, with the same budget
    assert model.prompts[0] == "<s>user: What is the capital of France?</s><s>assistant:"
    assert model.budgets == [MAX_NEW_TOKENS, MAX_NEW_TOKENS]
    base_text_qa(model, tokenizer, QUESTIONS[:1], instruction=ANSWER_BRIEFLY)
    assert model.prompts[-1].startswith(f"<s>user: {ANSWER_BRIEFLY} What is")


def test_base_text_qa_without_a_template_asks_for_an_answer():
    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = None
    model = ScriptedLM(tokenizer, {"France": "paris", "spider": "8 legs"})
    assert base_text_qa(model, tokenizer, QUESTIONS).accuracy == 1.0
    assert model.prompts[1].rstrip().endswith("Question: How many legs does a spider have?\nAnswer:")
    assert ANSWER_BRIEFLY not in model.prompts[1]


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
        answer = "Paris." if "France" in text else "Six. Or eight."
        return type("Reply", (), {"response": type("Response", (), {"text": answer})()})()


def test_system_text_qa_asks_each_question_afresh():
    chat = ScriptedChat()
    result = system_text_qa(chat, QUESTIONS)
    assert result.correct == [True, False] and chat.resets == 2
    # the bare base's budget; a runaway answer is cut short, not written to the chat's 512-token default
    assert chat.budgets == [MAX_NEW_TOKENS, MAX_NEW_TOKENS] == [64, 64]
    assert chat.history == [QUESTIONS[1].question]  # asked as the bare base is: the question as written
    # "Six. Or eight." offers a wrong answer first: right only by the lenient rule, which is kept beside
    assert result.to_dict()["accuracy"] == 0.5 and result.lenient_correct == [True, True]
    assert result.lenient_accuracy == 1.0
    system_text_qa(chat, QUESTIONS[:1], instruction=ANSWER_BRIEFLY)
    assert chat.history == [f"{ANSWER_BRIEFLY} {QUESTIONS[0].question}"]
