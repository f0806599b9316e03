"""load_speechinstruct reads each folder's own rows, where load_dataset's cache mixes up same-named folders."""

import pytest
from datasets import Dataset

from speechgpt_hf.data.loading import load_speechinstruct


def _folder(root, rows: int):
    (root / "cross_modal").mkdir(parents=True)
    Dataset.from_list([{"prompt": f"p{i}", "completion": "c"} for i in range(rows)]).to_parquet(
        root / "cross_modal" / "train-00000-of-00001.parquet"
    )
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: cross_modal\n  data_files:\n  - split: train\n    path: cross_modal/train-*.parquet\n---\n"
    )
    return root


def test_two_folders_of_the_same_name_keep_their_own_rows(tmp_path):
    first = _folder(tmp_path / "a" / "speechinstruct", 5)
    second = _folder(tmp_path / "b" / "speechinstruct", 3)
    assert len(load_speechinstruct(first, "cross_modal")) == 5
    assert len(load_speechinstruct(second, "cross_modal")) == 3


def test_a_missing_configuration_names_the_ones_there(tmp_path):
    folder = _folder(tmp_path / "speechinstruct", 2)
    with pytest.raises(
        ValueError, match=r"no chain_of_modality/train-\*.parquet files \(configurations there: \['cross_modal'\]\)"
    ):
        load_speechinstruct(folder, "chain_of_modality")
