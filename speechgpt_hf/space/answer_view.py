"""A picture of a spoken answer: its unit sequence above the spectrogram of its speech.

Drawn with matplotlib's object API on an Agg canvas (no pyplot), because the Space draws from several request
threads at once and pyplot keeps global state.
"""

from __future__ import annotations

import numpy as np


def answer_picture(waveform: np.ndarray | None, sampling_rate: int, units: list[int] | None) -> np.ndarray | None:
    """An RGB image (height, width, 3) of the answer's units and spectrogram; None when it has neither."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    has_speech = waveform is not None and len(waveform) > 0
    if not units and not has_speech:
        return None
    rows = [kind for kind, present in (("units", bool(units)), ("speech", has_speech)) if present]
    figure = Figure(figsize=(7.0, 1.8 * len(rows)), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, kind in zip(axes, rows, strict=True):
        if kind == "units":
            ax.step(np.arange(len(units)), units, where="post", color="#4b3fa6", linewidth=1.0)
            ax.set(title=f"{len(units)} speech units", xlabel="unit position", ylabel="unit id")
        else:
            ax.specgram(waveform, Fs=sampling_rate, NFFT=512, noverlap=384, cmap="magma")
            ax.set(title=f"spoken answer, {len(waveform) / sampling_rate:.1f} s", xlabel="seconds", ylabel="Hz")
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


__all__ = ["answer_picture"]
