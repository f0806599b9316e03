"""Converting a checkpoint in the original SpeechGPT-7B layout (ids 32000+n for <n>) and its LoRA adapter."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoProcessor, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from speechgpt_hf.convert.convert_speechgpt import ORIGINAL_MARKERS, convert_speechgpt

NUM_UNITS = 1000
MARKERS = tuple(ORIGINAL_MARKERS.values())


def _original_tokenizer(marker_order=MARKERS) -> PreTrainedTokenizerFast:
    """A 32000-entry word-level stand-in for the Llama tokenizer, expanded exactly as the original was."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    words = "what is said in this recording please answer".split()
    vocab.update({w: 3 + i for i, w in enumerate(words)})
    vocab.update({f"w{i}": i for i in range(len(vocab), 32000)})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.add_tokens([f"<{u}>" for u in range(NUM_UNITS)])
    tokenizer.add_tokens(list(marker_order))
    return tokenizer


@pytest.fixture(scope="module")
def original_release(tmp_path_factory):
    """A tiny Llama saved like fnlp/SpeechGPT-7B-cm (pickled .bin) plus a -com style LoRA adapter (.bin)."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    root = tmp_path_factory.mktemp("original")
    tokenizer = _original_tokenizer()
    assert tokenizer.convert_tokens_to_ids("<5>") == 32005 and tokenizer.convert_tokens_to_ids("<eos>") == 33005
    config = LlamaConfig(
        vocab_size=33006,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=2048,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    checkpoint = root / "SpeechGPT-7B-cm"
    config.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    torch.save(model.state_dict(), checkpoint / "pytorch_model.bin")

    lora = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"]))
    for name, parameter in lora.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    adapter = root / "SpeechGPT-7B-com"
    lora.peft_config["default"].save_pretrained(adapter)
    torch.save(get_peft_model_state_dict(lora), adapter / "adapter_model.bin")
    lora.eval()
    ids = torch.tensor([[1, 3, 4, 5, 32000 + 7, 33000, 32000 + 999, 32000 + 3, 33001, 33004, 33003]])
    with torch.no_grad():
        with_adapter = lora(ids).logits
        with lora.disable_adapter():
            without = lora(ids).logits
    return {"checkpoint": checkpoint, "adapter": adapter, "ids": ids, "logits": {"cm": without, "com": with_adapter}}


def test_converted_model_matches_the_original_logits(original_release, tmp_path):
    out = convert_speechgpt(original_release["checkpoint"], tmp_path / "cm")
    model = AutoModelForCausalLM.from_pretrained(out)
    config = model.config
    assert (config.unit_token_offset, config.num_units) == (32000, 1000)
    assert config.special_token_ids == {
        "sosp": 33000,
        "eosp": 33001,
        "human": 33002,
        "speechgpt": 33003,
        "eoh": 33004,
        "eos": 33005,
    }
    assert (out / "model.safetensors").exists() and not list(out.glob("*.bin"))
    with torch.no_grad():
        torch.testing.assert_close(model(original_release["ids"]).logits, original_release["logits"]["cm"])
    assert model.generation_config.temperature == 0.7 and model.generation_config.top_p == 0.8


def test_adapter_is_merged_into_the_converted_weights(original_release, tmp_path):
    out = convert_speechgpt(
        original_release["checkpoint"],
        tmp_path / "com",
        adapter_dir=original_release["adapter"],
        unit_tokenizer_repo="someone/units",
        vocoder_repo="someone/vocoder",
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        logits = model(original_release["ids"]).logits
    torch.testing.assert_close(logits, original_release["logits"]["com"], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(logits, original_release["logits"]["cm"], atol=1e-3)
    processor = AutoProcessor.from_pretrained(out)
    assert processor.encode("<sosp><7><999><eosp>", add_special_tokens=False) == [33000, 32007, 32999, 33001]
    stored = json.loads((out / "processor_config.json").read_text())  # the processor names the config's components
    assert (stored["unit_tokenizer_repo"], stored["vocoder_repo"]) == ("someone/units", "someone/vocoder")


def test_cli_converts_with_a_system_prompt_file(original_release, tmp_path):
    import speechgpt_hf_cli

    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are the original SpeechGPT.\n")
    out = tmp_path / "cli"
    speechgpt_hf_cli.main(
        ["convert", "speechgpt", str(original_release["checkpoint"]), str(out), "--system-prompt-file", str(prompt)]
    )
    assert AutoProcessor.from_pretrained(out).system_prompt == "You are the original SpeechGPT.\n"
    assert json.loads((out / "config.json").read_text())["model_type"] == "speechgpt"


RELEASE_PROMPT = (
    "You are an AI assistant whose name is SpeechGPT.\n"
    "- SpeechGPT is an intrinsic cross-modal conversational language model that is developed by a team.\n"
    "- It can perceive multi-modal inputs and generate multi-modal outputs.\n"
)


def test_cli_takes_the_system_prompt_from_a_speechinstruct_jsonl(original_release, tmp_path):
    import speechgpt_hf_cli
    from speechgpt_hf.inference.chat import SpeechGPTChat

    records = [
        {"prefix": "", "plain_text": "[Human]: hi<eoh> [SpeechGPT]: hello<eoa> "},
        {
            "prefix": RELEASE_PROMPT,
            "plain_text": "[Human]: Say it. This is input: hi<eoh> [SpeechGPT]: <sosp><1><eosp><eoa> ",
        },
        {"prefix": "a later prefix", "plain_text": "[Human]: q<eoh> [SpeechGPT]: a<eoa> "},
    ]
    jsonl = tmp_path / "cross_modal_instruction.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = tmp_path / "with-prompt"
    speechgpt_hf_cli.main(
        ["convert", "speechgpt", str(original_release["checkpoint"]), str(out), "--system-prompt-from", str(jsonl)]
    )
    assert json.loads((out / "processor_config.json").read_text())["system_prompt"] == RELEASE_PROMPT
    chat = SpeechGPTChat.from_pretrained(str(out))
    assert chat.processor.prompt_format == "release"  # the release's own layout: no space before <eoh>
    assert chat.processor.build_prompt("hi") == RELEASE_PROMPT + "[Human]: hi<eoh>. [SpeechGPT]:"


def test_converting_without_a_system_prompt_warns_and_names_the_flag(original_release, tmp_path):
    from speechgpt_hf.convert.convert_speechgpt import read_system_prompt

    with pytest.warns(UserWarning, match="--system-prompt-from"):
        convert_speechgpt(original_release["checkpoint"], tmp_path / "default")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"prefix": "", "plain_text": "x"}) + "\n")
    with pytest.raises(ValueError, match="non-empty `prefix`"):
        read_system_prompt(empty)


def test_a_tokenizer_in_another_layout_is_refused(original_release, tmp_path):
    swapped = original_release["checkpoint"].parent / "swapped"
    swapped.mkdir()
    for path in original_release["checkpoint"].iterdir():
        (swapped / path.name).write_bytes(path.read_bytes())
    order = list(MARKERS)
    order[0], order[1] = order[1], order[0]
    _original_tokenizer(order).save_pretrained(swapped)
    with pytest.raises(ValueError, match="original layout"):
        convert_speechgpt(swapped, tmp_path / "out")


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickles_holding_code_are_never_unpickled(original_release, tmp_path, capsys):
    evil = tmp_path / "evil"
    evil.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (evil / name).write_bytes((original_release["checkpoint"] / name).read_bytes())
    torch.save({"model.embed_tokens.weight": _Payload()}, evil / "pytorch_model.bin")
    with pytest.raises(Exception, match="(?i)weights_only|unpickl"):
        convert_speechgpt(evil, tmp_path / "out")
    assert "this must never run" not in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
