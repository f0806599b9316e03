"""Model cards: every repo the package writes gets a README rendered from hub_cards/ with its real facts."""

import json
from pathlib import Path

import pytest
from datasets import Dataset
from huggingface_hub import ModelCard

import speechgpt_hf_cli
from speechgpt_hf import format_cross_modal_instruction, format_turn, units_to_string
from speechgpt_hf.hub.cards import PROVENANCE_FILE, TEMPLATES, record_provenance, template_path, write_model_card
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer
from speechgpt_hf.training.sft import SpeechGPTTrainingConfig, train_stage
from speechgpt_hf.training.vocoder.config import VocoderTrainingConfig
from speechgpt_hf.training.vocoder.trainer import write_vocoder_card

NUM_UNITS = 12
RESULTS = {
    "model": "x",
    "judge": "pocketsphinx",
    "config": {"dataset": "someone/spoken-digits"},
    "tasks": {
        "asr": {"metrics": {"wer": 0.25, "cer": 0.125, "reference_judge_wer": 0.1}, "not_run": None},
        "tts": {"metrics": {}, "not_run": "no speech dataset given (pass `dataset=`)"},
    },
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny SpeechGPT expanded from a base LM and trained 4 steps of stage 2 on 8 rows."""
    root = tmp_path_factory.mktemp("card")
    base = root / "base"
    tokenizer = build_tiny_tokenizer()
    build_tiny_causal_lm(vocab_size=len(tokenizer)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    rows = [
        {
            "prompt": format_turn(format_cross_modal_instruction("Transcribe.", units_to_string([i, i + 1]))),
            "completion": f"number {i}<eoa>",
        }
        for i in range(8)
    ]
    (root / "data" / "cross_modal").mkdir(parents=True)
    Dataset.from_list(rows).to_parquet(root / "data" / "cross_modal" / "train-00000-of-00001.parquet")
    (root / "data" / "README.md").write_text(
        "---\nconfigs:\n- config_name: cross_modal\n  data_files:\n  - split: train\n    path: cross_modal/*.parquet\n---\n"
    )
    config = SpeechGPTTrainingConfig(
        stage="cross_modal",
        base_model_name_or_path=str(base),
        num_units=NUM_UNITS,
        dataset_name=str(root / "data"),
        output_dir=str(root / "model"),
        max_steps=4,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        max_length=64,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
    )
    return train_stage(config)


def test_a_trained_model_card_holds_its_real_training_facts(trained):
    card = ModelCard.load(trained / "README.md")
    assert card.data.model_name == "model" and card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "any-to-any" and card.data.license == "other"
    assert card.data.base_model is None  # a local base model is named in the text, never as a Hub id
    text = " ".join(card.text.split())
    assert f"{NUM_UNITS} discrete speech units" in text
    assert "llama causal language model" in text and "2 layers, hidden size 32" in text
    assert "**stage 2: cross modal** (speechgpt-hf train): full fine-tuning; 4 steps of batch 4" in text
    assert "on 8 sequences of local folder data (cross_modal, train)" in text
    assert "learning rate 0.001 (linear), max length 64" in text and "| unit tokenizer | not recorded |" in text
    loss = json.loads((trained / "train_results.json").read_text())["train_loss"]
    assert f"train_loss {round(loss, 4)}" in text
    assert "Not evaluated yet" in text and "model-index" not in (trained / "README.md").read_text()


def test_evaluation_results_beside_the_model_become_the_model_index(trained, tmp_path):
    (trained / "results.json").write_text(json.dumps(RESULTS))
    try:
        write_model_card(trained, repo_id="me/tiny-speechgpt")
    finally:
        (trained / "results.json").unlink()
    card = ModelCard.load(trained / "README.md")
    found = {(r.task_type, r.metric_type): r for r in card.data.eval_results}
    assert set(found) == {("automatic-speech-recognition", "wer"), ("automatic-speech-recognition", "cer")}
    wer = found["automatic-speech-recognition", "wer"]
    assert wer.metric_value == 0.25 and wer.dataset_type == "someone/spoken-digits"
    assert card.data.model_name == "tiny-speechgpt"
    assert "| Speech recognition | wer | 0.25 |" in card.text and "reference_judge_wer" not in card.text
    assert 'SpeechGPTChat.from_pretrained("me/tiny-speechgpt")' in card.text


def test_the_card_verb_renders_a_given_results_file(trained, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(RESULTS))
    assert speechgpt_hf_cli.main(["card", str(trained), "--results", str(results), "--license", "apache-2.0"]) == 0
    card = ModelCard.load(trained / "README.md")
    assert card.data.license == "apache-2.0" and len(card.data.eval_results) == 2


def test_a_later_stage_inherits_the_earlier_steps_and_a_rerun_replaces_its_own(tmp_path):
    parent, child = tmp_path / "stage1", tmp_path / "stage2"
    record_provenance(parent, {"name": "stage 1", "made_by": "a", "summary": "first", "base_model": "org/base"})
    record_provenance(child, {"name": "stage 2", "made_by": "b", "summary": "second"}, inherit_from=parent)
    record_provenance(child, {"name": "stage 2", "made_by": "b", "summary": "second, rerun"}, inherit_from=parent)
    steps = json.loads((child / PROVENANCE_FILE).read_text())["steps"]
    assert [s["summary"] for s in steps] == ["first", "second, rerun"]


def test_unit_tokenizer_and_vocoder_cards_describe_the_model(tmp_path):
    units = tmp_path / "units"
    SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=8)).save_pretrained(units)
    record_provenance(
        units,
        {
            "name": "codebook fit",
            "made_by": "speechgpt-hf fit-units",
            "summary": "k-means",
            "facts": {"fit frames": 900},
        },
    )
    card = ModelCard.load(write_model_card(units))
    assert "into 8 discrete units" in " ".join(card.text.split()) and "| fit frames | 900 |" in card.text
    assert "- **codebook fit** (speechgpt-hf fit-units): k-means" in card.text
    assert card.data.pipeline_tag == "feature-extraction" and card.data.license == "apache-2.0"
    vocoder = tmp_path / "vocoder"
    UnitHiFiGANVocoder(UnitHiFiGANConfig(num_units=8, num_speakers=2, upsample_initial_channel=32)).save_pretrained(
        vocoder
    )
    card = ModelCard.load(write_vocoder_card(VocoderTrainingConfig(output_dir=str(vocoder), max_steps=50), 6, 20))
    assert "| training utterances | 6 |" in card.text and "| training steps | 20 |" in card.text
    assert "(speechgpt-hf train-vocoder): 20 of 50 steps from scratch, batch 16" in card.text
    text = " ".join(card.text.split())
    assert "turns 8 discrete speech units into 16000 Hz audio in 2 voices" in text


def test_a_folder_without_a_package_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type is 'bert'"):
        write_model_card(tmp_path)


def test_templates_come_from_the_top_level_folder_and_ship_in_the_wheel(monkeypatch):
    from setuptools import Distribution

    root = Path(__file__).resolve().parents[1]
    for name in [*TEMPLATES.values(), "speechinstruct_card.md"]:
        assert template_path(name).parent in (root / "hub_cards", root / "speechgpt_hf" / "hub_cards")
        assert (root / "hub_cards" / name).is_file()
    from distutils.core import run_setup

    monkeypatch.chdir(root)
    dist: Distribution = run_setup(str(root / "setup.py"), stop_after="init")
    assert dist.package_dir["speechgpt_hf.hub_cards"] == "hub_cards"
    assert "speechgpt_hf.hub_cards" in dist.packages and "speechgpt_hf.hub" in dist.packages
