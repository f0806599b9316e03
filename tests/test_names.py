"""One name per thing (docs/names.md): the public name works, and each former or transformers-required spelling is
the same thing, not a copy."""

import argparse
import importlib

import pytest

import speechgpt_hf_cli
from speechgpt_hf import SpeechGPTProcessor
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.stages import RECIPES, STAGES


def _unit_tokenizer(num_units: int) -> SpeechUnitTokenizer:
    return SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=num_units))


def test_the_processor_unit_tokenizer_is_its_audio_tokenizer(tiny_speechgpt):
    _, processor = tiny_speechgpt(num_units=16)
    units = _unit_tokenizer(16)
    processor.unit_tokenizer = units
    assert processor.audio_tokenizer is units and processor.unit_tokenizer is units
    other = _unit_tokenizer(16)
    processor.audio_tokenizer = other
    assert processor.unit_tokenizer is other


def test_the_processor_takes_unit_tokenizer_as_an_argument(tiny_speechgpt):
    _, built = tiny_speechgpt(num_units=16)
    units = _unit_tokenizer(16)
    processor = SpeechGPTProcessor(built.tokenizer, num_units=16, unit_tokenizer=units)
    assert processor.audio_tokenizer is units
    assert "unit_tokenizer" not in SpeechGPTProcessor.get_attributes()  # not a second sub-processor to save
    with pytest.raises(ValueError, match="once"):
        SpeechGPTProcessor(built.tokenizer, num_units=16, unit_tokenizer=units, audio_tokenizer=_unit_tokenizer(16))


def test_a_saved_processor_reloads_its_unit_tokenizer_under_both_names(tiny_speechgpt, tmp_path):
    _, processor = tiny_speechgpt(num_units=16)
    _unit_tokenizer(16).save_pretrained(tmp_path / "units")
    processor.unit_tokenizer_repo = str(tmp_path / "units")
    processor.save_pretrained(tmp_path / "lm")
    loaded = SpeechGPTProcessor.from_pretrained(tmp_path / "lm")
    assert isinstance(loaded.unit_tokenizer, SpeechUnitTokenizer) and loaded.unit_tokenizer is loaded.audio_tokenizer


def test_the_former_training_module_is_the_same_module():
    sft = importlib.import_module("speechgpt_hf.training.sft")
    assert importlib.import_module("speechgpt_hf.training.stages") is sft
    from speechgpt_hf.training import RECIPES_DIR, SpeechGPTTrainingConfig, train_stage

    assert (SpeechGPTTrainingConfig, train_stage, RECIPES_DIR) == (
        sft.SpeechGPTTrainingConfig,
        sft.train_stage,
        sft.RECIPES_DIR,
    )


@pytest.mark.parametrize("stage", STAGES)
def test_train_takes_a_recipe_by_its_stage_name_or_its_file_name(stage):
    from speechgpt_hf.training.sft import RECIPES_DIR
    from speechgpt_hf_cli.train import check_required

    by_stage, by_file = (
        check_required(argparse.Namespace(recipe=name, config=None, extra=["--dataset-name", "data/"]))
        for name in (stage, RECIPES[stage])
    )
    assert by_stage == by_file and by_stage[:2] == ["--config", str(RECIPES_DIR / f"{RECIPES[stage]}.yaml")]
    assert (RECIPES_DIR / f"{RECIPES[stage]}.yaml").read_text().count(f"stage: {stage}\n") == 1


@pytest.mark.parametrize("verb", ["extract-units", "fit-units"])
@pytest.mark.parametrize("option", ["--unit-tokenizer", "--tokenizer", "--unit_tokenizer"])
def test_the_unit_tokenizer_option_has_one_name_and_keeps_the_former_one(verb, option, tmp_path):
    args, _ = speechgpt_hf_cli.build_parser().parse_known_args(
        [verb, str(tmp_path), option, "my-units", "--output-dir", str(tmp_path / "out")]
    )
    assert args.unit_tokenizer == "my-units"
