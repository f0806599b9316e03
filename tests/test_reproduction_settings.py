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
    assert pretrained.base_model == "smollm2" and pretrained.spliced_asr_rows and pretrained.bf16 == "auto"
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


# What each preset recorded in settings.json before these values moved into the recipes: a run resumes only when its
# settings match, and each stage must train as it did.
RECORDED_FROM_RECIPES = {
    "hour": {"lora_all_stages": False, "unit_row_spread": 0.1, "replay_fraction": 3.0, "cross_modal_replay_fraction": 0},
    "quickstart": {"lora_all_stages": False, "unit_row_spread": 0.1, "replay_fraction": 3.0,
                   "cross_modal_replay_fraction": 0},
    "pretrained": {"lora_all_stages": True, "unit_row_spread": 1.0, "replay_fraction": 3.0,
                   "cross_modal_replay_fraction": 0.4},
}  # fmt: skip


@pytest.mark.parametrize("preset", sorted(RECORDED_FROM_RECIPES))
def test_each_preset_records_the_recipe_values_it_trains_with(preset):
    recorded = PRESETS[preset].to_dict()
    assert {name: recorded[name] for name in RECORDED_FROM_RECIPES[preset]} == RECORDED_FROM_RECIPES[preset]


def test_the_recipes_values_are_refused_as_settings():
    with pytest.raises(ValueError, match=r"come from the stages' recipes"):
        PRESETS["quickstart"].override(replay_fraction=1.0)


def _configs(settings, output):
    from speechgpt_hf.reproduction.pipeline import stage_config
    from speechgpt_hf.stages import STAGES

    return [stage_config(output, settings, stage) for stage in STAGES]


def test_the_pretrained_run_trains_each_stage_as_before(tmp_path):
    stage1, stage2, stage3 = _configs(PRESETS["pretrained"].override(base_model=str(tmp_path / "base")), tmp_path)
    for config in (stage1, stage2):
        assert config.use_lora and config.train_unit_embeddings and config.unit_embedding_learning_rate == 1e-2
        assert {"q_proj", "v_proj", "down_proj"} <= set(config.lora_target_modules)
    assert stage1.unit_row_spread == 1.0 and stage1.replay_config is None
    assert (stage2.replay_config, stage2.replay_fraction) == ("chain_of_modality", 0.4)
    assert stage3.use_lora and not stage3.train_unit_embeddings
    assert (stage3.replay_config, stage3.replay_fraction) == ("cross_modal", 3.0)
    # the sizes are the reproduction's own
    assert [c.max_steps for c in (stage1, stage2, stage3)] == [
        1,
        600,
        30,
    ]  # stage 1 expands the base and learns the BPE
    assert {c.learning_rate for c in (stage1, stage2, stage3)} == {5e-4} and stage2.max_length == 1024


def test_the_quickstart_trains_stages_1_and_2_fully_and_stage3_with_replay(tmp_path):
    stage1, stage2, stage3 = _configs(PRESETS["quickstart"], tmp_path)
    assert not (stage1.use_lora or stage2.use_lora) and stage2.replay_config is None
    assert stage1.unit_row_spread == 0.1 and not stage1.packing
    assert stage3.use_lora and (stage3.replay_config, stage3.replay_fraction) == ("cross_modal", 3.0)
    assert stage3.per_device_train_batch_size == 8 and stage3.max_steps == 60


def test_the_reproduction_takes_the_method_from_the_recipe_files(tmp_path, monkeypatch):
    import shutil

    from speechgpt_hf.training import stage_recipes

    recipes = tmp_path / "recipes"
    shutil.copytree(stage_recipes.RECIPES_DIR, recipes)
    stage3 = recipes / "stage3_chain_of_modality.yaml"
    stage3.write_text(stage3.read_text().replace("replay_fraction: 3.0", "replay_fraction: 1.5"))
    spread = recipes / "pretrained_lora" / "stage1_modality_adaptation.yaml"
    spread.write_text(spread.read_text().replace("unit_row_spread: 1.0", "unit_row_spread: 0.7"))
    monkeypatch.setattr(stage_recipes, "RECIPES_DIR", recipes)
    settings = PRESETS["pretrained"].override(base_model=str(tmp_path / "base"))
    stage1, _, stage3_config = _configs(settings, tmp_path / "run")
    assert (stage1.unit_row_spread, stage3_config.replay_fraction) == (0.7, 1.5)
    assert (settings.to_dict()["unit_row_spread"], settings.to_dict()["replay_fraction"]) == (0.7, 1.5)
