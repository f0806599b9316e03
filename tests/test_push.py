"""`speechgpt-hf push` against a stand-in HfApi that records what would be sent."""

import json

import huggingface_hub
import pytest

import speechgpt_hf_cli
from speechgpt_hf.hub.cards import write_model_card
from speechgpt_hf.hub.push import IGNORE_PATTERNS, push
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder


class RecordingApi:
    """Records create_repo and upload_folder calls instead of reaching the Hub."""

    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/abc",
            commit_message="m",
            commit_description="",
            oid="abc",
        )


@pytest.fixture
def api(monkeypatch):
    RecordingApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    return RecordingApi


@pytest.fixture
def vocoder_folder(tmp_path):
    folder = tmp_path / "vocoder"
    UnitHiFiGANVocoder(UnitHiFiGANConfig(num_units=8, upsample_initial_channel=32)).save_pretrained(folder)
    return folder


def _speechgpt_config(folder, **components):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "speechgpt", "num_units": 8, **components}))
    (folder / "README.md").write_text("---\nlicense: other\n---\n# card\n")
    (folder / "training_args.bin").write_bytes(b"pickle")


def test_a_carded_vocoder_is_uploaded_as_a_model_without_training_leftovers(api, vocoder_folder, capsys):
    write_model_card(vocoder_folder)
    assert speechgpt_hf_cli.main(["push", str(vocoder_folder), "me/vocoder", "--private", "--token", "t"]) == 0
    (create, upload) = api.calls
    assert create == ("create_repo", "me/vocoder", {"repo_type": "model", "private": True, "exist_ok": True})
    assert upload[2]["folder_path"] == str(vocoder_folder) and upload[2]["repo_type"] == "model"
    assert "training_args.bin" in upload[2]["ignore_patterns"] and "checkpoint-*/**" in upload[2]["ignore_patterns"]
    assert "https://huggingface.co/me/vocoder/commit/abc" in capsys.readouterr().out


def test_a_folder_without_a_card_is_refused_before_anything_is_sent(api, vocoder_folder, capsys):
    assert speechgpt_hf_cli.main(["push", str(vocoder_folder), "me/vocoder"]) == 2
    err = capsys.readouterr().err
    assert "has no README.md card; write one first" in err and f"speechgpt-hf card {vocoder_folder}" in err
    assert api.calls == []


def test_a_card_without_metadata_is_refused(api, vocoder_folder):
    (vocoder_folder / "README.md").write_text("# just a title\n")
    with pytest.raises(ValueError, match="no YAML metadata"):
        push(vocoder_folder, "me/vocoder")
    assert api.calls == []


def test_local_component_paths_in_a_speechgpt_config_are_refused(api, tmp_path):
    _speechgpt_config(tmp_path / "lm", unit_tokenizer_repo="me/units", vocoder_repo="../vocoder")
    with pytest.raises(ValueError, match=r"local folders \(config.json: vocoder_repo='../vocoder'\).*repo ids"):
        push(tmp_path / "lm", "me/lm")
    _speechgpt_config(tmp_path / "lm2", unit_tokenizer_repo="me/units", vocoder_repo="me/vocoder")
    processor = {"processor_class": "SpeechGPTProcessor", "unit_tokenizer_repo": "me/units", "vocoder_repo": "./voc"}
    (tmp_path / "lm2" / "processor_config.json").write_text(json.dumps(processor))
    with pytest.raises(ValueError, match=r"local folders \(processor_config.json: vocoder_repo='./voc'\)"):
        push(tmp_path / "lm2", "me/lm")
    assert api.calls == []


def test_hub_components_pass_and_the_repo_type_is_detected(api, tmp_path):
    _speechgpt_config(tmp_path / "lm", unit_tokenizer_repo="me/units", vocoder_repo="me/vocoder")
    push(tmp_path / "lm", "me/lm")
    space = tmp_path / "space"
    space.mkdir()
    (space / "app.py").write_text("print('hi')\n")
    (space / "README.md").write_text("---\nsdk: gradio\napp_file: app.py\n---\n# Space\n")
    push(space, "me/space")
    types = [(name, repo, kwargs["repo_type"]) for name, repo, kwargs in api.calls]
    assert types == [
        ("create_repo", "me/lm", "model"),
        ("upload_folder", "me/lm", "model"),
        ("create_repo", "me/space", "space"),
        ("upload_folder", "me/space", "space"),
    ]
    assert api.calls[2][2]["space_sdk"] == "gradio"


def test_a_space_card_must_name_its_sdk(api, tmp_path):
    (tmp_path / "app.py").write_text("")
    (tmp_path / "README.md").write_text("---\ntitle: x\n---\n")
    with pytest.raises(ValueError, match="sdk"):
        push(tmp_path, "me/space")


def test_a_folder_of_nothing_known_asks_for_the_repo_type(api, tmp_path):
    with pytest.raises(ValueError, match="--repo-type"):
        push(tmp_path, "me/x")
    assert set(IGNORE_PATTERNS) >= {".speechinstruct/**", "*.partial"}
