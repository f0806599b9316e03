"""K-means for speech units: nearest-centroid assignment, a bounded uniform frame sample, and Lloyd fitting.

Pure torch (runs on a GPU when the features live there); no sklearn. Assignment uses the expansion
‖x‖² − 2·x·Cᵀ + ‖C‖², exactly as SpeechGPT's reader applies the sklearn codebook. A corpus is fitted
through `ReservoirSampler`, which keeps a uniform random sample of a fixed number of frames however
many stream past, so memory does not grow with the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from tqdm.auto import tqdm
from transformers.utils import logging

logger = logging.get_logger(__name__)


def squared_distances(
    features: torch.Tensor, centroids: torch.Tensor, centroid_norms: torch.Tensor | None = None
) -> torch.Tensor:
    """[N, K] squared Euclidean distances between N feature rows and K centroids."""
    if centroid_norms is None:
        centroid_norms = centroids.pow(2).sum(-1)
    return features.pow(2).sum(-1, keepdim=True) - 2 * features @ centroids.T + centroid_norms


def assign_units(
    features: torch.Tensor, centroids: torch.Tensor, centroid_norms: torch.Tensor | None = None
) -> torch.Tensor:
    """Index of the nearest centroid for every row of `features` ([N, D] -> [N] int64), in fp32."""
    return squared_distances(features.float(), centroids.float(), centroid_norms).argmin(-1)


class ReservoirSampler:
    """A uniform random sample of at most `capacity` rows out of every row `add`ed (Algorithm R, vectorised).

    Each row seen so far is in the sample with the same probability `capacity / seen`, whatever the order
    and sizes of the chunks; memory stays at `capacity` rows. The same seed and chunks give the same sample.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"The sample needs room for at least one row, got capacity={capacity}.")
        self.capacity = capacity
        self.seen = 0
        self._generator = torch.Generator().manual_seed(seed)
        self._chunks: list[torch.Tensor] = []  # rows kept while the sample is still filling up
        self._reservoir: torch.Tensor | None = None

    @property
    def size(self) -> int:
        """Rows in the sample now: `min(seen, capacity)`."""
        return min(self.seen, self.capacity)

    def add(self, rows: torch.Tensor) -> None:
        """Offers a chunk of rows [n, D] to the sample; only copies of kept rows are held."""
        if self._reservoir is None:
            room = self.capacity - self.seen
            self._chunks.append(rows[:room].clone())
            self.seen += min(room, rows.shape[0])
            rows = rows[room:]
            if self.seen == self.capacity:
                self._reservoir, self._chunks = torch.cat(self._chunks), []
        if rows.shape[0]:
            self._replace(rows)

    def _replace(self, rows: torch.Tensor) -> None:
        """Algorithm R on a full reservoir: the t-th row seen takes slot j ~ U{0, …, t−1} when j < capacity."""
        count = rows.shape[0]
        seen_after = torch.arange(self.seen + 1, self.seen + count + 1, dtype=torch.float64)
        slots = (torch.rand(count, generator=self._generator, dtype=torch.float64) * seen_after).long()
        self.seen += count
        kept = slots < self.capacity
        slots, rows = slots[kept].to(rows.device), rows[kept]
        # Two rows of one chunk may draw the same slot: the later one wins, as it would row by row.
        order = torch.sort(slots, stable=True).indices
        ordered = slots[order]
        last = torch.ones_like(ordered, dtype=torch.bool)
        last[:-1] = ordered[1:] != ordered[:-1]
        winners = order[last]
        self._reservoir[slots[winners]] = rows[winners].to(self._reservoir)

    def sample(self) -> torch.Tensor:
        """The sample [size, D], rows in no particular order."""
        if self._reservoir is not None:
            return self._reservoir
        if not self.seen:
            raise ValueError("The sample is empty: add rows before asking for it.")
        self._chunks = [torch.cat(self._chunks)]
        return self._chunks[0]


@dataclass
class KMeansResult:
    """A fitted codebook: `centroids` [K, D]; `inertia` is the summed squared distance of the `num_frames`
    features to their centroids (`inertia_per_frame` divides it by `num_frames`). `inertia_history` holds the
    inertia of each of the `iterations` passes over the features (the last one is `inertia`); `converged`
    tells whether the tolerance, not the pass limit, ended the fit; `frames_seen` counts the frames the
    features were sampled from (`num_frames` when k-means ran on given features); `skipped` lists
    `(item index, reason)` for every input that could not be read (its reason names the file)."""

    centroids: torch.Tensor
    inertia: float
    inertia_per_frame: float
    iterations: int
    inertia_history: list[float]
    converged: bool
    num_frames: int
    frames_seen: int
    skipped: list[tuple[int, str]] = field(default_factory=list)


