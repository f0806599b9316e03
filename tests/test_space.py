"""`speechgpt-hf space`: the Space folder holds this package's source, pinned requirements and the whole system; its app, run as the Space runs it, answers text and speech, streams the spoken answer, keeps each session's
conversation apart and answers bad uploads with a message."""

import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from transformers import LogitsProcessor

import speechgpt_hf_cli
from speechgpt_hf.space.wheel import package_wheel, repack_installed

REPO = Path(__file__).resolve().parents[1]
NUM_UNITS = 30
TINY_VOCODER = dict(
    unit_embed_dim=16,
    duration_predictor_hidden_dim=16,
    upsample_initial_channel=16,
    upsample_rates=[5, 4, 4, 4],
    upsample_kernel_sizes=[11, 8, 8, 8],
    resblock_kernel_sizes=[3],
    resblock_dilation_sizes=[[1, 3]],
)


def _tone(path: Path, seconds: float) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32), 16000)
    return path


def _tiny_system(num_units: int = NUM_UNITS):
    """(model, processor, unit tokenizer, vocoder): a random tiny SpeechGPT system."""
    from speechgpt_hf import SpeechGPTProcessor, add_speech_units
    from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder
    from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
    from speechgpt_hf.testing_utils import build_tiny_causal_lm, build_tiny_tokenizer, fan_in_init_

    tokenizer = build_tiny_tokenizer()
    model, tokenizer = add_speech_units(build_tiny_causal_lm(vocab_size=len(tokenizer)), tokenizer, num_units=num_units)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=num_units))
    torch.manual_seed(0)
    vocoder = UnitHiFiGANVocoder(UnitHiFiGANConfig(num_units=num_units, **TINY_VOCODER))
    fan_in_init_(vocoder)
    return model, SpeechGPTProcessor(tokenizer, num_units=num_units), units, vocoder


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    """A Space assembled with --copy-model from a system saved as the quickstart lays it out; the source system is
    moved away afterwards, so the Space can only run from what it carries."""
    root = tmp_path_factory.mktemp("space")
    model, processor, units, vocoder = _tiny_system()
    units.save_pretrained(root / "system" / "unit-tokenizer")
    vocoder.save_pretrained(root / "system" / "vocoder")
    model.config.unit_tokenizer_repo = str(root / "system" / "unit-tokenizer")
    model.config.vocoder_repo = str(root / "system" / "vocoder")
    model.save_pretrained(root / "system" / "lm" / "chain_of_modality")
    processor.use_components_of(model.config)  # as every processor saved beside a model by this package
    processor.save_pretrained(root / "system" / "lm" / "chain_of_modality")
    lm = str(root / "system" / "lm" / "chain_of_modality")
    assert (
        speechgpt_hf_cli.main(["space", str(root / "Space"), "--model", lm, "--copy-model", "--max-seconds", "3"]) == 0
    )
    (root / "system").rename(root / "moved-away")
    return root / "Space"


def test_the_folder_is_a_space_with_its_card_wheel_and_system(space):
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(space / "README.md").data
    assert (card.sdk, card.sdk_version, card.app_file) == ("gradio", metadata.version("gradio"), "app.py")
    pins = (space / "requirements.txt").read_text().split()
    assert all("==" in pin for pin in pins)  # only registry packages: the Hub installs this file on its own
    for packaged in ("speechgpt_hf/space/app.py", "speechgpt_hf/hub_cards/space_card.md", "speechgpt_hf_cli/space.py"):
        assert (space / packaged).is_file()
    assert not list(space.glob("*.dist-info"))
    constraints = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line)
    pinned = dict(pin.split("==") for pin in pins)
    assert {"torch", "transformers", "gradio", "soundfile"} <= set(pinned)
    assert {name: version for name, version in pinned.items() if name in constraints} == {
        name: constraints[name] for name in pinned if name in constraints
    }
    assert (space / "packages.txt").read_text().split() == ["ffmpeg"]
    config = (space / "system" / "lm" / "config.json").read_text()
    assert '"unit_tokenizer_repo": "../unit-tokenizer"' in config and '"vocoder_repo": "../vocoder"' in config
    processor = (space / "system" / "lm" / "processor_config.json").read_text()
    assert '"unit_tokenizer_repo": "../unit-tokenizer"' in processor and '"vocoder_repo": "../vocoder"' in processor
    assert (space / "system" / "vocoder" / "config.json").is_file()
    assert "MODEL = 'system/lm'" in (space / "app.py").read_text()


