"""A system from its three models (assemble_system, `speechgpt-hf assemble`), the top-level entry points, and the Hub
options SpeechGPTChat.from_pretrained passes on."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

import speechgpt_hf
import speechgpt_hf_cli
from speechgpt_hf import SpeechGPTChat, SpeechGPTProcessor, add_speech_units, assemble_system
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer, build_tiny_vocoder

NUM_UNITS = 16


@pytest.fixture
def parts(tmp_path):
    """tmp/work/{lm, units, vocoder, vocoder-32}: a trained stage's folder (no components named) and the models
    beside it."""
    root = tmp_path / "work"
    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=NUM_UNITS)
    model.save_pretrained(root / "lm")
    SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS).save_pretrained(root / "lm")
    (root / "lm" / "checkpoint-5").mkdir()  # training state a system leaves behind
    SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS)).save_pretrained(
        root / "units"
    )
    build_tiny_vocoder(NUM_UNITS).save_pretrained(root / "vocoder")
    build_tiny_vocoder(32).save_pretrained(root / "vocoder-32")
    return root


def test_an_assembled_system_loads_in_one_call_and_speaks(parts):
    system = assemble_system(
        parts / "lm", unit_tokenizer=parts / "units", vocoder=parts / "vocoder", output_dir=parts / "system"
    )
    assert system == parts / "system" and not (system / "checkpoint-5").exists()
    stored = json.loads((system / "config.json").read_text())
    assert (stored["unit_tokenizer_repo"], stored["vocoder_repo"]) == ("../units", "../vocoder")  # it can move
    assert json.loads((parts / "lm" / "config.json").read_text())["vocoder_repo"] is None  # the LM folder is untouched
    moved = parts.parent / "moved"
    shutil.move(parts, moved)
    chat = SpeechGPTChat.from_pretrained(str(moved / "system"))
    assert isinstance(chat.unit_tokenizer, SpeechUnitTokenizer) and chat.vocoder is not None
    assert chat.processor.unit_tokenizer_repo == str((moved / "units").resolve())
    reply = chat.respond(text="Say hi.", max_new_tokens=4)
    assert reply.response is not None


def test_assembling_in_place_keeps_what_it_is_not_given(parts):
    assemble_system(parts / "lm", unit_tokenizer=parts / "units")
    assemble_system(parts / "lm", vocoder=parts / "vocoder")
    stored = json.loads((parts / "lm" / "config.json").read_text())
    assert (stored["unit_tokenizer_repo"], stored["vocoder_repo"]) == ("../units", "../vocoder")
    processor = SpeechGPTProcessor.from_pretrained(parts / "lm")
    assert processor.vocoder_repo == str((parts / "vocoder").resolve())


def test_components_that_do_not_fit_the_lm_are_refused(parts):
    with pytest.raises(ValueError, match="32 units but the LM has 16"):
        assemble_system(parts / "lm", vocoder=parts / "vocoder-32")
    with pytest.raises(ValueError, match="not one of speechgpt_unit_tokenizer"):
        assemble_system(parts / "lm", unit_tokenizer=parts / "vocoder")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        assemble_system(parts / "units-missing", vocoder=parts / "vocoder")
    with pytest.raises(FileExistsError, match="not empty"):
        assemble_system(parts / "lm", vocoder=parts / "vocoder", output_dir=parts / "units")


def test_the_assemble_verb(parts, capsys):
    argv = [
        "assemble",
        str(parts / "lm"),
        "--unit-tokenizer",
        str(parts / "units"),
        "--vocoder",
        str(parts / "vocoder"),
    ]
    assert speechgpt_hf_cli.main([*argv, "--output-dir", str(parts / "system")]) == 0
    assert "speechgpt-hf chat" in capsys.readouterr().out
    assert json.loads((parts / "system" / "config.json").read_text())["vocoder_repo"] == "../vocoder"


def test_every_top_level_name_exists_and_the_heavy_ones_load_on_first_use():
    missing = [name for name in speechgpt_hf.__all__ if not hasattr(speechgpt_hf, name)]
    assert not missing and len(set(speechgpt_hf.__all__)) == len(speechgpt_hf.__all__)
    from speechgpt_hf.training.sft import train_stage

    assert speechgpt_hf.train_stage is train_stage
    code = "import sys, speechgpt_hf; print('trl' in sys.modules, 'speechgpt_hf.evaluation.harness' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.split() == ["False", "False"]


def test_chat_passes_revision_and_token_to_the_lm_the_processor_and_the_components(parts, monkeypatch):
    from transformers import AutoModel, AutoModelForCausalLM, AutoProcessor

    assemble_system(parts / "lm", unit_tokenizer=parts / "units", vocoder=parts / "vocoder")
    seen = {}

    def spy(name, original):
        def load(*args, **kwargs):
            seen[name] = {key: kwargs.get(key) for key in ("revision", "token", "local_files_only")}
            return original(*args, **kwargs)

        return load

    for name, factory in (("lm", AutoModelForCausalLM), ("processor", AutoProcessor), ("component", AutoModel)):
        monkeypatch.setattr(factory, "from_pretrained", spy(name, factory.from_pretrained))
    chat = SpeechGPTChat.from_pretrained(str(parts / "lm"), revision="v1", token="hf_secret", local_files_only=True)
    assert chat.vocoder is not None
    assert seen["lm"] == seen["processor"] == {"revision": "v1", "token": "hf_secret", "local_files_only": True}
    assert seen["component"] == {"revision": None, "token": "hf_secret", "local_files_only": True}
