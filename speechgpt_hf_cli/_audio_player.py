"""Plays a wav file through the first command-line player found on PATH (aplay, paplay, ffplay), if any."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Player name -> its command line before the file name (quiet, and ffplay without a window).
PLAYERS: dict[str, list[str]] = {
    "aplay": ["aplay", "-q"],
    "paplay": ["paplay"],
    "ffplay": ["ffplay", "-nodisp", "-autoexit", "-loglevel", "error"],
}


def find_player() -> str | None:
    """The first of aplay, paplay and ffplay on PATH, or None when the machine has none."""
    return next((name for name in PLAYERS if shutil.which(name)), None)


def play(player: str, path: Path) -> str | None:
    """Plays `path` with `player` until it ends; returns None, or a line saying why it could not be played.

    Ctrl-C stops the playback (the player is ended) and propagates as KeyboardInterrupt."""
    try:
        done = subprocess.run(
            [*PLAYERS[player], str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
    except OSError as error:
        return f"{player} could not start: {error}"
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        return f"{player} could not play it: {reason}"
    return None


__all__ = ["PLAYERS", "find_player", "play"]
