"""The prompt each system was trained with: "speechgpt", "release" and "chat_template", rendered the same way at
inference (build_prompt, the chat template, the chat, the evaluation) and at training time (the stages' rows)."""

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoProcessor, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from speechgpt_hf import SpeechGPTChat, SpeechGPTProcessor, add_speech_units
from speechgpt_hf.convert.convert_speechgpt import ORIGINAL_MARKERS, convert_speechgpt
from speechgpt_hf.data.original_format import original_turn
from speechgpt_hf.data.rows import FEATURES, make_turn, prompt_completion_for, render_row
from speechgpt_hf.evaluation.eval_data import SpeechItem, SpokenQuestion
from speechgpt_hf.evaluation.tasks import evaluate_asr, evaluate_spoken_qa
from speechgpt_hf.models.speechgpt.chat_template import history_messages
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer
from speechgpt_hf.training.sft import SpeechGPTTrainingConfig, load_stage_dataset

NUM_UNITS = 20
SYSTEM = "Be brief.\n"
# A ChatML template written for these tests, in the shape of an instruct model's (SmolLM2, Qwen2.5).
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
S2S_WORDS = (
    "Here is an instruction in speech: <sosp><3><4><eosp>\nPlease answer in speech. Go step by step: first write "
    "down the words you hear, then think of the answer in text, and last speak that answer aloud."
)
T2T_WORDS = (
    "Here is an instruction in text: What is two plus two?\nPlease answer in text. Go step by step: first think the "
    "instruction through, then write the answer in text."
)
REQUESTS = {  # kind -> (instruction, output_modality)
    "asr": ("Transcribe this. This is input: <sosp><1><2><eosp>", None),
    "tts": ("Read this aloud. This is input: hello there", None),
    "speech_to_speech": ("<sosp><3><4><eosp>", "speech"),
    "text_to_text": ("What is two plus two?", "text"),
}
HUMAN_TURNS = {  # kind -> the human turn in this package's wording (speechgpt and chat_template)
    "asr": REQUESTS["asr"][0],
    "tts": REQUESTS["tts"][0],
    "speech_to_speech": S2S_WORDS,
    "text_to_text": T2T_WORDS,
}
EXPECTED = {
    "speechgpt": {kind: f"{SYSTEM}[Human]: {turn} <eoh>. [SpeechGPT]:" for kind, turn in HUMAN_TURNS.items()},
    "release": {
        "asr": f"{SYSTEM}[Human]: Transcribe this. This is input: <sosp><1><2><eosp><eoh> [SpeechGPT]:",
        "tts": f"{SYSTEM}[Human]: Read this aloud. This is input: hello there<eoh> [SpeechGPT]:",
        "speech_to_speech": f"{SYSTEM}[Human]: <sosp><3><4><eosp><eoh>. [SpeechGPT]:",
        "text_to_text": f"{SYSTEM}[Human]: What is two plus two?<eoh>. [SpeechGPT]:",
    },
    "chat_template": {
        kind: f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{turn}<|im_end|>\n<|im_start|>assistant\n"
        for kind, turn in HUMAN_TURNS.items()
    },
}


def _instruct_tokenizer(chat_template: str = CHATML):
    """The tiny BPE tokenizer with ChatML's turn tokens and a chat template, as an instruct base LLM has them."""
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = chat_template
    return tokenizer


@pytest.fixture(scope="module")
def expanded():
    """(model, tokenizer): a tiny instruct-style LM expanded with NUM_UNITS units."""
    tokenizer = _instruct_tokenizer()
    return add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=NUM_UNITS)


def _processor(expanded, prompt_format: str) -> SpeechGPTProcessor:
    return SpeechGPTProcessor(expanded[1], num_units=NUM_UNITS, system_prompt=SYSTEM, prompt_format=prompt_format)


