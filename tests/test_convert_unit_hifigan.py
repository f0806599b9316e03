"""fairseq CodeHiFiGAN -> UnitHiFiGANVocoder on a checkpoint built here in exactly the original layout.

`FairseqLayoutGenerator` re-states the original generator (module names, legacy weight norm giving
`weight_g`/`weight_v`, forward order) so that its state dict has the original's keys and its forward is the
reference waveform; the converted model must reproduce it, and so must transformers' SeamlessM4TCodeHifiGan.
"""

import json
import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from speechgpt_hf.convert.convert_unit_hifigan import convert_unit_hifigan, to_seamless_m4t_code_hifigan
from speechgpt_hf_cli import main as cli_main

FAIRSEQ_CONFIG = {
    "resblock": "1",
    "upsample_rates": [5, 4, 4, 4],
    "upsample_kernel_sizes": [11, 8, 8, 8],
    "upsample_initial_channel": 64,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "num_embeddings": 30,
    "embedding_dim": 32,
    "model_in_dim": 32,
    "segment_size": 8960,
    "code_hop_size": 320,
    "f0": False,
    "num_mels": 80,
    "sampling_rate": 16000,
    "dur_prediction_weight": 1.0,
    "dur_predictor_params": {
        "encoder_embed_dim": 32,
        "var_pred_hidden_dim": 32,
        "var_pred_kernel_size": 3,
        "var_pred_dropout": 0.5,
    },
}


