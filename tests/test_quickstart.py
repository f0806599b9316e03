"""The quickstart runs end to end on the embedded default and leaves a loadable repo behind."""

from transformers import AutoModelForCausalLM

import speechgpt_hf_cli


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    assert speechgpt_hf_cli.main(["quickstart", "--output-dir", str(tmp_path), "--num-units", "30"]) == 0
    out = capsys.readouterr().out
    assert "loaded back through the Auto classes: SpeechGPTForCausalLM, SpeechGPTProcessor" in out
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "speechgpt-tiny")
    assert model.config.num_units == 30
