"""Tiny, fully offline building blocks: a BPE tokenizer trained in memory, small random causal LMs and vocoders,
a logits processor that makes `generate` write a fixed answer, and a way to SIGKILL a job mid-run.

For the test suite and the benchmarks only: nothing the package runs imports this module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerFast

from .reproduction.base_lm import random_causal_lm, train_bpe_tokenizer

TINY_CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "Speech is turned into discrete units and the language model reads them like words.",
    "Please transcribe the following recording into text.",
    "Read this sentence aloud in a clear voice.",
    "What is the capital of France? The capital of France is Paris.",
    "Tell me a short story about a robot who learns to sing.",
    "Human: hello there, how are you today? Assistant: I am well, thank you for asking.",
    "Numbers like one, two, three and four are easy to say.",
    "The weather is sunny with a light breeze in the afternoon.",
    "Answer the question briefly and truthfully.",
)


def build_tiny_tokenizer(corpus: Iterable[str] = TINY_CORPUS, vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `corpus` in memory, with BOS/EOS/UNK/PAD tokens."""
    return train_bpe_tokenizer(corpus, vocab_size)


def build_tiny_causal_lm(
    model_type: str = "llama", vocab_size: int = 300, seed: int = 0, **overrides: object
) -> PreTrainedModel:
    """A 2-layer, 32-wide random causal LM of any transformers architecture (llama, qwen2, …)."""
    settings = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    settings.update(overrides)
    return random_causal_lm(model_type, seed=seed, **settings)


def fan_in_init_(module: torch.nn.Module, gain: float = 1.0) -> None:
    """Redraws every (transposed) 1-D convolution weight under `module` with std gain/sqrt(fan-in), in place.

    Random HiFi-GAN generators built with the classic std-0.01 init write near-silent, denormal-laden audio;
    these weights give output levels like a trained vocoder's, for tests and benchmarks."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                per_output = layer.weight[0] if isinstance(layer, torch.nn.Conv1d) else layer.weight[:, 0]
                layer.weight.normal_(0.0, gain / per_output.numel() ** 0.5)


def build_tiny_vocoder(num_units: int, seed: int = 0, **overrides) -> torch.nn.Module:
    """A small random UnitHiFiGANVocoder at 16 kHz (320 samples a unit frame), in eval mode."""
    from .models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder

    settings = dict(
        num_units=num_units,
        unit_embed_dim=16,
        duration_predictor_hidden_dim=16,
        upsample_initial_channel=32,
        upsample_rates=[5, 4, 4, 4],
        upsample_kernel_sizes=[11, 8, 8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    return UnitHiFiGANVocoder(UnitHiFiGANConfig(**settings)).eval()


class ScriptedAnswer(LogitsProcessor):
    """Constrains decoding to a fixed answer, so the real generate loop produces a known reply; the prompt it
    continued is kept in `prompt_ids`. One instance scripts one `generate` call."""

    def __init__(self, answer_ids: list[int]) -> None:
        self.answer_ids, self.prompt_length, self.prompt_ids = answer_ids, None, None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_length is None:
            self.prompt_length, self.prompt_ids = input_ids.shape[1], input_ids[0].tolist()
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, -float("inf"))
        forced[:, self.answer_ids[min(step, len(self.answer_ids) - 1)]] = 0
        return forced


def tiny_mel_generator_config(num_mels: int = 80) -> dict:
    """`SpeechT5HifiGanConfig` arguments of a mel HiFi-GAN a few channels wide, with the front end of the universal
    one (22.05 kHz, hop 256 = its upsampling, n_fft 1024, 0-8000 Hz), as `convert mel-hifigan` records it."""
    return dict(
        model_in_dim=num_mels,
        sampling_rate=22050,
        upsample_initial_channel=16,
        upsample_rates=[8, 8, 4],
        upsample_kernel_sizes=[16, 16, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        normalize_before=False,
        n_fft=1024,
        hop_length=256,
        win_length=1024,
        fmin=0.0,
        fmax=8000.0,
    )


def kill_when(
    command: Sequence[str],
    ready: Callable[[], bool],
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    poll: float = 0.005,
) -> bool:
    """Runs `command` and SIGKILLs it (and its children) the moment `ready()` is true, as an OOM killer or a
    pre-emption would; True when it was killed, False when it finished first. Raises when it fails on its own or
    outlives `timeout`."""
    log = tempfile.TemporaryFile()  # not a pipe: a chatty job must not block on a full one
    process = subprocess.Popen(
        list(command),
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if ready():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return True
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise TimeoutError(f"{command[0]} ran past {timeout} s without reaching the moment to kill it")
        time.sleep(poll)
    if process.returncode != 0:
        log.seek(0)
        raise RuntimeError(f"{' '.join(command)} failed on its own:\n{log.read().decode()[-3000:]}")
    return False


__all__ = [
    "kill_when",
    "tiny_mel_generator_config",
    "TINY_CORPUS",
    "ScriptedAnswer",
    "build_tiny_causal_lm",
    "build_tiny_tokenizer",
    "build_tiny_vocoder",
    "fan_in_init_",
]