def wn(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn.utils.weight_norm(module)


class ResBlock1(nn.Module):
    def __init__(self, ch: int, k: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            wn(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=(k * d - d) // 2)) for d in dilations
        )
        self.convs2 = nn.ModuleList(wn(nn.Conv1d(ch, ch, k, 1, dilation=1, padding=(k - 1) // 2)) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
        return x


class VariancePredictor(nn.Module):
    def __init__(self, p: dict) -> None:
        super().__init__()
        e, h, k = p["encoder_embed_dim"], p["var_pred_hidden_dim"], p["var_pred_kernel_size"]
        self.conv1 = nn.Sequential(nn.Conv1d(e, h, k, padding=(k - 1) // 2), nn.ReLU())
        self.ln1 = nn.LayerNorm(h)
        self.dropout_module = nn.Dropout(p["var_pred_dropout"])
        self.conv2 = nn.Sequential(nn.Conv1d(h, h, k, padding=1), nn.ReLU())
        self.ln2 = nn.LayerNorm(h)
        self.proj = nn.Linear(h, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout_module(self.ln1(self.conv1(x.transpose(1, 2)).transpose(1, 2)))
        x = self.dropout_module(self.ln2(self.conv2(x.transpose(1, 2)).transpose(1, 2)))
        return self.proj(x).squeeze(dim=2)


class FairseqLayoutGenerator(nn.Module):
    def __init__(self, cfg: dict, num_speakers: int = 0) -> None:
        super().__init__()
        self.num_kernels = len(cfg["resblock_kernel_sizes"])
        c = cfg["upsample_initial_channel"]
        self.dict = nn.Embedding(cfg["num_embeddings"], cfg["embedding_dim"])
        if num_speakers:
            self.spkr = nn.Embedding(num_speakers, cfg["embedding_dim"])
        self.dur_predictor = VariancePredictor(cfg["dur_predictor_params"])
        self.conv_pre = wn(nn.Conv1d(cfg["model_in_dim"], c, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            wn(nn.ConvTranspose1d(c // 2**i, c // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"], strict=True))
        )
        self.resblocks = nn.ModuleList(
            ResBlock1(c // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"], strict=True)
        )
        self.conv_post = wn(nn.Conv1d(c // 2 ** len(self.ups), 1, 7, 1, padding=3))

    def forward(self, code: torch.Tensor, spkr: torch.Tensor | None = None) -> torch.Tensor:
        x = self.dict(code).transpose(1, 2)
        log_dur = self.dur_predictor(x.transpose(1, 2))
        dur = torch.clamp(torch.round(torch.exp(log_dur) - 1).long(), min=1)
        x = torch.repeat_interleave(x, dur.view(-1), dim=2)
        if spkr is not None:
            x = torch.cat([x, self.spkr(spkr).transpose(1, 2).expand(-1, -1, x.shape[-1])], dim=1)
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = sum(self.resblocks[i * self.num_kernels + j](x) for j in range(self.num_kernels))
            x = xs / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x))).view(-1)


def build_checkpoint(folder, num_speakers: int = 0):
    config = dict(FAIRSEQ_CONFIG, model_in_dim=32 * (2 if num_speakers else 1))
    if num_speakers:
        config["multispkr"] = "from_input_file"
    torch.manual_seed(0)
    reference = FairseqLayoutGenerator(config, num_speakers).eval()
    with torch.no_grad():  # audible output and varied durations, so the comparison means something
        for name, param in reference.named_parameters():
            if name.endswith("weight_v"):
                param.normal_()
            elif name.endswith("weight_g"):
                param.fill_(1.5)
        reference.dur_predictor.proj.bias.fill_(1.0)
        reference.dur_predictor.proj.weight.normal_(0.0, 0.1)
    torch.save({"generator": reference.state_dict()}, folder / "g_00500000")
    (folder / "config.json").write_text(json.dumps(config))
    return reference


def test_checkpoint_has_the_original_layout(tmp_path):
    build_checkpoint(tmp_path)
    state = torch.load(tmp_path / "g_00500000", weights_only=True)["generator"]
    assert {"dict.weight", "conv_pre.weight_g", "conv_pre.weight_v", "ups.0.weight_g", "conv_post.weight_v"} <= set(
        state
    )
    assert "dur_predictor.conv1.0.weight" in state and "resblocks.11.convs2.2.weight_v" in state
    assert state["ups.0.weight_g"].shape == (64, 1, 1)


@pytest.mark.parametrize("num_speakers", [0, 4])
def test_converted_waveform_equals_the_original_forward(tmp_path, num_speakers):
    reference = build_checkpoint(tmp_path, num_speakers)
    model = convert_unit_hifigan(tmp_path / "g_00500000", tmp_path / "config.json", tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert model.config.num_speakers == num_speakers and model.config.hop_length == 320
    codes = torch.tensor([[3, 17, 17, 4, 29, 0, 8, 12, 5, 5, 21]])
    speaker = torch.tensor([[2]]) if num_speakers else None
    with torch.no_grad():
        expected = reference(codes, speaker)
        ours = model(codes, speaker_ids=None if speaker is None else speaker[0]).waveform[0]
    assert expected.abs().max() > 0.02 and expected.shape == ours.shape
    assert (ours - expected).abs().max() < 1e-4  # fp32 rounding of the fused weights; peaks are ~1


def test_same_weights_in_seamless_m4t_code_hifigan_give_the_same_waveform(tmp_path):
    build_checkpoint(tmp_path, num_speakers=4)
    model = convert_unit_hifigan(tmp_path / "g_00500000", tmp_path / "config.json")
    seamless = to_seamless_m4t_code_hifigan(model)
    codes = torch.tensor([[3, 17, 4, 29, 0, 8, 12, 5, 21]])
    with torch.no_grad():
        theirs, lengths = seamless(input_ids=codes, spkr_id=torch.tensor([[1]]), lang_id=torch.tensor([[0]]))
        ours = model(codes, speaker_ids=torch.tensor([1]))
    assert int(lengths) == int(ours.lengths[0]) == theirs.shape[-1]
    assert (theirs.view(-1) - ours.waveform[0]).abs().max() < 1e-4


def test_cli_convert_vocoder(tmp_path, capsys):
    build_checkpoint(tmp_path)
    assert (
        cli_main(
            ["convert", "vocoder", str(tmp_path / "g_00500000"), str(tmp_path / "config.json"), str(tmp_path / "repo")]
        )
        == 0
    )
    assert "Wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "repo" / "config.json").read_text())["model_type"] == "speechgpt_unit_hifigan"


def test_wrong_files_are_refused(tmp_path):
    torch.save({"model": {}}, tmp_path / "bad.pt")
    (tmp_path / "config.json").write_text(json.dumps(FAIRSEQ_CONFIG))
    with pytest.raises(ValueError, match="'generator' key"):
        convert_unit_hifigan(tmp_path / "bad.pt", tmp_path / "config.json")
    build_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(FAIRSEQ_CONFIG, f0=True)))
    with pytest.raises(ValueError, match="f0"):
        convert_unit_hifigan(tmp_path / "g_00500000", tmp_path / "config.json")
