"""A BPE over speech units: learnt on unit runs, applied by the processor to every unit span it tokenises and
undone on every answer, saved with the processor, and learnt by stage 1 when it expands a base LM."""

import random

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoProcessor

from speechgpt_hf import SpeechGPTProcessor, UnitPieces, add_speech_units, units_to_string
from speechgpt_hf.inference.constrained_decoding import UnitSpanLogitsProcessor
from speechgpt_hf.inference.speech_streamer import SpeechUnitStreamer
from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer
from speechgpt_hf.training.sft import SpeechGPTTrainingConfig, load_stage_dataset, train_stage

NUM_UNITS = 20


def _utterances(count: int, seed: int = 0) -> list[list[int]]:
    """Runs of units made of a few recurring 'words', as speech units are."""
    vocabulary = random.Random(0)
    words = [[vocabulary.randrange(NUM_UNITS) for _ in range(vocabulary.randrange(3, 6))] for _ in range(8)]
    rng = random.Random(seed)
    return [sum((rng.choice(words) for _ in range(5)), []) for _ in range(count)]


@pytest.fixture(scope="module")
def pieces() -> UnitPieces:
    return UnitPieces.learn(_utterances(200), NUM_UNITS, 48)


def test_pieces_shorten_runs_and_decode_back_to_the_same_units(pieces):
    assert len(pieces) == 48 and len(pieces.merges) == 28
    runs = _utterances(50, seed=1)
    encoded = [pieces.encode(run) for run in runs]
    assert [pieces.decode(e) for e in encoded] == runs
    assert sum(map(len, encoded)) < 0.6 * sum(map(len, runs))
    assert all(0 <= piece < len(pieces) for e in encoded for piece in e)
    assert pieces.encode([]) == [] and pieces.encode([5]) == [5]


def test_bad_sizes_units_and_merges_are_refused(pieces):
    with pytest.raises(ValueError, match="cannot hold the K=20 units"):
        UnitPieces.learn(_utterances(10), NUM_UNITS, 10)
    with pytest.raises(ValueError, match="outside 0..19"):
        UnitPieces.learn([[3, 25]], NUM_UNITS, 30)
    with pytest.raises(ValueError, match="outside 0..19"):
        pieces.encode([20])
    with pytest.raises(ValueError, match="outside 0..47"):
        pieces.decode([48])
    with pytest.raises(ValueError, match="only pieces 0..20 exist"):
        UnitPieces(NUM_UNITS, [(0, 1), (21, 3)])


@pytest.fixture
def bpe_speechgpt(pieces):
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_causal_lm("llama", vocab_size=len(tokenizer))
    model, tokenizer = add_speech_units(base, tokenizer, num_units=NUM_UNITS, unit_pieces=pieces)
    return model.eval(), SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS, unit_merges=pieces.merges)


def test_the_lm_gets_a_token_a_piece_and_the_processor_maps_units_through_them(bpe_speechgpt, pieces):
    model, processor = bpe_speechgpt
    assert (model.config.num_units, model.config.num_unit_merges) == (NUM_UNITS, 28)
    assert len(model.config.unit_token_ids()) == processor.num_unit_tokens == 48
    units = _utterances(1, seed=2)[0]
    ids = processor.units_to_ids(units)
    assert ids[1:-1] == [processor.unit_token_offset + p for p in pieces.encode(units)]
    assert processor.ids_to_units(ids) == units
    prompt = processor.build_prompt("Transcribe this. " + units_to_string(units))
    # training rows go to TRL as text: in pieces they tokenise to the ids inference prompts with
    assert processor.encode(prompt) == processor.tokenizer(processor.with_unit_pieces(prompt))["input_ids"]
    assert processor.with_unit_pieces("no speech here") == "no speech here"
    answer = "[ta] ok; [ua] " + units_to_string(pieces.encode(units)) + "<eoa>"
    assert processor.parse(answer).units == units


def test_the_merges_are_saved_with_the_processor(bpe_speechgpt, pieces, tmp_path):
    model, processor = bpe_speechgpt
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert loaded.unit_pieces == pieces and loaded.num_units == NUM_UNITS
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config.num_unit_merges == 28