@pytest.mark.parametrize("prompt_format", list(EXPECTED))
@pytest.mark.parametrize("kind", list(REQUESTS))
def test_each_form_renders_each_kind_of_request(expanded, prompt_format, kind):
    processor = _processor(expanded, prompt_format)
    instruction, output_modality = REQUESTS[kind]
    prompt = processor.build_prompt(instruction, output_modality=output_modality)
    assert prompt == EXPECTED[prompt_format][kind]
    messages = [{"role": "user", "content": [{"type": "text", "text": instruction}]}]
    wanted = {} if output_modality is None else {"output_modality": output_modality}
    assert processor.apply_chat_template(messages, add_generation_prompt=True, **wanted) == prompt  # one definition


@pytest.mark.parametrize("prompt_format", list(EXPECTED))
def test_the_chat_template_renders_earlier_turns_as_build_prompt_does(expanded, prompt_format):
    processor = _processor(expanded, prompt_format)
    history = [
        (REQUESTS["asr"][0], "one two"),
        (processor.chain_of_modality_request("<sosp><5><eosp>", "text"), "[tq] how are you; [ta] fine"),
    ]
    prompt = processor.build_prompt("Say hi", history=history)
    assert processor.apply_chat_template(history_messages(history, "Say hi"), add_generation_prompt=True) == prompt
    if prompt_format == "release":  # the release's turn endings: "<eoa> " after a cross-modal turn, "<eoa>." else
        assert (
            "one two<eoa> [Human]: <sosp><5><eosp><eoh>. [SpeechGPT]: [tq] how are you; [ta] fine<eoa>. [Human]: Say hi<eoh>."
            in prompt
        )


def _speech_to_speech_row(system_prompt: str = SYSTEM) -> dict:
    turn = make_turn(
        "speech_to_speech",
        instruction="what is up",
        input_text="what is up",
        input_units=[3, 4],
        output_text="all good",
        output_units=[5, 6],
    )
    return render_row("s2s-0", [turn], system_prompt)


def _asr_row(system_prompt: str = SYSTEM) -> dict:
    turn = make_turn("asr", "Transcribe this.", "one two", [1, 2], output_text="one two")
    return render_row("asr-0", [turn], system_prompt)


def test_training_rows_render_in_each_form_as_inference_prompts_them(expanded):
    row = _speech_to_speech_row()
    speechgpt = prompt_completion_for(row, _processor(expanded, "speechgpt"))
    assert speechgpt == {"prompt": row["prompt"], "completion": row["completion"]}  # what the builder stored
    release = prompt_completion_for(row, _processor(expanded, "release"))
    assert release == {
        "prompt": f"{SYSTEM}[Human]: <sosp><3><4><eosp><eoh>. [SpeechGPT]:",
        "completion": " what is up; [ta] all good; [ua] <sosp><5><6><eosp><eoa>.",
    }
    assert release["prompt"] + release["completion"] == SYSTEM + original_turn(row)  # the release's own layout
    chat = prompt_completion_for(row, _processor(expanded, "chat_template"))
    assert chat["prompt"] == EXPECTED["chat_template"]["speech_to_speech"]
    assert chat["completion"] == "[tq] what is up; [ta] all good; [ua] <sosp><5><6><eosp><|im_end|>"
    for prompt_format, rendered in (("release", release), ("chat_template", chat)):
        asked = _processor(expanded, prompt_format).build_prompt("<sosp><3><4><eosp>", output_modality="speech")
        assert rendered["prompt"] == asked  # trained on exactly what it is prompted with
    asr = prompt_completion_for(_asr_row(), _processor(expanded, "release"))
    assert asr["prompt"] + asr["completion"] == SYSTEM + original_turn(_asr_row())


def _dataset_folder(root, rows: list[dict], features=FEATURES):
    (root / "cross_modal").mkdir(parents=True)
    Dataset.from_list(rows, features=features).to_parquet(root / "cross_modal" / "train-00000-of-00001.parquet")
    return root


def _stage2(tmp_path, folder) -> SpeechGPTTrainingConfig:
    return SpeechGPTTrainingConfig(
        stage="cross_modal",
        model_name_or_path="unused",
        dataset_name=str(folder),
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        report_to="none",
    )


