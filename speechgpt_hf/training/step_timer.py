"""The expected time a training step takes, measured on the first steps and reported once, with the whole run's.

A default that is fine on a GPU can take hours on a CPU; saying so after a few steps lets a user stop early and
pick a smaller configuration instead of finding out at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from transformers import TrainerCallback


def _duration(seconds: float) -> str:
    """`3 h 05 min`, `12 min 04 s` or `8.2 s`."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


class StepTimer:
    """Times steps `skip + 1` to `skip + measure` (the first ones pay for warm-up) and then calls `report` once with
    the mean time a step and the time the remaining steps of `total_steps` will take."""

    def __init__(self, total_steps: int, report: Callable[[str], None], skip: int = 1, measure: int = 3) -> None:
        self.total_steps, self.report, self.skip, self.measure = total_steps, report, skip, measure
        self._start: float | None = None
        self._done = False

    def step_ended(self, step: int) -> None:
        """Call after every step with the number of steps done so far (1 after the first)."""
        if self._done or step < self.skip:
            return
        if self._start is None:  # after the skipped steps (or the first step of a resumed run)
            self._start, self._first = time.perf_counter(), step
            return
        if step - self._first >= self.measure:
            per_step = (time.perf_counter() - self._start) / (step - self._first)
            left = max(0, self.total_steps - step)
            self.report(
                f"Expected time: {_duration(per_step)} a step, about {_duration(per_step * left)} for the "
                f"{left} steps left of {self.total_steps} (fewer steps or a smaller model for a quicker run)."
            )
            self._done = True


class StepTimeCallback(TrainerCallback):
    """A transformers `Trainer` callback that reports the expected time per step once (on the main process)."""

    def __init__(self, report: Callable[[str], None] = print) -> None:
        self.report = report
        self._timer: StepTimer | None = None

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 (the TrainerCallback signature)
        if not state.is_world_process_zero:
            return
        if self._timer is None:
            self._timer = StepTimer(state.max_steps, self.report)
        self._timer.step_ended(state.global_step)


__all__ = ["StepTimeCallback", "StepTimer"]