def test_constrained_decoding_and_streaming_cover_the_pieces(bpe_speechgpt, pieces):
    model, processor = bpe_speechgpt
    for built in (UnitSpanLogitsProcessor.from_processor(processor), UnitSpanLogitsProcessor.from_config(model.config)):
        assert built.num_units == 48
    streamer = SpeechUnitStreamer(processor)
    streamer.put(torch.tensor([[1, 2]]))  # the prompt, skipped
    piece = len(pieces) - 1
    for token_id in processor.units_to_ids(pieces.decode([piece, 3])):
        streamer.put(torch.tensor([token_id]))
    streamer.end()
    list(streamer)
    assert streamer.units == pieces.decode([piece, 3])


@pytest.fixture(scope="module")
def speechinstruct_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("speechinstruct")
    folder = root / "modality_adaptation"
    folder.mkdir()
    Dataset.from_list([{"text": units_to_string(u)} for u in _utterances(32)]).to_parquet(
        folder / "train-00000-of-00001.parquet"
    )
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: modality_adaptation\n  data_files:\n  - split: train\n"
        "    path: modality_adaptation/train-*.parquet\n---\n"
    )
    return root


def test_stage1_learns_the_bpe_when_it_expands_and_trains_on_pieces(tmp_path, speechinstruct_folder):
    base = tmp_path / "base"
    tokenizer = build_tiny_tokenizer()
    build_tiny_causal_lm("llama", vocab_size=len(tokenizer)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    config = SpeechGPTTrainingConfig(
        stage="modality_adaptation",
        base_model_name_or_path=str(base),
        num_units=NUM_UNITS,
        unit_bpe_vocab_size=40,
        dataset_name=str(speechinstruct_folder),
        output_dir=str(tmp_path / "stage1"),
        max_steps=2,
        per_device_train_batch_size=4,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        packing=False,
    )
    folder = train_stage(config)
    processor = AutoProcessor.from_pretrained(folder)
    assert len(processor.unit_pieces) == 40
    assert AutoModelForCausalLM.from_pretrained(folder).config.num_unit_merges == 20
    rows = load_stage_dataset(config, processor)["text"]
    assert any(f"<{piece}>" in rows[0] for piece in range(NUM_UNITS, 40))  # TRL reads pieces
    with pytest.raises(ValueError, match="at least num_units=20 pieces"):
        SpeechGPTTrainingConfig(
            stage="modality_adaptation",
            base_model_name_or_path=str(base),
            num_units=NUM_UNITS,
            unit_bpe_vocab_size=10,
            output_dir=str(tmp_path / "refused"),
            use_cpu=True,
            report_to="none",
        )


def test_a_chat_keeps_answers_in_units_for_the_next_prompt(bpe_speechgpt, pieces):
    from speechgpt_hf import SpeechGPTChat

    model, processor = bpe_speechgpt
    chat = SpeechGPTChat(model, processor)
    units = _utterances(1, seed=3)[0]
    answer = processor.tokenizer("[ta] ok; [ua] ", add_special_tokens=False)["input_ids"]
    chat._finish("Say it.", "", answer + processor.units_to_ids(units) + [model.config.special_token_ids["eoa"]])
    assert chat.history[-1][1].endswith(units_to_string(units))
    assert processor.with_units(processor.with_unit_pieces(units_to_string(units))) == units_to_string(units)
    chat._prompt_ids("And again?", max_new_tokens=8)  # the history's units are valid units


def test_a_processor_without_the_merges_is_refused(bpe_speechgpt, tmp_path):
    model, processor = bpe_speechgpt
    with pytest.raises(ValueError, match="merges this processor lacks"):
        SpeechGPTProcessor(processor.tokenizer, num_units=NUM_UNITS)
    model.save_pretrained(tmp_path)
    processor.tokenizer.save_pretrained(tmp_path)  # as a trainer's checkpoint folder holds it: no processor file
    with pytest.raises(ValueError, match="no processor_config.json"):
        AutoProcessor.from_pretrained(tmp_path)
