"""Stage 2 without padding: packed rows attend only to themselves, so a packed batch's per-token losses equal the
losses of the same rows one at a time, with every attention backend, and the stage-2 recipe trains packed."""

import pytest
import torch
from datasets import Dataset
from test_training_stages import NUM_UNITS, base_model_folder  # noqa: F401  (a fixture)
from trl import TrlParser

from speechgpt_hf import format_cross_modal_instruction, format_turn, units_to_string
from speechgpt_hf.testing_utils import build_tiny_causal_lm
from speechgpt_hf.training.packed_attention import PACKED_SDPA, register_packed_attention, row_bounds
from speechgpt_hf.training.sft import (
    RECIPES_DIR,
    SpeechGPTTrainingConfig,
    build_trainer,
    model_init_kwargs,
    padding_free,
)


@pytest.fixture(scope="module")
def uneven_cross_modal(tmp_path_factory):
    """Stage-2 rows of very different lengths (4 to 60 units in, a short text out), as a SpeechInstruct folder."""
    root = tmp_path_factory.mktemp("uneven")
    rng = torch.Generator().manual_seed(1)
    rows = []
    for i in range(12):
        units = torch.randint(0, NUM_UNITS, (int(torch.randint(4, 61, (1,), generator=rng)),), generator=rng)
        prompt = format_turn(format_cross_modal_instruction("Transcribe this.", units_to_string(units.tolist())))
        rows.append({"prompt": prompt, "completion": f"number {i}<eoa>"})
    (root / "cross_modal").mkdir()
    Dataset.from_list(rows).to_parquet(root / "cross_modal" / "train-00000-of-00001.parquet")
    data_files = "  data_files:\n  - split: train\n    path: cross_modal/train-*.parquet"
    (root / "README.md").write_text(f"---\nconfigs:\n- config_name: cross_modal\n{data_files}\n---\n")
    return root


def _stage2(tmp_path, model_folder, data, **fields) -> SpeechGPTTrainingConfig:
    settings = dict(
        stage="cross_modal",
        base_model_name_or_path=str(model_folder),
        num_units=NUM_UNITS,
        dataset_name=str(data),
        output_dir=str(tmp_path / "out"),
        max_length=256,
        packing=True,
        per_device_train_batch_size=3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
        max_steps=2,
        logging_steps=1,
    )
    return SpeechGPTTrainingConfig(**{**settings, **fields})


def _token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each loss-bearing next-token prediction, in order."""
    shifted = labels[..., 1:].reshape(-1)
    losses = torch.nn.functional.cross_entropy(
        logits[..., :-1, :].reshape(-1, logits.shape[-1]), shifted, reduction="none"
    )
    return losses[shifted != -100]


@pytest.mark.parametrize("attention", [None, "sdpa", "eager"])
def test_packed_batch_losses_equal_each_row_alone(tmp_path, attention, base_model_folder, uneven_cross_modal):  # noqa: F811
    init = {"model_init_kwargs": {"attn_implementation": attention}} if attention else {}
    trainer, _ = build_trainer(_stage2(tmp_path, base_model_folder, uneven_cross_modal, **init))
    model = trainer.model.eval()
    assert model.config._attn_implementation == (attention or PACKED_SDPA)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    starts = batch["cu_seq_lens_q"].tolist()
    assert batch["input_ids"].shape[0] == 1 and len(starts) > 4  # several rows laid end to end, no padding
    with torch.no_grad():
        packed = _token_losses(model(**batch, use_cache=False).logits, batch["labels"])
        alone = torch.cat(
            [
                _token_losses(
                    model(input_ids=batch["input_ids"][:, a:b], use_cache=False).logits, batch["labels"][:, a:b]
                )
                for a, b in zip(starts[:-1], starts[1:], strict=True)
            ]
        )
    assert packed.numel() == alone.numel() > 0
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)


def test_the_stage2_recipe_trains_packed_with_the_row_keeping_backend():
    (config,) = TrlParser((SpeechGPTTrainingConfig,)).parse_args_and_config(
        ["--config", str(RECIPES_DIR / "stage2_cross_modal.yaml"), "--use_cpu", "true"]
    )
    assert padding_free(config) and config.max_length == 512
    assert model_init_kwargs(config)["attn_implementation"] == PACKED_SDPA
    config.packing = False
    assert "attn_implementation" not in model_init_kwargs(config)  # padded batches keep transformers' default


def test_packed_stage2_learns(tmp_path, base_model_folder, uneven_cross_modal):  # noqa: F811
    trainer, _ = build_trainer(
        _stage2(tmp_path, base_model_folder, uneven_cross_modal, max_steps=6, learning_rate=5e-3)
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and sum(losses[-2:]) < sum(losses[:2])


def test_padded_batches_and_generation_are_plain_sdpa():
    name = register_packed_attention()
    packed, plain = (build_tiny_causal_lm("llama", attn_implementation=impl).eval() for impl in (name, "sdpa"))
    ids = torch.tensor([[5, 6, 7, 8, 9], [3, 3, 10, 11, 12]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    with torch.no_grad():
        torch.testing.assert_close(
            packed(input_ids=ids, attention_mask=mask).logits, plain(input_ids=ids, attention_mask=mask).logits
        )
    generate = dict(max_new_tokens=5, do_sample=False)
    assert torch.equal(packed.generate(ids[:1], **generate), plain.generate(ids[:1], **generate))


def test_rows_packed_side_by_side_are_refused_with_the_way_out():
    model = build_tiny_causal_lm("llama", attn_implementation=register_packed_attention())
    positions = torch.tensor([[0, 1, 0, 1], [0, 1, 2, 3]])
    with pytest.raises(ValueError, match="packing_strategy='bfd'"):
        model(input_ids=torch.ones(2, 4, dtype=torch.long), position_ids=positions, use_cache=False)


def test_row_bounds_from_positions_or_lengths_join_runs_of_padding():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 0, 0]])
    assert row_bounds(positions, None, 8) == [0, 3, 5, 8]
    assert row_bounds(None, torch.tensor([0, 3, 5, 6, 7, 8]), 8) == [0, 3, 5, 8]
    assert row_bounds(None, None, 4) == [0, 4]
