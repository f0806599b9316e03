"""`speechgpt-hf chat`: a conversation in a pseudo-terminal with a tiny saved system, and its parts in-process.

The tiny LM's generation config scripts its answer (a sequence bias on every prefix of a chain-of-modality answer
right after `[SpeechGPT]:`), so every turn runs the real generate loop, streamer and vocoder and gives a known reply.
"""

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from speechgpt_hf.inference.chat import GENERATION_THREAD, SpeechGPTChat, SpeechGPTReply
from speechgpt_hf.inference.speech_streamer import StreamEvent
from speechgpt_hf.models.speechgpt.prompt_format import SPEECHGPT, SpeechGPTResponse
from speechgpt_hf.models.unit_hifigan import UnitHiFiGANConfig, UnitHiFiGANVocoder
from speechgpt_hf.models.unit_tokenizer import SpeechUnitTokenizer, SpeechUnitTokenizerConfig
from speechgpt_hf_cli import main as cli_main
from speechgpt_hf_cli._audio_player import find_player
from speechgpt_hf_cli._chat_session import ChatSession, parse_line

ROOT = Path(__file__).resolve().parents[1]
NUM_UNITS = 50
ANSWER = "[tq] hello; [ta] hi there; [ua] <sosp><3><4><4><9><12><1><eosp><eoa>"
UNITS = [3, 4, 4, 9, 12, 1]
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal control sequences (readline's bracketed paste)


@pytest.fixture
def system(tmp_path, tiny_speechgpt) -> Path:
    """A saved tiny system (LM folder naming its unit tokenizer and vocoder) whose answer is always ANSWER."""
    folder = tmp_path / "system"
    model, processor = tiny_speechgpt(num_units=NUM_UNITS)
    units = SpeechUnitTokenizer(SpeechUnitTokenizerConfig(feature_type="mfcc", num_units=NUM_UNITS))
    torch.manual_seed(0)
    vocoder = UnitHiFiGANVocoder(
        UnitHiFiGANConfig(
            num_units=NUM_UNITS,
            unit_embed_dim=16,
            duration_predictor_hidden_dim=16,
            upsample_initial_channel=32,
            upsample_rates=[5, 4, 4, 4],
            upsample_kernel_sizes=[11, 8, 8, 8],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3]],
        )
    )
    units.save_pretrained(folder / "units")
    vocoder.save_pretrained(folder / "vocoder")
    model.config.unit_tokenizer_repo, model.config.vocoder_repo = str(folder / "units"), str(folder / "vocoder")
    # The context the answer follows: `[SpeechGPT]: `, as the prompt tokenises it.
    prompt = processor.encode(processor.build_prompt("hello"))
    context = prompt[len(prompt) - prompt[::-1].index(processor.tokenizer.convert_tokens_to_ids(SPEECHGPT)) - 1 :]
    answer = processor.encode(ANSWER, add_special_tokens=False) + [processor.tokenizer.eos_token_id]
    model.generation_config.sequence_bias = [[context + answer[: k + 1], 100.0] for k in range(len(answer))]
    model.generation_config.do_sample = False
    model.save_pretrained(folder / "lm")
    processor.save_pretrained(folder / "lm")
    return folder / "lm"


def _tone(path: Path, seconds: float = 1.0) -> Path:
    t = np.arange(int(16000 * seconds)) / 16000
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32), 16000)
    return path