def kmeans_plus_plus(features: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each new centroid drawn with probability proportional to its squared distance."""
    n = features.shape[0]
    first = torch.randint(n, (1,), generator=generator, device="cpu").item()
    centroids = [features[first]]
    closest = squared_distances(features, features[first : first + 1]).squeeze(1).clamp_min(0)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than clusters: repeat points rather than fail
            index = torch.randint(n, (1,), generator=generator, device="cpu").item()
        else:
            index = torch.multinomial((closest / total).cpu(), 1, generator=generator).item()
        centroids.append(features[index])
        closest = torch.minimum(
            closest, squared_distances(features, features[index : index + 1]).squeeze(1).clamp_min(0)
        )
    return torch.stack(centroids)


class _Assignment(NamedTuple):
    """One pass of nearest-centroid assignment: per-centroid feature sums and counts, each frame's squared
    distance to its centroid, and their total (the inertia of the centroids the pass used)."""

    sums: torch.Tensor
    counts: torch.Tensor
    closest: torch.Tensor
    inertia: float


def _assign(features: torch.Tensor, centroids: torch.Tensor, chunk: int) -> _Assignment:
    """Assigns every frame to its nearest centroid, `chunk` frames at a time ([chunk, K] distances at most)."""
    norms = centroids.pow(2).sum(-1)
    sums = torch.zeros_like(centroids)
    counts = torch.zeros(centroids.shape[0], device=features.device)
    closest = torch.empty(features.shape[0], device=features.device)
    for start in range(0, features.shape[0], chunk):
        batch = features[start : start + chunk]
        distances, labels = squared_distances(batch, centroids, norms).min(-1)
        closest[start : start + chunk] = distances.clamp_min(0)
        sums.index_add_(0, labels, batch)
        counts += torch.bincount(labels, minlength=centroids.shape[0])
    return _Assignment(sums, counts, closest, closest.double().sum().item())


def _reseedable(assignment: _Assignment) -> bool:
    """Whether a centroid got no frame while some frame lies off its centroid (re-seeding would help)."""
    return bool((assignment.counts == 0).any()) and bool(assignment.closest.max() > 0)


def _update(features: torch.Tensor, centroids: torch.Tensor, assignment: _Assignment) -> torch.Tensor:
    """Lloyd's update: each centroid moves to the mean of its frames; one without frames moves onto one of
    the frames farthest from their centroids (never raising the inertia)."""
    updated = centroids.clone()
    used = assignment.counts > 0
    updated[used] = assignment.sums[used] / assignment.counts[used].unsqueeze(1)
    empty = (~used).nonzero().squeeze(1)
    if empty.numel():
        farthest = assignment.closest.topk(min(empty.numel(), features.shape[0])).indices
        updated[empty[: farthest.numel()]] = features[farthest]
    return updated


def _converged(history: list[float], tolerance: float) -> bool:
    """Whether the last pass lowered the inertia by no more than `tolerance` of the one before (or hit 0)."""
    if history[-1] == 0:
        return True
    return len(history) > 1 and history[-2] - history[-1] <= tolerance * history[-2]


def _check_fit_arguments(num_frames: int, num_clusters: int, max_iter: int, tolerance: float) -> None:
    if num_frames < num_clusters:
        raise ValueError(
            f"Need at least as many feature frames as clusters: {num_frames} frames < {num_clusters} clusters. "
            "Give more audio or fewer units."
        )
    if max_iter < 1 or tolerance < 0:
        raise ValueError(f"max_iter must be at least 1 and tolerance at least 0, got {max_iter} and {tolerance}.")


def fit_kmeans(
    features: torch.Tensor,
    num_clusters: int,
    batch_size: int = 10000,
    max_iter: int = 100,
    init_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    tolerance: float = 1e-4,
) -> KMeansResult:
    """Lloyd's k-means over `features` [N, D] on their device, seeded by k-means++ on a random subset.

    `init_size` frames (default 3·K, at least `batch_size`) seed the centroids. Each pass assigns every frame
    to its nearest centroid, `batch_size` frames at a time, and moves the centroids to their frames' means,
    so the inertia never rises. The fit stops after `max_iter` passes, or once a pass lowers the inertia by
    no more than `tolerance` (relative) and no centroid is left without frames; the returned centroids are
    the ones the last reported inertia was measured on.
    """
    features = features.float()
    n = features.shape[0]
    _check_fit_arguments(n, num_clusters, max_iter, tolerance)
    generator = torch.Generator().manual_seed(seed)
    init_size = min(n, init_size or max(3 * num_clusters, batch_size))
    init_rows = torch.randperm(n, generator=generator)[:init_size].to(features.device)
    centroids = kmeans_plus_plus(features[init_rows], num_clusters, generator).clone()
    history: list[float] = []
    converged = False
    with tqdm(total=max_iter, desc="k-means passes", disable=not progress) as bar:
        while True:
            assignment = _assign(features, centroids, batch_size)
            history.append(assignment.inertia)
            logger.info(
                f"k-means pass {len(history)}: inertia {assignment.inertia:.6g} ({assignment.inertia / n:.4g} a frame)"
            )
            bar.update()
            bar.set_postfix(inertia_per_frame=f"{assignment.inertia / n:.4g}")
            converged = _converged(history, tolerance) and not _reseedable(assignment)
            if converged or len(history) == max_iter:
                break
            centroids = _update(features, centroids, assignment)
    return KMeansResult(
        centroids=centroids,
        inertia=history[-1],
        inertia_per_frame=history[-1] / n,
        iterations=len(history),
        inertia_history=history,
        converged=converged,
        num_frames=n,
        frames_seen=n,
    )


__all__ = [
    "KMeansResult",
    "ReservoirSampler",
    "assign_units",
    "fit_kmeans",
    "kmeans_plus_plus",
    "squared_distances",
]
