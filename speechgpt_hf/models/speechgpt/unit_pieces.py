"""A byte-pair encoding over speech units: the LM reads and writes pieces of several units, the vocoder units.

Merged units run at about 30 a second, so a sentence is a long row of tokens that each carry little. A BPE learnt
over the training utterances' units joins the frequent runs into pieces: piece `K + i` is `merges[i]`, two earlier
pieces (or units) side by side, and units `0 … K-1` stay pieces of their own. Rows about a third shorter make each
training step cheaper, and the LM learns to read sooner a step (benchmarks/reading.md: SmolLM2 at 44% held-out WER
against 80% over units, at the same CPU seconds). The processor applies it to every unit span it tokenises and
undoes it on every answer, so SpeechInstruct data, the unit tokenizer and the vocoder all stay in units.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

# Units become characters for the `tokenizers` BPE: one CJK ideograph a unit, which no normaliser touches.
_FIRST_CHARACTER = 0x4E00
_MAX_UNITS = 0x9FFF - _FIRST_CHARACTER + 1


def _letters(units: Iterable[int]) -> str:
    return "".join(chr(_FIRST_CHARACTER + unit) for unit in units)


class UnitPieces:
    """A BPE over K units: `encode` turns units into piece ids (`0 … len(self)-1`), `decode` turns them back.

    Args:
        num_units: K, the units the pieces are made of.
        merges: `(left, right)` piece ids; the i-th makes piece `K + i` and may only join pieces made before it.
    """

    def __init__(self, num_units: int, merges: Sequence[Sequence[int]]) -> None:
        if not 0 < num_units <= _MAX_UNITS:
            raise ValueError(f"A unit BPE needs 1 to {_MAX_UNITS} units, got K={num_units}.")
        self.num_units = num_units
        self.merges = [(int(left), int(right)) for left, right in merges]
        for index, (left, right) in enumerate(self.merges):
            if not (0 <= left < num_units + index and 0 <= right < num_units + index):
                raise ValueError(
                    f"Unit merge {index} joins pieces {left} and {right}, but only pieces 0..{num_units + index - 1} "
                    "exist before it: merges must join units or pieces made by earlier merges."
                )
        self._units: list[tuple[int, ...]] = [(unit,) for unit in range(num_units)]
        for left, right in self.merges:
            self._units.append(self._units[left] + self._units[right])

    def __len__(self) -> int:
        """The number of pieces: K units plus one a merge."""
        return len(self._units)

    def __repr__(self) -> str:
        return f"UnitPieces(num_units={self.num_units}, merges={len(self.merges)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnitPieces) and (self.num_units, self.merges) == (other.num_units, other.merges)

    @classmethod
    def learn(cls, sequences: Iterable[Sequence[int]], num_units: int, vocab_size: int) -> UnitPieces:
        """Learns merges over `sequences` (each one utterance's units, in 0..K-1) until there are `vocab_size`
        pieces, or no run of units is seen twice."""
        from tokenizers import Tokenizer, models, trainers

        if vocab_size < num_units:
            raise ValueError(f"A unit BPE of {vocab_size} pieces cannot hold the K={num_units} units it starts from.")
        sequences = [list(sequence) for sequence in sequences]
        outside = next((u for sequence in sequences for u in sequence if not 0 <= u < num_units), None)
        if outside is not None:
            raise ValueError(f"Unit {outside} is outside 0..{num_units - 1}: learn the BPE over the K units it is for.")
        bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=[_letters([unit]) for unit in range(num_units)],
            min_frequency=2,
            show_progress=False,
        )
        bpe.train_from_iterator((_letters(sequence) for sequence in sequences if sequence), trainer=trainer)
        learnt = json.loads(bpe.to_str())["model"]["merges"]
        ids = {_letters([unit]): unit for unit in range(num_units)}
        merges = []
        for merge in learnt:
            left, right = merge if isinstance(merge, list) else merge.split(" ")
            if left + right not in ids:  # the same run made a second way adds no piece
                ids[left + right] = num_units + len(merges)
                merges.append((ids[left], ids[right]))
        return cls(num_units, merges)

    @cached_property
    def _bpe(self) -> Any:
        from tokenizers import Tokenizer, models

        vocab = {_letters(units): piece for piece, units in enumerate(self._units)}
        merges = [(_letters(self._units[left]), _letters(self._units[right])) for left, right in self.merges]
        return Tokenizer(models.BPE(vocab=vocab, merges=merges))

    def encode(self, units: Iterable[int]) -> list[int]:
        """Piece ids of a run of units (each in 0..K-1)."""
        units = [int(unit) for unit in units]
        outside = next((unit for unit in units if not 0 <= unit < self.num_units), None)
        if outside is not None:
            raise ValueError(
                f"Unit id {outside} is outside 0..{self.num_units - 1} (this model has K={self.num_units})."
            )
        if not self.merges or not units:
            return units
        return self._bpe.encode(_letters(units)).ids

    def decode(self, pieces: Iterable[int]) -> list[int]:
        """The units of a run of piece ids."""
        units: list[int] = []
        for piece in pieces:
            if not 0 <= int(piece) < len(self._units):
                raise ValueError(f"Piece id {piece} is outside 0..{len(self._units) - 1}.")
            units.extend(self._units[int(piece)])
        return units


__all__ = ["UnitPieces"]