class Terminal:
    """A command run on a pseudo-terminal, read and typed into as a person would."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.fd, child = pty.openpty()
        self.process = subprocess.Popen(
            argv, stdin=child, stdout=child, stderr=child, env=env, cwd=cwd, start_new_session=True
        )
        os.close(child)
        self.output, self._raw, self._read = "", "", 0

    def expect(self, pattern: str, timeout: float = 180.0) -> re.Match:
        """Waits for `pattern` in the output after the previous match; fails showing the output so far."""
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self.output[self._read :])):
            remaining = deadline - time.monotonic()
            ready = select.select([self.fd], [], [], max(remaining, 0))[0] if remaining > 0 else []
            try:
                data = os.read(self.fd, 4096) if ready else b""
            except OSError:  # EIO: the program closed the terminal
                data = b""
            if not data:
                raise AssertionError(f"{pattern!r} did not appear; the terminal showed:\n{self.output}")
            self._raw += data.decode(errors="replace")
            self.output = ESCAPE.sub("", self._raw).replace("\r\n", "\n")
        self._read += match.end()
        return match

    def type(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.fd)


def test_a_conversation_in_a_terminal(system, tmp_path):
    bin_dir = tmp_path / "bin"  # a stand-in player that notes what it was asked to play
    bin_dir.mkdir()
    (bin_dir / "aplay").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "played.txt"}\n')
    (bin_dir / "aplay").chmod(0o755)
    question = _tone(tmp_path / "question.wav")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    answers = tmp_path / "answers"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    argv = [sys.executable, "-m", "speechgpt_hf_cli", "chat", str(system), "--output-dir", str(answers)]
    terminal = Terminal(argv, env, cwd=tmp_path)
    try:
        terminal.expect(r"/help lists the commands\.\nyou> ")
        terminal.type("hello there")
        terminal.expect(r"speechgpt> \(heard: hello\) hi there\n")
        terminal.expect(r"speech: (\S+answer-001\.wav) \(\d+\.\d s\)\nyou> ")
        terminal.type(question.name)
        terminal.expect(r"speechgpt> \(heard: hello\) hi there\n  speech: \S+answer-002\.wav")
        terminal.type("/save saved/conversation.json")
        terminal.expect(r"Saved 2 turns to saved/conversation\.json\nyou> ")
        transcript = json.loads((tmp_path / "saved" / "conversation.json").read_text())
        terminal.type("/audio missing.wav")
        terminal.expect(r"error: Audio file not found: missing\.wav\. \(--debug shows the traceback\)\n")
        terminal.type("broken.wav")
        terminal.expect(r"error: Could not decode \S*broken\.wav: it is corrupt or not an audio file")
        terminal.type("/frobnicate")
        terminal.expect(r"error: Unknown command /frobnicate; /help lists the commands\.\n")
        terminal.type("still there?")
        terminal.expect(r"speechgpt> \(heard: hello\) hi there\n  speech: \S+answer-003\.wav")
        terminal.type("/reset")
        terminal.expect(r"The conversation is cleared\.\nyou> ")
        terminal.type("/save after-reset.json")
        terminal.expect(r"Saved 0 turns")
        terminal.type("/help")
        terminal.expect(r"/save PATH +write the conversation")
        terminal.type("/quit")
        assert terminal.process.wait(timeout=60) == 0
    finally:
        terminal.close()
    assert "Traceback" not in terminal.output
    said = [{"type": "text", "text": "hello there"}], [{"type": "audio", "path": str(question.resolve())}]
    assert [turn["content"] for turn in transcript["turns"][::2]] == list(said)
    for number, turn in enumerate(transcript["turns"][1::2], start=1):
        wav = str((answers / f"answer-{number:03d}.wav").resolve())
        assert turn["content"] == [{"type": "text", "text": "hi there"}, {"type": "audio", "path": wav}]
        assert (turn["role"], turn["transcript"], turn["units"]) == ("assistant", "hello", UNITS)
        audio, rate = soundfile.read(wav)
        assert rate == 16000 and len(audio) > 0
    assert json.loads((tmp_path / "after-reset.json").read_text())["turns"] == []
    played = (tmp_path / "played.txt").read_text().splitlines()
    assert played == [f"-q {(answers / f'answer-{n:03d}.wav').resolve()}" for n in (1, 2, 3)]


def _session(chat, tmp_path, **kwargs) -> ChatSession:
    return ChatSession(chat, tmp_path / "answers", **kwargs)


def test_turns_build_the_history_and_reset_clears_it(system, tmp_path, capsys):
    chat = SpeechGPTChat.from_pretrained(str(system))
    session = _session(chat, tmp_path, output_modality="speech", generate_kwargs={"max_new_tokens": 30})
    assert session.handle("hello there") and session.handle(str(_tone(tmp_path / "q.wav")))
    assert len(chat.history) == 2 and "Please answer in speech." in chat.history[0][0]
    assert chat.history[1][0].count("<sosp>") == 1  # the recording went in as units
    session.handle("/reset")
    assert chat.history == [] and session.turns == []
    assert session.handle("/quit") is False and session.handle("/exit") is False


def _keyboard(*keys):
    """A stand-in for `input`: each call gives the next line, or raises the next exception (EOFError for Ctrl-D)."""
    pressed = iter(keys)

    def read_line(prompt: str) -> str:
        key = next(pressed)
        if not isinstance(key, str):
            raise key
        return key

    return read_line


def test_the_options_reach_the_conversation(system, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("builtins.input", _keyboard("hello there", f"/save {tmp_path / 'chat.json'}", EOFError))
    argv = [
        "chat",
        str(system),
        "--system-prompt",
        "Be brief.",
        "--output-modality",
        "text",
        "--max-new-tokens",
        "4",
        "--no-play",
        "--output-dir",
        str(tmp_path / "answers"),
    ]
    assert cli_main(argv) == 0
    saved = json.loads((tmp_path / "chat.json").read_text())
    assert (saved["system_prompt"], saved["output_modality"]) == ("Be brief.", "text")
    assert "note: The answer has no end marker" in capsys.readouterr().out  # cut off after 4 tokens


class PressCtrlC(LogitsProcessor):
    """Sends the process SIGINT (as Ctrl-C in a terminal does) at the third generated token."""

    steps = 0

    def __call__(self, input_ids, scores):
        self.steps += 1
        if self.steps == 3:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(3.0)  # a person's Ctrl-C lands while the answer is still being written, not after its end
        return scores


def test_ctrl_c_stops_the_answer_being_generated_and_the_conversation_goes_on(system, tmp_path, capsys):
    # Python's own Ctrl-C handling, as a fresh `speechgpt-hf chat` has it, whatever an earlier test installed.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _press_ctrl_c_during_an_answer(system, tmp_path, capsys)
    finally:
        signal.signal(signal.SIGINT, previous)


def _press_ctrl_c_during_an_answer(system, tmp_path, capsys) -> None:
    chat = SpeechGPTChat.from_pretrained(str(system))
    press = PressCtrlC()
    session = _session(chat, tmp_path, generate_kwargs={"logits_processor": LogitsProcessorList([press])})
    assert session.turn(text="hello there") is None
    assert capsys.readouterr().out.endswith(" [stopped]\n")
    for worker in [t for t in threading.enumerate() if t.name == GENERATION_THREAD]:
        worker.join(timeout=30)
        assert not worker.is_alive()
    answer_tokens = len(chat.processor.encode(ANSWER, add_special_tokens=False))
    assert press.steps < answer_tokens and chat.history == [] and session.turns == []
    session.generate_kwargs = {}
    assert session.turn(text="hello there").response.units == UNITS and len(chat.history) == 1


def test_ctrl_c_at_the_prompt_is_not_the_end_but_ctrl_d_is(tmp_path, capsys):
    assert _session(None, tmp_path).run(_keyboard(KeyboardInterrupt, "/help", EOFError)) == 0
    shown = capsys.readouterr().out
    assert "(Ctrl-D or /quit leaves the conversation.)" in shown and "/save PATH" in shown


def test_speech_without_a_player_or_a_vocoder_is_never_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_player() is None

    class Speaker:
        def __init__(self, waveform):
            self.waveform = waveform

        def stream(self, **kwargs):
            reply = SpeechGPTReply(response=SpeechGPTResponse(text="hi", units=UNITS), waveform=self.waveform)
            yield StreamEvent(text="hi", part="answer")
            yield reply

    _session(Speaker(np.zeros(1600, dtype=np.float32)), tmp_path).turn(text="hello")
    assert f"speech: {(tmp_path / 'answers' / 'answer-001.wav').resolve()} (0.1 s)" in capsys.readouterr().out
    _session(Speaker(None), tmp_path).turn(text="hello")
    assert "6 speech units, not voiced" in capsys.readouterr().out


def test_a_player_that_fails_is_reported_and_the_answer_kept(tmp_path, monkeypatch, capsys):
    (tmp_path / "aplay").write_text("#!/bin/sh\necho 'no soundcards found' >&2\nexit 1\n")
    (tmp_path / "aplay").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    reply = SpeechGPTReply(response=SpeechGPTResponse(units=UNITS), waveform=np.zeros(1600, dtype=np.float32))
    path = _session(None, tmp_path, player="aplay")._speak(reply)
    assert path.exists() and "(aplay could not play it: no soundcards found)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello there", ("text", "hello there")),
        ("  ", ("empty", "")),
        ("question.wav", ("audio", "question.wav")),
        ("'my question.flac'", ("text", "'my question.flac'")),  # a name with a space is a path only if it exists
        ("/audio 'my question.flac'", ("audio", "my question.flac")),
        ("/usr/share/sounds/alert.WAV", ("audio", "/usr/share/sounds/alert.WAV")),
        ("/save out.json", ("/save", "out.json")),
        ("/reset", ("/reset", "")),
        ("/exit", ("/quit", "")),
        ("/what", ("unknown", "/what")),
        ("what is a .wav file?", ("text", "what is a .wav file?")),
    ],
)
def test_what_a_typed_line_asks_for(line, expected):
    assert parse_line(line) == expected


def test_an_existing_recording_with_a_space_in_its_name_is_audio(tmp_path):
    recording = _tone(tmp_path / "my question.flac", seconds=0.1)
    assert parse_line(f"'{recording}'") == ("audio", str(recording))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["chat", "{tmp}/no-such-model"], "MODEL {tmp}/no-such-model: no such folder"),
        (["chat", "someone/not-downloaded"], "no cached copy of that Hub repo while offline"),
        (["chat", "{tmp}", "--max-new-tokens", "0"], "--max-new-tokens 0: give a positive number of tokens."),
    ],
)
def test_a_model_that_cannot_be_loaded_is_one_line_and_exit_code_2(argv, expected, tmp_path, capsys):
    assert cli_main([part.format(tmp=tmp_path) for part in argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("speechgpt-hf chat: error: ") and expected.format(tmp=tmp_path) in error
    assert error.count("\n") == 1
