"""Every example in README.md runs, exactly as printed, against a tiny system built here.

The convention, for whoever edits the README:
- every ```python block runs (each in a fresh namespace, so a block defines or imports every name it uses);
- in a ```bash block, every command starting with `speechgpt-hf` runs through the CLI in this process (lines ending
  in a backslash continue it) and must exit 0; one starting with `python` runs in a subprocess; other lines
  (`bash scripts/run.sh`, `accelerate launch`, comments) are shown but not run; snippets run in README order in one
  folder, so a command may use what an earlier one wrote (extract-units reads fit-units' my-units);
- a block preceded by `<!-- docs-check: skip (reason) -->` (on the line right before its fence) is not run: use it
  for what needs the network, a GPU, the original release's files, or more than a few seconds, and give the reason;
- snippets run in a folder holding what the README says they come from: `quickstart_output/` laid out as
  `speechgpt-hf quickstart` writes it (lm/chain_of_modality, base-lm, unit-tokenizer, vocoder, with K=64 units
  and a vocoder with one voice per training voice), an `audio/` folder of recordings with a metadata.csv of transcripts (datasets'
  audiofolder convention), and `question.wav` / `speech.wav`.
New sections are picked up on their own; `test_the_snippets_found` lists them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechgpt_hf.testing_utils import tiny_mel_generator_config

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP = re.compile(r"<!--\s*docs-check:\s*skip\b")
FENCE = re.compile(r"^```(\w*)\s*$")
NUM_UNITS = 64
VOICES = ("piper:joe", "piper:joe-fast", "espeak:en-us", "espeak:en-gb")  # the quickstart vocoder's voices
TINY_VOCODER = dict(unit_embed_dim=8, hidden_dim=16, dilations=[1, 2], duration_predictor_hidden_dim=8)
TINY_MEL_GENERATOR = tiny_mel_generator_config()  # a mel HiFi-GAN with the universal one's front end


def readme_blocks(text: str) -> list[tuple[str, int, str, bool]]:
    """(language, first line number, code, skipped) of every fenced block of `text`."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match or not match.group(1):
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        blocks.append((match.group(1), index + 1, "\n".join(lines[index + 1 : end]), bool(SKIP.search(previous))))
        index = end + 1
    return blocks


def shell_commands(code: str) -> list[str]:
    """The commands of a bash block that the check runs: `speechgpt-hf …` and `python …`, continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = [line.split(" #", 1)[0].strip() for line in joined.splitlines()]
    return [command for command in commands if command.split(" ", 1)[0] in ("speechgpt-hf", "python")]


def snippets() -> list[tuple[str, str, str]]:
    """(id, language, code) of every snippet that runs: python blocks whole, bash blocks command by command."""
    found = []
    for language, line, code, skipped in readme_blocks(README.read_text()):
        if skipped:
            continue
        if language == "python":
            found.append((f"python-L{line}", "python", code))
        elif language == "bash":
            found += [(f"bash-L{line}-{shlex.split(c)[1]}", "bash", c) for c in shell_commands(code)]
    return found


def _tone(seconds: float, freq: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _write_audio(root: Path) -> None:
    """audio/ (six recordings, metadata.csv of transcripts), question.wav and speech.wav."""
    (root / "audio").mkdir()
    rows = ["file_name,transcription"]
    for i in range(6):
        soundfile.write(root / "audio" / f"utt{i}.wav", _tone(0.8 + 0.1 * i, 150 + 40 * i), 16000)
        rows.append(f"utt{i}.wav,sentence number {i}")
    (root / "audio" / "metadata.csv").write_text("\n".join(rows) + "\n")
    soundfile.write(root / "question.wav", _tone(1.0, 220), 16000)
    soundfile.write(root / "speech.wav", _tone(1.0, 330), 16000)


def _write_system(output: Path, audio: Path) -> None:
    """A tiny SpeechGPT, fitted MFCC unit tokenizer and four-voice vocoder, as the quickstart lays them out."""
    import torch

    from speechgpt_hf import SpeechGPTProcessor, add_speech_units
    from speechgpt_hf.models.unit_mel import UnitMelConfig, UnitMelVocoder
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
    from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer

    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS))
    units.fit(sorted(str(p) for p in audio.glob("*.wav")), max_iter=5, progress=False)
    units.save_pretrained(output / "unit-tokenizer")
    torch.manual_seed(0)
    config = UnitMelConfig(
        num_units=NUM_UNITS, num_speakers=len(VOICES), generator_config=TINY_MEL_GENERATOR, **TINY_VOCODER
    )
    vocoder = UnitMelVocoder(config)
    vocoder.config.speaker_names = list(VOICES)
    vocoder.save_pretrained(output / "vocoder")
    tokenizer = build_tiny_tokenizer()
    base = build_tiny_causal_lm("llama", vocab_size=len(tokenizer))
    base.save_pretrained(output / "base-lm")
    tokenizer.save_pretrained(output / "base-lm")
    model, tokenizer = add_speech_units(
        base,
        tokenizer,
        num_units=NUM_UNITS,
        unit_tokenizer_repo=str(output / "unit-tokenizer"),
        vocoder_repo=str(output / "vocoder"),
    )
    model.save_pretrained(output / "lm" / "chain_of_modality")
    processor = SpeechGPTProcessor(tokenizer, num_units=NUM_UNITS)
    processor.use_components_of(model.config)
    processor.save_pretrained(output / "lm" / "chain_of_modality")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    _write_audio(root)
    _write_system(root / "quickstart_output", root / "audio")
    return root


def test_the_snippets_found():
    """The check sees the README's examples (a renamed fence or a broken marker would silently drop them)."""
    found = snippets()
    print("\n".join(snippet_id for snippet_id, _, _ in found))
    assert sum(language == "python" for _, language, _ in found) >= 4
    assert sum(language == "bash" for _, language, _ in found) >= 2


@pytest.mark.parametrize(("language", "code"), [s[1:] for s in snippets()], ids=[s[0] for s in snippets()])
def test_readme_snippet_runs(language, code, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    if language == "python":
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
        return
    argv = shlex.split(code)
    if argv[0] == "python":
        subprocess.run([sys.executable, *argv[1:]], check=True, timeout=120)
        return
    import speechgpt_hf_cli

    assert speechgpt_hf_cli.main(argv[1:]) == 0


def _documented_names() -> set[str]:
    """Every `speechgpt_hf.…` dotted name in the README's prose and code, and every name its code imports from it."""
    text = README.read_text(encoding="utf-8")
    names = set(re.findall(r"\bspeechgpt_hf(?:\.[A-Za-z_]\w*)+", text))
    for module, imported in re.findall(r"from (speechgpt_hf(?:\.\w+)*) import ([\w, ()]+)", text):
        names.update(f"{module}.{name.strip()}" for name in imported.strip("()").split(",") if name.strip())
    return names


def test_every_public_name_the_readme_mentions_exists():
    import importlib

    missing = []
    for dotted in sorted(_documented_names()):
        parts = dotted.split(".")
        # the longest importable module prefix, then attributes down from it
        for cut in range(len(parts), 0, -1):
            try:
                target = importlib.import_module(".".join(parts[:cut]))
                break
            except ImportError:
                continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                missing.append(dotted)
                break
            target = getattr(target, attribute)
    assert len(_documented_names()) > 5 and not missing, f"README names that do not exist: {missing}"
