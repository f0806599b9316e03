"""k-means for speech units: the bounded uniform frame sample and Lloyd fitting with a convergence test."""

import pytest
import torch

from speechgpt_hf.models.unit_tokenizer.kmeans import ReservoirSampler, fit_kmeans

CHUNK_SIZES = [3, 250, 1, 40, 17] * 8  # 1,244 rows in chunks of uneven size, one longer than the sample


def labelled_chunks(sizes: list[int]) -> list[torch.Tensor]:
    """Chunks of rows [n, 2]: column 0 is the row's position in the stream, column 1 its chunk."""
    chunks, start = [], 0
    for index, size in enumerate(sizes):
        positions = torch.arange(start, start + size, dtype=torch.float32)
        chunks.append(torch.stack([positions, torch.full((size,), float(index))], dim=1))
        start += size
    return chunks


def separated_clusters(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, 4, generator=generator) * 10
    points = centres.repeat_interleave(200, 0) + 0.1 * torch.randn(1200, 4, generator=generator)
    return centres, points


def test_reservoir_never_holds_more_than_its_capacity():
    sampler = ReservoirSampler(100, seed=0)
    for chunk in labelled_chunks(CHUNK_SIZES):
        sampler.add(chunk)
        assert sampler.sample().shape == (min(sampler.seen, 100), 2) and sampler.size <= 100
    assert sampler.seen == sum(CHUNK_SIZES)
    assert sampler.sample()[:, 0].unique().numel() == 100  # distinct rows: each kept at most once


def test_reservoir_is_uniform_over_the_whole_stream():
    """Every row has the same chance capacity/seen of being kept, late chunks included."""
    chunks = labelled_chunks(CHUNK_SIZES)
    total, capacity, trials = sum(CHUNK_SIZES), 100, 300
    hits = torch.zeros(total)
    for seed in range(trials):
        sampler = ReservoirSampler(capacity, seed=seed)
        for chunk in chunks:
            sampler.add(chunk)
        hits[sampler.sample()[:, 0].long()] += 1
    expected = trials * capacity / total  # ~24 a row
    halves = hits.view(2, -1).sum(1)  # first and second half of the stream
    assert (halves - expected * total / 2).abs().max() < 0.03 * expected * total / 2
    per_chunk = torch.zeros(len(chunks)).index_add_(0, torch.cat(chunks)[:, 1].long(), hits)
    sizes = torch.tensor(CHUNK_SIZES, dtype=torch.float32)
    big = sizes >= 40
    assert ((per_chunk[big] / (sizes[big] * expected)) - 1).abs().max() < 0.15
    assert hits[-sizes[-1].long() :].sum() > 0  # the very last chunk reaches the sample


def test_reservoir_below_capacity_keeps_everything_in_order():
    sampler = ReservoirSampler(1000, seed=0)
    chunks = labelled_chunks([5, 7, 9])
    for chunk in chunks:
        sampler.add(chunk)
    assert torch.equal(sampler.sample(), torch.cat(chunks))
    with pytest.raises(ValueError, match="empty"):
        ReservoirSampler(10).sample()
    with pytest.raises(ValueError, match="at least one row"):
        ReservoirSampler(0)


def test_reservoir_is_reproducible_with_a_seed():
    def sample(seed: int) -> torch.Tensor:
        sampler = ReservoirSampler(50, seed=seed)
        for chunk in labelled_chunks(CHUNK_SIZES):
            sampler.add(chunk)
        return sampler.sample()

    assert torch.equal(sample(3), sample(3)) and not torch.equal(sample(3), sample(4))


def test_kmeans_stops_early_on_separated_clusters():
    centres, points = separated_clusters()
    result = fit_kmeans(points, 6, batch_size=256, max_iter=100, seed=1, progress=False)
    assert result.converged and result.iterations < 10
    history = result.inertia_history
    assert len(history) == result.iterations and history[-1] == result.inertia
    assert all(later <= earlier * (1 + 1e-6) for earlier, later in zip(history, history[1:], strict=False))
    assert torch.cdist(centres, result.centroids).min(-1).values.max() < 0.1
    assert result.inertia_per_frame == pytest.approx(result.inertia / 1200)
    assert result.num_frames == result.frames_seen == 1200
    again = fit_kmeans(points, 6, batch_size=256, max_iter=100, seed=1, progress=False)
    assert torch.equal(result.centroids, again.centroids) and again.inertia_history == history


def test_kmeans_stops_at_max_iter_with_non_increasing_inertia():
    points = torch.randn(3000, 8, generator=torch.Generator().manual_seed(0))
    result = fit_kmeans(points, 40, batch_size=500, max_iter=4, tolerance=0.0, progress=False)
    assert result.iterations == 4 and not result.converged
    history = result.inertia_history
    assert all(later < earlier for earlier, later in zip(history, history[1:], strict=False))
    assigned = torch.cdist(points, result.centroids).min(-1).values.pow(2).sum().item()
    assert assigned == pytest.approx(result.inertia, rel=1e-4)  # the inertia is that of the returned centroids


def test_kmeans_with_fewer_distinct_points_than_clusters():
    """Repeated points leave some centroids without frames: they are re-seeded and the fit still ends."""
    points = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, -3.0]]).repeat(20, 1)
    result = fit_kmeans(points, 5, max_iter=50, progress=False)
    assert result.converged and result.inertia == 0
    assert torch.cdist(points[:3], result.centroids).min(-1).values.max() == 0


def test_kmeans_names_bad_arguments():
    _, points = separated_clusters()
    with pytest.raises(ValueError, match="at least as many"):
        fit_kmeans(points[:3], 6, progress=False)
    with pytest.raises(ValueError, match="tolerance at least 0"):
        fit_kmeans(points, 6, tolerance=-1.0, progress=False)
