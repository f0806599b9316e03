"""Every example in README.md and docs/*.md runs, exactly as printed, against a tiny system built here.

The convention, for whoever edits these pages:
- every ```python block runs (each in a fresh namespace, so a block defines or imports every name it uses);
- in a ```bash block, every command starting with `speechgpt-hf` runs through the CLI in this process (lines ending
  in a backslash continue it) and must exit 0; one starting with `python` runs in a subprocess; other lines
  (`bash scripts/run.sh`, `accelerate launch`, `source`, comments) are shown but not run; a page's snippets run in
  its order in one folder of its own, so a command may use what an earlier one on the same page wrote
  (extract-units reads fit-units' my-units);
- a block preceded by `<!-- docs-check: skip (reason) -->` (on the line right before its fence) is not run: use it
  for what needs the network, a GPU, the original release's files, or more than a few seconds, and give the reason;
- snippets run in a folder holding what the pages say they come from: `quickstart_output/` laid out as
  `speechgpt-hf quickstart` writes it (lm/chain_of_modality, base-lm, unit-tokenizer, vocoder, with K=64 units
  and a vocoder with one voice per training voice), an `audio/` folder of recordings with a metadata.csv of transcripts (datasets'
  audiofolder convention), and `question.wav` / `speech.wav`.
New pages and sections are picked up on their own; `test_the_snippets_found` lists them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechgpt_hf.testing_utils import tiny_mel_generator_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = (README, *sorted((ROOT / "docs").glob("*.md")))
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


def page_name(document: Path) -> str:
    """The page's path from the repository root, without ".md": "README", "docs/training"."""
    return document.relative_to(ROOT).with_suffix("").as_posix()


def snippets(document: Path) -> list[tuple[str, str, str]]:
    """(id, language, code) of every snippet of a page that runs: python blocks whole, bash blocks command by
    command."""
    found, page = [], page_name(document)
    for language, line, code, skipped in readme_blocks(document.read_text(encoding="utf-8")):
        if skipped:
            continue
        if language == "python":
            found.append((f"{page}-python-L{line}", "python", code))
        elif language == "bash":
            found += [(f"{page}-bash-L{line}-{shlex.split(c)[1]}", "bash", c) for c in shell_commands(code)]
    return found


def all_snippets() -> list[tuple[Path, str, str, str]]:
    """(page, id, language, code) of the snippets of every page, pages in DOCUMENTS order."""
    return [(document, *snippet) for document in DOCUMENTS for snippet in snippets(document)]


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
def template(tmp_path_factory) -> Path:
    """The folder every page's snippets start from."""
    root = tmp_path_factory.mktemp("docs-template")
    _write_audio(root)
    _write_system(root / "quickstart_output", root / "audio")
    return root


@pytest.fixture(scope="module")
def workdirs(template, tmp_path_factory):
    """The working folder of a page: a copy of the template, made on the page's first snippet."""
    made: dict[Path, Path] = {}

    def folder(document: Path) -> Path:
        if document not in made:
            made[document] = tmp_path_factory.mktemp(page_name(document).replace("/", "-"))
            shutil.copytree(template, made[document], dirs_exist_ok=True)
        return made[document]

    return folder


def test_the_snippets_found():
    """The check sees every page's examples (a renamed fence or a broken marker would silently drop them)."""
    found = all_snippets()
    print("\n".join(snippet_id for _, snippet_id, _, _ in found))
    readme = [language for document, _, language, _ in found if document == README]
    assert readme.count("python") >= 3  # load and chat, transcribe, speak
    pages = {document for document, _, _, _ in found}
    assert len(DOCUMENTS) >= 8 and pages == set(DOCUMENTS), f"pages without a running snippet: {set(DOCUMENTS) - pages}"


@pytest.mark.parametrize(
    ("document", "language", "code"), [(s[0], *s[2:]) for s in all_snippets()], ids=[s[1] for s in all_snippets()]
)
def test_snippet_runs(document, language, code, workdirs, monkeypatch):
    monkeypatch.chdir(workdirs(document))
    if language == "python":
        exec(compile(code, str(document), "exec"), {"__name__": "__docs__"})
        return
    argv = shlex.split(code)
    if argv[0] == "python":
        subprocess.run([sys.executable, *argv[1:]], check=True, timeout=120)
        return
    import speechgpt_hf_cli

    assert speechgpt_hf_cli.main(argv[1:]) == 0


def _documented_names() -> set[str]:
    """Every `speechgpt_hf.…` dotted name in the pages' prose and code, and every name their code imports from it."""
    text = "\n".join(document.read_text(encoding="utf-8") for document in DOCUMENTS)
    names = set(re.findall(r"\bspeechgpt_hf(?:\.[A-Za-z_]\w*)+", text))
    for module, imported in re.findall(r"from (speechgpt_hf(?:\.\w+)*) import ([\w, ()]+)", text):
        imported_names = (name.split(" as ")[0].strip() for name in imported.strip("()").split(","))
        names.update(f"{module}.{name}" for name in imported_names if name)
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
    assert len(_documented_names()) > 5 and not missing, f"names on the pages that do not exist: {missing}"


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_resolves():
    """A moved or renamed file does not leave a page pointing at nothing."""
    broken = []
    for document in DOCUMENTS:
        for target in LINK.findall(document.read_text(encoding="utf-8")):
            if "://" not in target and not (document.parent / target).exists():
                broken.append(f"{page_name(document)}: {target}")
    assert not broken, f"links to missing files: {broken}"


def test_the_readme_stays_short():
    """The README is what a newcomer reads first; the rest lives in docs/."""
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


def _activate_line() -> str:
    """The README's line that activates the environment scripts/run.sh built."""
    lines = [line for _, _, code, _ in readme_blocks(README.read_text(encoding="utf-8")) for line in code.splitlines()]
    found = [line.split(" #", 1)[0].strip() for line in lines if line.startswith("source ") and "activate" in line]
    assert len(found) == 1, f"the README should show one activate line, not {found}"
    return found[0]


def test_the_readme_activate_line_gives_a_working_shell(tmp_path):
    """A new shell that runs the README's activate line, from the clone, imports the package and runs the CLI.
    The line names the environment under ~/.cache/speechgpt-hf/ that run.sh builds; here HOME is a folder where
    that path leads to the environment running this test."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests are not running in a virtual environment")
    key = subprocess.run(["sha256sum", "constraints.txt"], cwd=ROOT, capture_output=True, text=True, check=True)
    venv = tmp_path / ".cache" / "speechgpt-hf" / f"venv-{key.stdout[:12]}"
    venv.parent.mkdir(parents=True)
    venv.symlink_to(sys.prefix, target_is_directory=True)
    clean_path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    env = {**os.environ, "HOME": str(tmp_path), "PATH": clean_path}
    env.pop("VIRTUAL_ENV", None)
    script = f"{_activate_line()}\npython -c 'import speechgpt_hf, sys; print(sys.prefix)'\nspeechgpt-hf --help"
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.splitlines()[0]).resolve() == Path(sys.prefix).resolve()
    assert "usage: speechgpt-hf" in result.stdout and "quickstart" in result.stdout
