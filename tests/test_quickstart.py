"""The quickstart runs the whole recipe end to end (few steps) and leaves loadable repos behind."""

import json
from pathlib import Path

from transformers import AutoModel, AutoModelForCausalLM

import speechgpt_hf_cli
from speechgpt_hf.models.speechgpt.prompt_format import Modality, parse_chain_of_modality_instruction


def test_quickstart_runs_the_whole_recipe(tmp_path, capsys):
    args = ["quickstart", "--output-dir", str(tmp_path), "--num-units", "32", "--lm-steps", "3", "--vocoder-steps", "2"]
    assert speechgpt_hf_cli.main(args) == 0
    out = capsys.readouterr().out
    steps = ("voiced 16 sentences", "unit tokenizer", "SpeechInstruct rows", "stage chain_of_modality", "vocoder:", "asked aloud")
    for step in steps:
        assert step in out, step
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["talk"]["question"] and summary["talk"]["expected_answer"]
    assert set(summary["speechinstruct_rows"]) == {"modality_adaptation", "cross_modal", "chain_of_modality"}
    assert summary["speechinstruct_rows"]["chain_of_modality"]["train"] == 4 * 12  # the four formats of 12 pairs
    assert parse_chain_of_modality_instruction(summary["talk"]["request"])[1:] == (Modality.SPEECH, Modality.SPEECH)
    model = AutoModelForCausalLM.from_pretrained(summary["repos"]["speechgpt"])
    assert model.config.num_units == 32
    assert model.config.vocoder_repo.startswith("../")  # stored relative to the model: the output folder can move
    assert model.config.resolve_component_path("vocoder_repo") == str(Path(summary["repos"]["vocoder"]).resolve())
    assert AutoModel.from_pretrained(summary["repos"]["vocoder"]).config.num_units == 32
    assert AutoModel.from_pretrained(summary["repos"]["unit_tokenizer"]).config.num_units == 32
