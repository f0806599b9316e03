"""Converters of the original unit extractor: a fairseq HuBERT checkpoint and a joblib k-means file, written here
in exactly those formats (without fairseq, omegaconf, sklearn or joblib installed), then checked against an
independent re-implementation of the original algorithm (fairseq HuBERT forward + sklearn-style assignment)."""

import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import HubertConfig, HubertModel

from speechgpt_hf import SpeechUnitTokenizer
from speechgpt_hf.convert.convert_mhubert import convert_unit_tokenizer, load_fairseq_checkpoint
from speechgpt_hf.convert.read_kmeans_joblib import read_joblib, read_kmeans_centers
from speechgpt_hf_cli import main as cli_main

STRIDES = [5, 2, 2, 2, 2, 2, 2]


def fake_module(monkeypatch, name: str, **classes) -> None:
    """Registers a module (and its parents) so pickle can name classes that pretend to live there."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    for cls_name, cls in classes.items():
        cls.__module__, cls.__qualname__ = name, cls_name
        setattr(sys.modules[name], cls_name, cls)


class AnyNode:
    def __init__(self, value):
        self.value = value

    def __getstate__(self):
        return {"_metadata": None, "_parent": None, "_val": self.value}


class DictConfig:
    """Pickles the way omegaconf's DictConfig does: a state dict with `_content` of nodes."""

    def __init__(self, content):
        self.content = content

    def __getstate__(self):
        nodes = {k: v if isinstance(v, DictConfig) else AnyNode(v) for k, v in self.content.items()}
        return {"_metadata": None, "_parent": None, "_content": nodes}


def fairseq_state_dict(model: HubertModel) -> dict[str, torch.Tensor]:
    """The tiny HF model's weights under fairseq's names (written independently of the converter's table)."""
    out = {"mask_emb": model.masked_spec_embed.detach().clone()}
    for i, layer in enumerate(model.feature_extractor.conv_layers):
        out[f"feature_extractor.conv_layers.{i}.0.weight"] = layer.conv.weight
        if i == 0:
            out["feature_extractor.conv_layers.0.2.weight"] = layer.layer_norm.weight
            out["feature_extractor.conv_layers.0.2.bias"] = layer.layer_norm.bias
    fp = model.feature_projection
    out.update(
        {
            "layer_norm.weight": fp.layer_norm.weight,
            "layer_norm.bias": fp.layer_norm.bias,
            "post_extract_proj.weight": fp.projection.weight,
            "post_extract_proj.bias": fp.projection.bias,
        }
    )
    pos = model.encoder.pos_conv_embed.conv
    out["encoder.pos_conv.0.bias"] = pos.bias
    out["encoder.pos_conv.0.weight_g"] = pos.parametrizations.weight.original0
    out["encoder.pos_conv.0.weight_v"] = pos.parametrizations.weight.original1
    out["encoder.layer_norm.weight"], out["encoder.layer_norm.bias"] = (
        model.encoder.layer_norm.weight,
        model.encoder.layer_norm.bias,
    )
    for i, layer in enumerate(model.encoder.layers):
        p = f"encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out[p + f"self_attn.{proj}.weight"] = getattr(layer.attention, proj).weight
            out[p + f"self_attn.{proj}.bias"] = getattr(layer.attention, proj).bias
        for name, module in (
            ("self_attn_layer_norm", layer.layer_norm),
            ("final_layer_norm", layer.final_layer_norm),
            ("fc1", layer.feed_forward.intermediate_dense),
            ("fc2", layer.feed_forward.output_dense),
        ):
            out[p + f"{name}.weight"], out[p + f"{name}.bias"] = module.weight, module.bias
    out["final_proj.weight"] = torch.randn(8, model.config.hidden_size)
    out["label_embs_concat"] = torch.randn(10, 8)
    return {k: v.detach().clone() for k, v in out.items()}


