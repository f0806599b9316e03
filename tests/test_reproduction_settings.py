"""Reproduction settings refuse what no run could use, by name, before any step starts."""

import pytest

from speechgpt_hf.reproduction import PRESETS
from speechgpt_hf.reproduction.settings import UNIT_ENCODERS, VOCODERS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vocoder": "wavenet"}, "vocoder must be one of"),
        ({"unit_encoder": "hubert"}, "unit_encoder must be one of"),
        ({"prompt_format": "alpaca"}, "alpaca"),
        ({"task_descriptions": 0}, "task_descriptions must be at least 1"),
        ({"num_train": 5}, "at least 10 training"),
        ({"not_a_setting": 1}, "Unknown reproduction setting"),
    ],
)
def test_bad_settings_are_refused_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        PRESETS["quickstart"].override(**change)


def test_presets_use_known_parts():
    assert "whisper-base" in UNIT_ENCODERS and VOCODERS[0] == "unit_mel"
    assert {name: PRESETS[name].vocoder for name in PRESETS} == dict.fromkeys(PRESETS, "unit_mel")
    pretrained = PRESETS["pretrained"]
    assert pretrained.base_model == "smollm2" and pretrained.unit_encoder == "whisper-base"
    assert pretrained.prompt_format == "chat_template" and pretrained.lora_all_stages and pretrained.knowledge_questions
    assert PRESETS["quickstart"].unit_layer == 2 and PRESETS["quickstart"].base_model is None


# The width each encoder's features have: a setting whose tokenizer came out another width was not honoured.
ENCODER_WIDTHS = {"whisper-tiny.en": 384, "whisper-base": 512, "mfcc": 39}


@pytest.mark.parametrize("encoder", UNIT_ENCODERS)
def test_each_unit_encoder_setting_builds_that_encoder(encoder):
    from speechgpt_hf.reproduction.pipeline import _new_unit_tokenizer

    settings = PRESETS["quickstart"].override(unit_encoder=encoder, unit_layer=3, num_units=16)
    tokenizer = _new_unit_tokenizer(settings)
    config = tokenizer.config
    assert (config.feature_dim, config.num_units, tuple(tokenizer.centroids.shape)) == (
        ENCODER_WIDTHS[encoder],
        16,
        (16, ENCODER_WIDTHS[encoder]),
    )
    if encoder != "mfcc":
        assert config.layer == 3 and config.encoder_config.num_hidden_layers == 3
    # what the run records names the encoder it loaded, not the setting's string
    assert str(ENCODER_WIDTHS[encoder]) in config.features_description or encoder == "mfcc"