def test_the_stage_renders_rows_in_the_processors_form(expanded, tmp_path):
    folder = _dataset_folder(
        tmp_path / "data", [_asr_row("Stored prompt.\n"), _speech_to_speech_row("Stored prompt.\n")]
    )
    config = _stage2(tmp_path, folder)
    release = load_stage_dataset(config, _processor(expanded, "release"))
    assert release.column_names == ["prompt", "completion"]
    assert release[1] == {
        "prompt": f"{SYSTEM}[Human]: <sosp><3><4><eosp><eoh>. [SpeechGPT]:",
        "completion": " what is up; [ta] all good; [ua] <sosp><5><6><eosp><eoa>.",
    }
    assert (
        release[0]["prompt"] == f"{SYSTEM}[Human]: Transcribe this. This is input: <sosp><1><2><eosp><eoh> [SpeechGPT]:"
    )
    assert release[0]["completion"] == " one two<eoa> "
    stored = load_stage_dataset(config)  # without a processor: the text as the builder wrote it
    assert stored[0]["prompt"].startswith("Stored prompt.\n[Human]: ")


def test_rows_without_structured_fields_train_only_in_the_package_form(expanded, tmp_path):
    texts = [{"prompt": _asr_row()["prompt"], "completion": _asr_row()["completion"]}]
    folder = tmp_path / "data"
    (folder / "cross_modal").mkdir(parents=True)
    Dataset.from_list(texts).to_parquet(folder / "cross_modal" / "train-00000-of-00001.parquet")
    config = _stage2(tmp_path, folder)
    assert load_stage_dataset(config, _processor(expanded, "speechgpt"))[0] == texts[0]
    with pytest.raises(ValueError, match="'release', which needs the structured fields"):
        load_stage_dataset(config, _processor(expanded, "release"))


def test_a_template_that_writes_the_bos_gets_it_once(expanded, tmp_path):
    template = "{{ bos_token }}" + CHATML
    processor = SpeechGPTProcessor(
        expanded[1], num_units=NUM_UNITS, prompt_format="chat_template", base_chat_template=template
    )
    prompt = processor.build_prompt("hi")
    bos = processor.tokenizer.bos_token_id
    ids = processor(prompt)["input_ids"][0]
    assert prompt.startswith("<s><|im_start|>") and ids[0] == bos and ids[1] != bos
    rows = load_stage_dataset(_stage2(tmp_path, _dataset_folder(tmp_path / "data", [_asr_row()])), processor)
    assert rows[0]["prompt"].startswith("<|im_start|>system")  # the trainer's tokenizer adds the BOS itself
    trained = processor.tokenizer(rows[0]["prompt"])["input_ids"]
    assert trained[0] == bos and trained[1] != bos


@pytest.mark.parametrize("prompt_format", list(EXPECTED))
def test_the_form_survives_a_save_and_load(expanded, prompt_format, tmp_path):
    model, _ = expanded
    processor = _processor(expanded, prompt_format)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "processor_config.json").read_text())["prompt_format"] == prompt_format
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert loaded.prompt_format == prompt_format
    for instruction, output_modality in REQUESTS.values():
        assert loaded.build_prompt(instruction, output_modality=output_modality) == processor.build_prompt(
            instruction, output_modality=output_modality
        )
    if prompt_format == "chat_template":  # the tokenizer's saved template is now SpeechGPT's; the base one is kept
        assert AutoTokenizer.from_pretrained(tmp_path).chat_template != CHATML
        assert loaded.base_chat_template == CHATML
    chat = SpeechGPTChat.from_pretrained(str(tmp_path))
    chat.generation_kwargs = {"max_new_tokens": 2, "do_sample": False}
    reply = chat.respond(text="What is two plus two?", output_modality="text")
    assert reply.prompt == EXPECTED[prompt_format]["text_to_text"]  # the chat prompts in the recorded form


