"""K-means for speech units: nearest-centroid assignment and mini-batch fitting with k-means++ seeding.

Pure torch (runs on a GPU when the features live there); no sklearn. Assignment uses the expansion
‖x‖² − 2·x·Cᵀ + ‖C‖², exactly as SpeechGPT's reader applies the sklearn codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


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


@dataclass
class KMeansResult:
    """A fitted codebook: `centroids` [K, D]; `inertia` is the summed squared distance of the features to
    their centroids (`inertia_per_frame` divides it by the number of features)."""

    centroids: torch.Tensor
    inertia: float
    inertia_per_frame: float
    iterations: int


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


def _inertia(features: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> float:
    norms = centroids.pow(2).sum(-1)
    total = 0.0
    for start in range(0, features.shape[0], chunk):
        total += (
            squared_distances(features[start : start + chunk], centroids, norms)
            .min(-1)
            .values.clamp_min(0)
            .sum()
            .item()
        )
    return total


def fit_kmeans(
    features: torch.Tensor,
    num_clusters: int,
    batch_size: int = 10000,
    max_iter: int = 100,
    init_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> KMeansResult:
    """Mini-batch k-means (Sculley, 2010) over `features` [N, D] on their device, seeded by k-means++.

    `init_size` frames (default 3·K, at least the batch size) seed the centroids; each of `max_iter`
    steps moves the centroids toward the mean of a random batch with per-centroid learning rates 1/count.
    Centroids no frame ever chose are re-seeded on the farthest frames of the last batch.
    """
    features = features.float()
    n = features.shape[0]
    if n < num_clusters:
        raise ValueError(f"Need at least as many feature frames as clusters: {n} frames < {num_clusters} clusters.")
    generator = torch.Generator().manual_seed(seed)
    init_size = min(n, init_size or max(3 * num_clusters, batch_size))
    init_rows = torch.randperm(n, generator=generator)[:init_size].to(features.device)
    centroids = kmeans_plus_plus(features[init_rows], num_clusters, generator).clone()
    counts = torch.zeros(num_clusters, device=features.device)
    for _ in tqdm(range(max_iter), desc="k-means", disable=not progress):
        rows = torch.randint(n, (min(batch_size, n),), generator=generator).to(features.device)
        batch = features[rows]
        distances = squared_distances(batch, centroids)
        labels = distances.argmin(-1)
        batch_counts = torch.bincount(labels, minlength=num_clusters).float()
        sums = torch.zeros_like(centroids).index_add_(0, labels, batch)
        counts += batch_counts
        seen = batch_counts > 0
        rate = (batch_counts[seen] / counts[seen]).unsqueeze(1)
        centroids[seen] += rate * (sums[seen] / batch_counts[seen].unsqueeze(1) - centroids[seen])
    unused = (counts == 0).nonzero().squeeze(1)
    if unused.numel():
        farthest = distances.min(-1).values.topk(min(unused.numel(), batch.shape[0])).indices
        centroids[unused[: farthest.numel()]] = batch[farthest]
    inertia = _inertia(features, centroids)
    return KMeansResult(centroids=centroids, inertia=inertia, inertia_per_frame=inertia / n, iterations=max_iter)


__all__ = ["KMeansResult", "assign_units", "fit_kmeans", "kmeans_plus_plus", "squared_distances"]
