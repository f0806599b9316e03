"""The terminal conversation behind `speechgpt-hf chat`: typed lines in, streamed answers and numbered wav files out.

A line is a command (`/reset`, `/save PATH`, `/audio PATH`, `/help`, `/quit`), a path to an audio file (sent as a
speech turn), or text. A mistake in one turn (an unreadable file, a prompt too long) is reported on one line and
the conversation goes on; Ctrl-C stops the answer being generated, Ctrl-D or /quit ends the conversation.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import soundfile

from speechgpt_hf.inference.chat import SpeechGPTReply

from ._audio_player import play
from ._verbs import USER_ERRORS, UsageError, one_line

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a")
PROMPT = "you> "
ANSWER_LABEL = "speechgpt> "
HELP_TEXT = """Type a message and press Enter, or give a recording to speak to the model:
  PATH            an audio file (.wav, .flac, .ogg, .mp3, .m4a) is sent as a speech turn
  /audio PATH     send PATH as a speech turn, whatever its name
  /reset          forget the conversation so far
  /save PATH      write the conversation (turns and answer audio files) to PATH as JSON
  /help           show this help
  /quit           leave (Ctrl-D too); Ctrl-C stops an answer while it is generated"""


def parse_line(line: str) -> tuple[str, str]:
    """What a typed line asks for, as (kind, value): ("text", text), ("audio", path), (command, its argument),
    ("unknown", the command word) or ("empty", "").

    A path is a line ending in an audio suffix that is one word or names an existing file (quotes, as terminals
    add to dropped files, are removed)."""
    stripped = line.strip()
    if not stripped:
        return "empty", ""
    word, _, rest = stripped.partition(" ")
    if word == "/audio":
        return "audio", _unquote(rest.strip())
    if word in ("/reset", "/save", "/help", "/quit", "/exit"):
        return ("/quit" if word == "/exit" else word), rest.strip()
    candidate = _unquote(stripped)
    path = Path(candidate).expanduser()
    if path.suffix.lower() in AUDIO_SUFFIXES and (" " not in candidate or path.is_file()):
        return "audio", candidate
    if word.startswith("/") and "/" not in word[1:]:
        return "unknown", word
    return "text", stripped


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


class _AnswerPrinter:
    """Writes an answer's text deltas as they arrive: the label first, the heard transcript in parentheses."""

    def __init__(self) -> None:
        self.part: str | None = None

    def show(self, text: str, part: str | None) -> None:
        if self.part is None:
            sys.stdout.write(ANSWER_LABEL)
        if part != self.part:
            if self.part == "transcript":
                sys.stdout.write(") ")
            if part == "transcript":
                sys.stdout.write("(heard: ")
            self.part = part
        sys.stdout.write(text)
        sys.stdout.flush()

    def finish(self, note: str = "") -> None:
        """Ends the answer's line (with `note`, e.g. that it was stopped)."""
        if self.part is None:
            sys.stdout.write(ANSWER_LABEL.rstrip())
        sys.stdout.write((")" if self.part == "transcript" else "") + note + "\n")
        sys.stdout.flush()