def test_an_answer_ends_at_the_templates_end_of_turn(expanded):
    processor = _processor(expanded, "chat_template")
    answer = processor.parse("[tq] hi; [ta] hello; [ua] <sosp><1><2><eosp><|im_end|>\n<|im_start|>user")
    assert (answer.transcript, answer.text, answer.units, answer.complete) == ("hi", "hello", [1, 2], True)


def test_unknown_forms_and_missing_templates_are_refused():
    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=4)
    with pytest.raises(ValueError, match="prompt_format must be one of 'speechgpt', 'release', 'chat_template'"):
        SpeechGPTProcessor(tokenizer, num_units=4, prompt_format="llama")
    with pytest.raises(ValueError, match="the tokenizer has none: expand an instruct model"):
        SpeechGPTProcessor(tokenizer, num_units=4, prompt_format="chat_template")


# A converted tiny checkpoint in the original release's layout, evaluated through the release's prompt form.

RELEASE_PROMPT = "You are SpeechGPT.\n- It hears and speaks.\n- It answers briefly.\n"


class _FixedUnits:
    """A unit tokenizer stand-in that hears every recording as the units 7 8 9."""

    class _Sequence:
        units = [7, 8, 9]

    def encode(self, audio, sampling_rate=None):
        return self._Sequence()


@pytest.fixture(scope="module")
def converted_release(tmp_path_factory):
    """A tiny Llama whose vocabulary was expanded as SpeechGPT-7B's was (the units, then six markers, no <eoa>),
    converted with the release's system prompt."""
    root = tmp_path_factory.mktemp("release")
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_tokens([f"<{u}>" for u in range(1000)])
    tokenizer.add_tokens(list(ORIGINAL_MARKERS.values()))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root / "original")
    tokenizer.save_pretrained(root / "original")
    return convert_speechgpt(root / "original", root / "converted", system_prompt=RELEASE_PROMPT)


def _release_chat(folder, monkeypatch) -> tuple[SpeechGPTChat, list]:
    chat = SpeechGPTChat.from_pretrained(str(folder), unit_tokenizer=_FixedUnits())
    chat.generation_kwargs = {"max_new_tokens": 2, "min_new_tokens": 0, "do_sample": False}
    seen, generate = [], chat.model.generate

    def spy(**kwargs):
        seen.append(kwargs["input_ids"][0].tolist())
        return generate(**kwargs)

    monkeypatch.setattr(chat.model, "generate", spy)
    return chat, seen


def test_a_converted_release_is_evaluated_through_the_release_form(converted_release, monkeypatch):
    chat, seen = _release_chat(converted_release, monkeypatch)
    processor = chat.processor
    assert processor.prompt_format == "release" and processor.system_prompt == RELEASE_PROMPT
    audio = np.zeros(1600, dtype=np.float32)
    questions = [SpokenQuestion("q0", "What is up?", ["fine"])]
    evaluate_spoken_qa(chat, questions, [SpeechItem("q0", "what is up", audio)], judges=None, progress=False)
    evaluate_asr(chat, [SpeechItem("a0", "one two", audio)], None, "Transcribe this.", progress=False)
    spoken_qa = RELEASE_PROMPT + "[Human]: <sosp><7><8><9><eosp><eoh>. [SpeechGPT]:"
    written_qa = RELEASE_PROMPT + "[Human]: What is up?<eoh>. [SpeechGPT]:"  # spoken QA's text baseline, if asked
    asr = RELEASE_PROMPT + "[Human]: Transcribe this. This is input: <sosp><7><8><9><eosp><eoh> [SpeechGPT]:"
    forms = {processor.decode(ids, skip_special_tokens=True): ids for ids in seen}
    assert spoken_qa in forms and asr in forms and set(forms) <= {spoken_qa, written_qa, asr}
    for text, ids in forms.items():  # the ids generate saw are exactly the processor's encoding of that text
        assert ids == processor(text)["input_ids"][0]
    package_form = (
        processor.system_prompt + "[Human]: " + S2S_WORDS.replace("<3><4>", "<7><8><9>") + " <eoh>. [SpeechGPT]:"
    )
    assert seen[0] != processor(package_form)["input_ids"][0]
