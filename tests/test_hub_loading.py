"""Loading by repo id from an offline Hub cache, and by trust_remote_code where the plugin is not imported."""

import json
import os
import subprocess
import sys
import textwrap

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoProcessor

from speechgpt_hf import SpeechGPTConfig, SpeechGPTForCausalLM, SpeechGPTProcessor


def test_every_class_loads_by_repo_id_offline(tiny_speechgpt, tmp_path, local_hub):
    model, processor = tiny_speechgpt()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    repo = local_hub(tmp_path, "speechgpt-hf-tests/tiny-speechgpt")
    assert isinstance(AutoConfig.from_pretrained(repo), SpeechGPTConfig)
    assert isinstance(AutoModelForCausalLM.from_pretrained(repo), SpeechGPTForCausalLM)
    assert isinstance(AutoProcessor.from_pretrained(repo), SpeechGPTProcessor)


def test_saved_repo_carries_auto_map_and_loads_with_trust_remote_code(tiny_speechgpt, tmp_path):
    model, processor = tiny_speechgpt()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_speechgpt.SpeechGPTForCausalLM"
    batch = processor("hi <sosp><1><2><eosp>", return_tensors="pt")
    expected = model(**batch).logits[0, -1, :5].tolist()
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModelForCausalLM, AutoProcessor
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert "speechgpt_hf" not in sys.modules, "the plugin must not be needed"
        batch = processor("hi <sosp><1><2><eosp>", return_tensors="pt")
        print(type(model).__name__, type(processor).__name__, model(**batch).logits[0, -1, :5].tolist())
        """
    )
    env = {**os.environ, "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("SpeechGPTForCausalLM SpeechGPTProcessor")
    torch.testing.assert_close(torch.tensor(eval(line.split(" ", 2)[2])), torch.tensor(expected))