class ChatSession:
    """One terminal conversation with a `SpeechGPTChat`.

    Args:
        chat: the SpeechGPTChat (its history is the conversation).
        output_dir: where spoken answers are written, as answer-001.wav, answer-002.wav, …
        player: the command that plays them (see `_audio_player.PLAYERS`); None only prints their paths.
        output_modality: "text" or "speech" to ask for that kind of answer; None leaves it to the model.
        generate_kwargs: passed to every `chat.stream` call (e.g. max_new_tokens).
        debug: print tracebacks of failed turns instead of one line.
        model_name: the model, as the transcript records it.
    """

    def __init__(
        self,
        chat: Any,
        output_dir: Path,
        player: str | None = None,
        output_modality: str | None = None,
        generate_kwargs: dict[str, Any] | None = None,
        debug: bool = False,
        model_name: str = "",
    ) -> None:
        self.chat = chat
        self.output_dir = Path(output_dir)
        self.player = player
        self.output_modality = output_modality
        self.generate_kwargs = dict(generate_kwargs or {})
        self.debug = debug
        self.model_name = model_name
        self.turns: list[dict[str, Any]] = []
        self._answer_number = 0

    def run(self, read_line: Callable[[str], str] | None = None) -> int:
        """Reads and answers lines (from `input` unless given) until /quit or end of input; returns the exit code."""
        read_line = read_line or input
        player = f"played with {self.player}" if self.player else "not played (no player, or --no-play)"
        print(f"Spoken answers are saved in {self.output_dir} and {player}. /help lists the commands.")
        while True:
            try:
                line = read_line(PROMPT)
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print("\n(Ctrl-D or /quit leaves the conversation.)")
                continue
            if not self.handle(line):
                return 0

    def handle(self, line: str) -> bool:
        """Carries out one typed line; False when it ends the conversation."""
        kind, value = parse_line(line)
        if kind == "/quit":
            return False
        try:
            if kind == "text":
                self.turn(text=value)
            elif kind == "audio":
                if not value:
                    raise UsageError("/audio needs a file: /audio question.wav")
                self.turn(audio=value)
            elif kind == "/reset":
                self.reset()
            elif kind == "/save":
                self.save(value)
            elif kind == "/help":
                print(HELP_TEXT)
            elif kind == "unknown":
                raise UsageError(f"Unknown command {value}; /help lists the commands.")
        except USER_ERRORS as error:
            sys.stdout.flush()
            if self.debug:
                traceback.print_exc()
            else:
                hint = "" if isinstance(error, UsageError) else " (--debug shows the traceback)"
                print(f"error: {one_line(error)}{hint}", file=sys.stderr, flush=True)
        return True

    def turn(self, text: str | None = None, audio: str | None = None) -> SpeechGPTReply | None:
        """Sends one turn, streaming the answer's text; writes and plays its speech. None when Ctrl-C stopped it."""
        source = None if audio is None else str(Path(audio).expanduser())
        events = self.chat.stream(text=text, audio=source, output_modality=self.output_modality, **self.generate_kwargs)
        printer, reply, stopped = _AnswerPrinter(), None, False
        try:
            for item in events:
                if isinstance(item, SpeechGPTReply):
                    reply = item
                elif item.text:
                    printer.show(item.text, item.part)
        except KeyboardInterrupt:
            stopped = True
            events.close()  # ends generation; the unfinished turn is not kept
        finally:
            if printer.part is not None or reply is not None or stopped:
                printer.finish(" [stopped]" if stopped else "")
        if reply is None:
            return None
        for problem in reply.response.problems:
            print(f"  note: {problem}")
        answer_audio = self._speak(reply)
        self._record(text, source, reply, answer_audio)
        return reply

    def _speak(self, reply: SpeechGPTReply) -> Path | None:
        """Writes the answer's speech to the next numbered wav and plays it; its path, or None without speech."""
        units = reply.response.units
        if not units:
            return None
        if reply.waveform is None:
            print(f"  ({len(units)} speech units, not voiced: the model's config names no vocoder)")
            return None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self._next_answer_path()
        soundfile.write(path, reply.waveform, reply.sampling_rate)
        print(f"  speech: {path} ({len(reply.waveform) / reply.sampling_rate:.1f} s)", flush=True)
        if self.player is not None:
            try:
                problem = play(self.player, path)
            except KeyboardInterrupt:
                problem = "playback stopped"
            if problem:
                print(f"  ({problem})")
        return path

    def _next_answer_path(self) -> Path:
        """answer-NNN.wav in the output folder, numbered after the last answer (files already there are kept)."""
        while True:
            self._answer_number += 1
            path = self.output_dir / f"answer-{self._answer_number:03d}.wav"
            if not path.exists():
                return path.resolve()

    def _record(self, text: str | None, audio: str | None, reply: SpeechGPTReply, answer_audio: Path | None) -> None:
        """Adds the turn to the transcript as a user and an assistant message (Hugging Face chat message form)."""
        asked = (
            {"type": "text", "text": text} if audio is None else {"type": "audio", "path": str(Path(audio).resolve())}
        )
        self.turns.append({"role": "user", "content": [asked]})
        response = reply.response
        answer: dict[str, Any] = {"role": "assistant", "content": []}
        if response.text:
            answer["content"].append({"type": "text", "text": response.text})
        if answer_audio is not None:
            answer["content"].append({"type": "audio", "path": str(answer_audio)})
        if response.transcript:
            answer["transcript"] = response.transcript
        if response.units:
            answer["units"] = response.units
        self.turns.append(answer)

    def reset(self) -> None:
        """Forgets the conversation: the model's history and the transcript (answer files stay on disk)."""
        self.chat.reset()
        self.turns = []
        print("The conversation is cleared.")

    def save(self, target: str) -> Path:
        """Writes the transcript since the last /reset to `target` as JSON and returns its path."""
        if not target:
            raise UsageError("/save needs a file name: /save conversation.json")
        path = Path(_unquote(target)).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        transcript = {
            "model": self.model_name,
            "system_prompt": self.chat.processor.system_prompt,
            "output_modality": self.output_modality,
            "turns": self.turns,
        }
        path.write_text(json.dumps(transcript, indent=2, ensure_ascii=False) + "\n")
        print(f"Saved {len(self.turns) // 2} turns to {path}")
        return path


__all__ = ["AUDIO_SUFFIXES", "ChatSession", "parse_line"]