def fairseq_hubert_features(
    sd: dict[str, torch.Tensor], wave: torch.Tensor, heads: int, output_layer: int
) -> torch.Tensor:
    """fairseq HubertModel.extract_features(output_layer=L) for a post-LN base model, from its raw state dict."""
    x = wave[None, None]
    for i, stride in enumerate(STRIDES):
        x = F.conv1d(x, sd[f"feature_extractor.conv_layers.{i}.0.weight"], stride=stride)
        if i == 0:
            x = F.group_norm(
                x,
                x.shape[1],
                sd["feature_extractor.conv_layers.0.2.weight"],
                sd["feature_extractor.conv_layers.0.2.bias"],
            )
        x = F.gelu(x)
    x = F.layer_norm(x.transpose(1, 2), (x.shape[1],), sd["layer_norm.weight"], sd["layer_norm.bias"])
    x = F.linear(x, sd["post_extract_proj.weight"], sd["post_extract_proj.bias"])
    g, v = sd["encoder.pos_conv.0.weight_g"], sd["encoder.pos_conv.0.weight_v"]
    weight = g * v / v.norm(dim=(0, 1), keepdim=True)
    kernel, dim = v.shape[-1], x.shape[-1]
    pos = F.conv1d(
        x.transpose(1, 2), weight, sd["encoder.pos_conv.0.bias"], padding=kernel // 2, groups=dim // v.shape[1]
    )
    pos = F.gelu(pos[..., :-1] if kernel % 2 == 0 else pos)
    x = F.layer_norm(x + pos.transpose(1, 2), (dim,), sd["encoder.layer_norm.weight"], sd["encoder.layer_norm.bias"])
    for i in range(output_layer):
        p = lambda name, i=i: (sd[f"encoder.layers.{i}.{name}.weight"], sd[f"encoder.layers.{i}.{name}.bias"])  # noqa: E731
        q, k, val = (
            F.linear(x, *p(f"self_attn.{n}")).view(1, -1, heads, dim // heads).transpose(1, 2)
            for n in ("q_proj", "k_proj", "v_proj")
        )
        attn = torch.softmax(q * (dim // heads) ** -0.5 @ k.transpose(-1, -2), -1) @ val
        x = F.layer_norm(
            x + F.linear(attn.transpose(1, 2).reshape(1, -1, dim), *p("self_attn.out_proj")),
            (dim,),
            *p("self_attn_layer_norm"),
        )
        x = F.layer_norm(x + F.linear(F.gelu(F.linear(x, *p("fc1"))), *p("fc2")), (dim,), *p("final_layer_norm"))
    return x[0]


def sklearn_style_units(features: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """SpeechGPT's ApplyKmeans: ‖x‖² − 2x·Cᵀ + ‖C‖², argmin, in numpy."""
    dist = (features**2).sum(1, keepdims=True) - 2 * features @ centers.T + (centers**2).sum(1)[None]
    return dist.argmin(1)


class NumpyArrayWrapper:
    def __init__(self, array: np.ndarray):
        self.subclass, self.shape, self.dtype = np.ndarray, array.shape, array.dtype
        self.order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        self.allow_mmap, self.numpy_array_alignment_bytes = True, 16


class MiniBatchKMeans:
    pass


class JoblibStylePickler(pickle._Pickler):
    """Writes like joblib >= 1.2's NumpyPickler: wrapper, frame commit, padding byte + 0xFF padding, raw bytes."""

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
            wrapper = NumpyArrayWrapper(obj)
            super().save(wrapper)
            self.framer.commit_frame(force=True)
            padding = 16 - (self.file.tell() + 1) % 16
            self.file.write(bytes([padding]) + b"\xff" * padding)
            self.file.write(obj.tobytes(order=wrapper.order))
            return
        super().save(obj, save_persistent_id)

    def __init__(self, file):
        super().__init__(file, protocol=4)
        self.file = file


def write_joblib_kmeans(path, monkeypatch, centers: np.ndarray) -> None:
    fake_module(monkeypatch, "joblib.numpy_pickle", NumpyArrayWrapper=NumpyArrayWrapper)
    fake_module(monkeypatch, "sklearn.cluster._kmeans", MiniBatchKMeans=MiniBatchKMeans)
    km = MiniBatchKMeans()
    km.__dict__.update(
        n_clusters=centers.shape[0],
        cluster_centers_=centers,
        labels_=np.arange(7, dtype=np.int32),
        inertia_=np.float64(12.5),
        counts_=np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        _sklearn_version="1.3.0",
    )
    with open(path, "wb") as file:
        JoblibStylePickler(file).dump(km)


@pytest.fixture
def original_release(tmp_path, monkeypatch):
    """A tiny fairseq HuBERT checkpoint (+ omegaconf-like cfg) and a joblib k-means file, in the original formats."""
    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    hf_model = HubertModel(config).eval()
    sd = fairseq_state_dict(hf_model)
    centers = np.random.default_rng(0).standard_normal((12, 32)).astype(np.float32)
    fake_module(monkeypatch, "omegaconf.dictconfig", DictConfig=DictConfig)
    fake_module(monkeypatch, "omegaconf.nodes", AnyNode=AnyNode)
    cfg = DictConfig(
        {
            "model": DictConfig(
                {
                    "_name": "hubert",
                    "encoder_attention_heads": 2,
                    "layer_norm_first": False,
                    "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
                }
            ),
            "task": DictConfig({"_name": "hubert_pretraining", "normalize": False}),
        }
    )
    checkpoint = {
        "args": None,
        "cfg": cfg,
        "model": sd,
        "criterion": None,
        "optimizer_history": [{"num_updates": 400000}],
        "task_state": {},
        "extra_state": {"epoch": 3, "rng": np.arange(4)},
    }
    torch.save(checkpoint, tmp_path / "mhubert.pt")
    write_joblib_kmeans(tmp_path / "km.bin", monkeypatch, centers)
    monkeypatch.undo()  # the plugin must read both files with none of those modules importable
    assert "omegaconf.dictconfig" not in sys.modules and "joblib.numpy_pickle" not in sys.modules
    return tmp_path, sd, centers


def test_joblib_reader_is_bit_exact(original_release):
    folder, _, centers = original_release
    read = read_kmeans_centers(folder / "km.bin")
    assert read.dtype == np.float32 and np.array_equal(read, centers)
    state = read_joblib(folder / "km.bin").state
    assert np.array_equal(state["counts_"], np.arange(12.0).reshape(3, 4))  # Fortran-order array
    assert state["labels_"].dtype == np.int32 and state["inertia_"] == 12.5


def test_fairseq_checkpoint_loads_without_omegaconf(original_release):
    folder, sd, _ = original_release
    checkpoint = load_fairseq_checkpoint(folder / "mhubert.pt")
    assert checkpoint["cfg"]["model"]["encoder_attention_heads"] == 2
    assert checkpoint["cfg"]["task"]["normalize"] is False
    assert torch.equal(checkpoint["model"]["encoder.pos_conv.0.weight_v"], sd["encoder.pos_conv.0.weight_v"])


def test_converted_tokenizer_reproduces_the_original_algorithm(original_release, tmp_path):
    folder, sd, centers = original_release
    out = tmp_path / "converted"
    convert_unit_tokenizer(folder / "mhubert.pt", folder / "km.bin", out, layer=2)
    tok = SpeechUnitTokenizer.from_pretrained(out)
    assert tok.config.layer == 2 and tok.encoder.config.num_hidden_layers == 2 and tok.config.num_units == 12
    rng = np.random.default_rng(1)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 9000, 24000)]
    ours = tok.encode(waves, sampling_rate=16000, merge=False)
    agree = total = 0
    for wave, seq in zip(waves, ours, strict=True):
        with torch.no_grad():
            feats = fairseq_hubert_features(sd, torch.from_numpy(wave), heads=2, output_layer=2)
            features, _ = tok.compute_features(torch.from_numpy(wave)[None], torch.tensor([wave.size]))
        torch.testing.assert_close(features[0], feats, atol=1e-4, rtol=1e-4)
        expected = sklearn_style_units(feats.numpy(), centers)
        agree += int((np.array(seq.units) == expected).sum())
        total += expected.size
    assert agree == total


def test_untrusted_globals_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    torch.save({"model": {"w": torch.ones(2)}, "cfg": Exploit()}, tmp_path / "evil.pt")
    checkpoint = load_fairseq_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists() and torch.equal(checkpoint["model"]["w"], torch.ones(2))
    with open(tmp_path / "evil.bin", "wb") as file:
        pickle.dump(Exploit(), file, protocol=4)
    read_joblib(tmp_path / "evil.bin")
    assert not marker.exists()
    with pytest.raises(ValueError, match="no fitted k-means"):
        read_kmeans_centers(tmp_path / "evil.bin")
    (tmp_path / "zipped.bin").write_bytes(b"x\x9c" + b"\x00" * 20)
    with pytest.raises(ValueError, match="not an uncompressed joblib"):
        read_kmeans_centers(tmp_path / "zipped.bin")


def test_cli_convert_unit_tokenizer(original_release, tmp_path):
    folder, _, centers = original_release
    out = tmp_path / "cli"
    cli_main(
        [
            "convert",
            "unit-tokenizer",
            "--checkpoint",
            str(folder / "mhubert.pt"),
            "--kmeans",
            str(folder / "km.bin"),
            "--output-dir",
            str(out),
            "--layer",
            "2",
        ]
    )
    tok = SpeechUnitTokenizer.from_pretrained(out)
    assert np.array_equal(tok.centroids.numpy(), centers)
