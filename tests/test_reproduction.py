"""The reproduction (and the quickstart built on it) at a tiny size through the CLI: every step runs, the report
has its parts, held-out sentences and voices never reach training, and a rerun resumes instead of redoing."""

import json
from pathlib import Path

import datasets
from transformers import AutoModel, AutoModelForCausalLM

import speechgpt_hf_cli
from speechgpt_hf.data.loading import load_speechinstruct
from speechgpt_hf.evaluation.scoring import error_rates
from speechgpt_hf.reproduction.corpus_grammar import normalise

TINY = [
    "num_train=24",
    "num_test=3",
    'voices=["espeak:en-us", "espeak:en-gb"]',
    "unit_encoder=mfcc",
    "num_units=24",
    "unit_fit_frames=5000",
    "text_vocab_size=400",
    "lm_hidden=32",
    "lm_layers=1",
    "lm_heads=2",
    'stage_steps={"modality_adaptation": 2, "cross_modal": 3, "chain_of_modality": 2}',
    "batch_size=2",
    "com_pairs=2",
    "vocoder_steps=2",
    "vocoder_warmup_steps=1",
    "vocoder_channels=32",
    "eval_items=2",
    "eval_questions=2",
    "judge=pocketsphinx",
    "naturalness=false",
]


def test_quickstart_reproduces_at_a_tiny_size_and_resumes(tmp_path, capsys):
    assert speechgpt_hf_cli.main(["quickstart", "--output-dir", str(tmp_path), "--set", *TINY]) == 0
    out = capsys.readouterr().out
    assert "[quickstart] heard espeak:en-gb-x-rp say" in out and "held-out scores (test)" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    evaluation = summary["evaluation"]
    assert set(evaluation) == {"test", "test_voice", "train_probe"}
    assert {"asr", "tts", "resynthesis", "spoken_qa", "latency"} == set(evaluation["test"])
    assert "wer_by_kind" in evaluation["test"]["asr"]
    assert "reference_judge_wer" in evaluation["test_voice"]["resynthesis"]["metrics"]
    report = (tmp_path / "report.md").read_text()
    for part in ("## Held-out results", "## Goals", "## Where the time went", "learning_curves.png"):
        assert part in report, part
    assert (tmp_path / "learning_curves.png").exists() and (tmp_path / "evaluation" / "test" / "report.md").exists()

    corpus = datasets.load_from_disk(str(tmp_path / "corpus" / "dataset"))
    held_out = {normalise(text) for text in corpus["test"]["text"]}
    assert held_out and not held_out & {normalise(text) for text in corpus["train"]["text"]}
    assert not set(corpus["test_voice"]["speaker"]) & set(corpus["train"]["speaker"])
    for config in ("modality_adaptation", "cross_modal"):
        rows = load_speechinstruct(tmp_path / "speechinstruct", config)
        trained = {normalise(text) for text in [*rows["input_text"], *rows["output_text"]] if text}
        assert not trained & held_out, config
    # the quickstart's stage 2 also reads new sentences spliced from the training words
    assert any(source.startswith("spliced-") for source in rows["source_id"])

    # The scores are those of the held-out items: recomputed from what the model wrote, they agree.
    items = [json.loads(line) for line in open(tmp_path / "evaluation" / "test" / "items.jsonl")]
    asr = [item for item in items if item["task"] == "asr"]
    assert asr and {normalise(item["reference"]) for item in asr} <= held_out
    recomputed = error_rates([i["reference"] for i in asr], [i["hypothesis"] or "" for i in asr])["wer"]
    assert evaluation["test"]["asr"]["metrics"]["wer"] == recomputed > 0.0  # three training steps cannot transcribe
    # Spoken QA: as many questions as the setting asks, spread over topics, every one heard in the held-out voice,
    # none of them a chain-of-modality training instruction; asked again in text beside it.
    qa = [item for item in items if item["task"] == "spoken_qa"]
    assert len(qa) == 2 and len({item["topic"] for item in qa}) == 2
    assert {item["voice"] for item in qa} == set(corpus["test_voice"]["speaker"]) == {"espeak:en-gb-x-rp"}
    com = load_speechinstruct(tmp_path / "speechinstruct", "chain_of_modality")
    taught = {normalise(text) for text in [*com["input_text"], *com["output_text"]] if text}
    assert taught and not {normalise(item["question"]) for item in qa} & taught
    metrics = evaluation["test"]["spoken_qa"]["metrics"]
    assert {"accuracy", "text_accuracy", "question_judge_wer"} <= set(metrics)
    assert metrics["accuracy"] == sum(item["correct"] for item in qa) / len(qa)
    assert metrics["text_accuracy"] == sum(item["text_correct"] for item in qa) / len(qa)
    assert "cross-modal transfer (spoken / text accuracy)" in report

    model = AutoModelForCausalLM.from_pretrained(summary["repos"]["speechgpt"])
    assert model.config.num_units == 24 and model.config.vocoder_repo.startswith("../")
    processor = json.loads((Path(summary["repos"]["speechgpt"]) / "processor_config.json").read_text())
    assert (processor["unit_tokenizer_repo"], processor["vocoder_repo"]) == (
        model.config.unit_tokenizer_repo,
        model.config.vocoder_repo,
    )
    vocoder = AutoModel.from_pretrained(summary["repos"]["vocoder"])
    assert vocoder.config.num_units == 24 and vocoder.config.model_type == "speechgpt_unit_mel"  # the default

    assert (
        speechgpt_hf_cli.main(["reproduce", "--output-dir", str(tmp_path), "--preset", "quickstart", "--set", *TINY])
        == 0
    )
    rerun = capsys.readouterr().out
    assert rerun.count("done in an earlier run") == 9  # every step reused: nothing trained twice
    assert Path(tmp_path / "report.md").exists()


def test_pretrained_preset_on_a_tiny_instruct_base_measures_knowledge(tmp_path, capsys):
    """The `pretrained` preset's path on a tiny stand-in for SmolLM2: a saved instruct LM with a chat template is the
    base, turns are written inside that template, stages 1-2 train LoRA with the unit rows, and text QA is asked of
    the bare base, the expanded model and every stage."""
    from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}<s>"
    build_tiny_causal_lm("llama", vocab_size=len(tokenizer)).save_pretrained(tmp_path / "instruct")
    tokenizer.save_pretrained(tmp_path / "instruct")
    settings = [*TINY, f"base_model={tmp_path / 'instruct'}", "knowledge_questions=2"]
    argv = ["reproduce", "--output-dir", str(tmp_path / "run"), "--preset", "pretrained", "--set", *settings]
    assert speechgpt_hf_cli.main(argv) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["base_lm"] == {"base_model": str(tmp_path / "instruct"), "weights": None}
    knowledge = summary["knowledge"]
    assert list(knowledge["accuracy"]) == [
        "bare base",
        "expanded, untrained",
        "after modality_adaptation",
        "after cross_modal",
        "after chain_of_modality",
    ]
    assert len(knowledge["questions"]) == 2 and all(len(a) == 2 for a in knowledge["answers"].values())
    processor = json.loads((tmp_path / "run" / "lm" / "chain_of_modality" / "processor_config.json").read_text())
    assert processor["prompt_format"] == "chat_template"
    # Stage 2 rehearses the chain-of-modality rows (text answered in text among them).
    assert "chain_of_modality rows replayed" in (tmp_path / "run" / "lm" / "cross_modal" / "README.md").read_text()
    assert "Knowledge retention" in (tmp_path / "run" / "report.md").read_text()