def test_the_requirements_resolve_and_the_app_imports_the_bundled_source(space):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "-r", "requirements.txt"],
        cwd=space,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    probe = "import sys; sys.path.insert(0, '.'); import speechgpt_hf.space.app as a; print(a.__file__)"
    imported = subprocess.run([sys.executable, "-c", probe], cwd=space, capture_output=True, text=True, timeout=300)
    assert Path(imported.stdout.strip()).resolve() == (space / "speechgpt_hf" / "space" / "app.py").resolve()


def test_an_installed_wheel_packs_back_into_the_same_wheel(tmp_path):
    wheel = package_wheel(tmp_path / "built")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(tmp_path / "site"),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    (info,) = (tmp_path / "site").glob("speechgpt_hf-*.dist-info")
    repacked = repack_installed(metadata.Distribution.at(info), tmp_path)
    assert repacked.name == wheel.name
    original, packed = zipfile.ZipFile(wheel), zipfile.ZipFile(repacked)
    names = sorted(n for n in original.namelist() if not n.endswith("RECORD"))
    assert sorted(n for n in packed.namelist() if not n.endswith("RECORD")) == names
    assert all(original.read(n) == packed.read(n) for n in names)


def test_a_local_model_needs_copy_model_and_a_full_folder_needs_overwrite(space, tmp_path, capsys):
    assert speechgpt_hf_cli.main(["space", str(tmp_path / "s"), "--model", str(space / "system" / "lm")]) == 2
    assert "--copy-model" in capsys.readouterr().err
    assert speechgpt_hf_cli.main(["space", str(space), "--model", "org/model"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served_space(space, tmp_path_factory):
    """The Space's own `python app.py` on a free local port (the package imported from this checkout)."""
    port, log = _free_port(), tmp_path_factory.mktemp("served") / "app.log"
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "SPEECHGPT_MAX_NEW_TOKENS": "24",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=out, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 240
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the Space did not start:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def _said(messages: list[dict], role: str, kind: str = "text") -> list:
    return [item[kind] for m in messages if m["role"] == role for item in m["content"] if item["type"] == kind]


def _send(client, text: str = "", files: tuple = (), answer_in: str = "as asked") -> list[dict]:
    from gradio_client import handle_file

    message = {"text": text, "files": [handle_file(str(f)) for f in files]}
    return client.predict(message, answer_in, api_name="/respond")[0]


def test_a_text_turn_and_a_speech_turn(served_space, tmp_path):
    client = _client(served_space)
    messages = _send(client, "Name a red fruit.", answer_in="text")
    assert _said(messages, "user") == ["Name a red fruit."] and len(_said(messages, "assistant")) == 1
    messages = _send(client, files=[_tone(tmp_path / "question.wav", 1.0)], answer_in="speech")
    assert Path(_said(messages, "user", "file")[0]).name == "question.wav"
    assert len(_said(messages, "assistant")) == 2  # the second answer, after the first turn kept in the chat


def test_two_sessions_at_once_keep_their_own_conversations(served_space):
    first, second = _client(served_space), _client(served_space)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        asked = [pool.submit(_send, first, "Name a red fruit."), pool.submit(_send, second, "Name a blue bird.")]
        assert [_said(job.result(), "user") for job in asked] == [["Name a red fruit."], ["Name a blue bird."]]
    assert _said(_send(first, "And another one?"), "user") == ["Name a red fruit.", "And another one?"]


def test_uploads_that_are_not_audio_or_too_long_get_a_message(served_space, tmp_path):
    client = _client(served_space)
    (tmp_path / "notes.txt").write_text("not a recording")
    refusal = _said(_send(client, files=[tmp_path / "notes.txt"]), "assistant")[-1]
    assert "notes.txt is not a recording I can play" in refusal and "Traceback" not in refusal
    refusal = _said(_send(client, files=[_tone(tmp_path / "long.wav", 4.0)]), "assistant")[-1]
    assert "long.wav is 4.0 s long; this Space takes recordings of up to 3 s" in refusal


class ScriptedAnswer(LogitsProcessor):
    """Forces a fixed answer, picking the next token from how much of it already ends the sequence."""

    def __init__(self, answer_ids: list[int]) -> None:
        self.answer_ids = answer_ids

    def __call__(self, input_ids, scores):
        ids = input_ids[0].tolist()
        done = next(k for k in range(len(self.answer_ids), -1, -1) if k == 0 or ids[-k:] == self.answer_ids[:k])
        forced = torch.full_like(scores, -float("inf"))
        forced[:, self.answer_ids[min(done, len(self.answer_ids) - 1)]] = 0
        return forced


def test_the_spoken_answer_streams_before_the_turn_ends_and_gets_a_picture(tmp_path):
    from speechgpt_hf.inference.chat import SpeechGPTChat
    from speechgpt_hf.space.app import LazyChat, SpaceSession, new_state

    model, processor, units, vocoder = _tiny_system()
    spoken = "".join(f"<{u % NUM_UNITS}>" for u in range(0, 120, 7))
    answer = processor.encode(f"[ta] here it is; [ua] <sosp>{spoken}<eosp><eoa>", add_special_tokens=False)
    chat = SpeechGPTChat(
        model,
        processor,
        unit_tokenizer=units,
        vocoder=vocoder,
        generation_kwargs={"max_new_tokens": 40, "logits_processor": [ScriptedAnswer(answer)]},
    )
    session = SpaceSession(LazyChat(lambda: chat), max_seconds=3, audio_dir=tmp_path)
    steps = list(session.respond({"text": "Say something.", "files": []}, "speech", new_state()))
    chunks = [audio for _, audio, _, _, _ in steps[:-1] if audio is not None]
    messages, _, picture, state, _ = steps[-1]
    assert chunks and all(rate == vocoder.config.sampling_rate for rate, _ in chunks)
    (wav,) = [m["content"]["path"] for m in messages if isinstance(m["content"], dict)]
    assert soundfile.info(wav).frames == sum(len(samples) for _, samples in chunks)
    assert picture.ndim == 3 and picture.shape[2] == 3
    assert messages[1]["content"].startswith("here it is") and len(state["history"]) == 1
    assert chat.history == []  # the shared chat keeps no session's turns


@pytest.mark.parametrize("variable", ["SPEECHGPT_QUEUE_SIZE", "SPEECHGPT_CONCURRENCY"])
def test_a_queue_that_could_serve_no_one_is_refused_by_name(variable, monkeypatch):
    from speechgpt_hf.space.app import launch

    monkeypatch.setenv(variable, "0")
    with pytest.raises(ValueError, match=f"{variable}\\) must be at least 1, got 0: unset it"):
        launch("no-model-is-loaded-before-the-first-request")


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver); no browser is downloaded",
)
def test_two_browser_sessions_each_see_only_their_own_turn(served_space, tmp_path):
    """Real headless browsers type a question each; the screenshot goes to $SPEECHGPT_SPACE_SCREENSHOT when set."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install 'speechgpt-hf[browser]'")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    browsers = [webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER)) for _ in range(2)]
    try:
        for browser, question in zip(browsers, ("Name a red fruit.", "Name a blue bird."), strict=True):
            browser.get(served_space)
            _ask_in_browser(browser, question)
        for browser, question, other in (
            (browsers[0], "red fruit", "blue bird"),
            (browsers[1], "blue bird", "red fruit"),
        ):
            _wait(browser, lambda b, q=question: q in _chat_text(b) and _idle(b))
            assert other not in _chat_text(browser)
        browsers[0].save_screenshot(str(tmp_path / "space.png"))
        if os.environ.get("SPEECHGPT_SPACE_SCREENSHOT"):
            shutil.copy(tmp_path / "space.png", os.environ["SPEECHGPT_SPACE_SCREENSHOT"])
    finally:
        for browser in browsers:
            browser.quit()


def _wait(browser, condition, seconds: float = 120) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, seconds, poll_frequency=0.5).until(condition)


def _ask_in_browser(browser, question: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    selector = (By.CSS_SELECTOR, "textarea[placeholder^='Ask anything']")
    _wait(browser, lambda b: b.find_elements(*selector))
    box = browser.find_element(*selector)
    box.send_keys(question)
    box.send_keys(Keys.ENTER)


def _chat_text(browser) -> str:
    return browser.execute_script("return document.body.innerText")


def _idle(browser) -> bool:
    """No request of this page is still running (gradio shows a progress timer while one is)."""
    return not browser.execute_script("return document.querySelectorAll('.eta-bar, .progress-text').length")
