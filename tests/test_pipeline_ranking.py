"""Samples are returned most central first (rnadiff.pipeline.ranking): the medoid of the all-atom
RMSD leads, an outlier or a broken sample comes last, ties keep the draw order, and ranking only
reorders what was drawn (with every per-sample record moved along)."""
from __future__ import annotations

import numpy as np
import pytest

from rnadiff.pipeline import PipelineSettings, StagePipeline
from rnadiff.pipeline.ranking import consensus_order, consensus_rmsd, pairs_missed
from tests.test_pipeline_kept_atoms import reduced
from tests.train_helpers import noisy_tiny_model


def _cloud(noise: list[float], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(60, 3)) * 10
    return np.stack([base + rng.normal(size=base.shape) * e for e in noise])


def test_the_medoid_leads_and_the_outlier_comes_last():
    samples = _cloud([1.0, 0.2, 4.0, 0.5])
    order, score = consensus_order(samples)
    assert order[0] == 1 and order[-1] == 2
    # the score is the mean RMSD to the other samples, written out
    d = lambda a, b: np.sqrt(((a - b) ** 2).sum(-1).mean())
    np.testing.assert_allclose(score[0], np.mean([d(samples[0], samples[k]) for k in (1, 2, 3)]))


def test_ties_keep_the_draw_order_and_one_sample_is_left_alone():
    same = np.repeat(_cloud([0.0]), 3, axis=0)
    order, score = consensus_order(same)
    assert order.tolist() == [0, 1, 2] and not score.any()
    order, score = consensus_order(_cloud([1.0]))
    assert order.tolist() == [0] and score.tolist() == [0.0]


def test_a_non_finite_sample_ranks_last_and_does_not_spoil_the_others():
    samples = _cloud([1.0, 0.2, 4.0, 0.5])
    clean = consensus_rmsd(np.delete(samples, 2, axis=0))
    samples[2, 5] = np.nan
    order, score = consensus_order(samples)
    assert order[-1] == 2 and np.isinf(score[2])
    np.testing.assert_allclose(np.delete(score, 2), clean)


@pytest.fixture(scope="module")
def ranked_and_drawn():
    model, feats = noisy_tiny_model(), reduced("c1")
    runs = [StagePipeline(model, PipelineSettings(n_samples=4, num_steps=6, rank_samples=rank)).run(feats)
            for rank in (True, False)]
    return runs


def test_ranking_reorders_the_drawn_samples_and_their_records(ranked_and_drawn):
    ranked, drawn = ranked_and_drawn
    order = ranked.drawn_index
    assert sorted(order.tolist()) == [0, 1, 2, 3] and drawn.drawn_index.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(ranked.samples, drawn.samples[order])
    np.testing.assert_array_equal(ranked.given_rmsd, drawn.given_rmsd[order])
    np.testing.assert_array_equal(ranked.sampled_given_rmsd, drawn.sampled_given_rmsd[order])
    np.testing.assert_array_equal(ranked.given_max_deviation, drawn.given_max_deviation[order])
    np.testing.assert_array_equal(ranked.consensus_rmsd, drawn.consensus_rmsd[order])
    np.testing.assert_array_equal(ranked.b_factors, drawn.b_factors)  # the spread does not depend on order
    key = list(zip(ranked.pairs_missed.tolist(), ranked.consensus_rmsd.tolist()))  # fewest missed, then central
    assert key == sorted(key) and ranked.consensus_rmsd[0] > 0 and drawn.pairs_missed is None
    assert order.tolist() != [0, 1, 2, 3]  # this draw's first sample is not its most central one


def test_a_sample_that_misses_an_asserted_pair_ranks_after_one_that_forms_it():
    samples = _cloud([1.0, 0.2, 4.0, 0.5])
    order, _ = consensus_order(samples, missed=np.array([0, 1, 0, 0]))
    assert order.tolist() == [3, 0, 2, 1]  # the medoid (1) missed a pair: the others first, by centrality
    order, _ = consensus_order(samples, missed=np.zeros(4))
    assert order.tolist() == consensus_order(samples)[0].tolist()


def test_pairs_missed_counts_the_asserted_pairs_a_sample_does_not_form(rna_dev_dir):
    from rnadiff.chem import featurize
    from rnadiff.io import read_structure
    from rnadiff.metrics.basepairs import canonical_pairs, pair_set

    feats = featurize(read_structure(rna_dev_dir / "clean" / "rsrnasp_train" / "1EVV_A.pdb"))
    x = feats["coords"].double().numpy()
    native = pair_set(canonical_pairs(feats.layout, x))
    i, j = sorted(native)[0]
    opened = x.copy()
    opened[(feats["atom_to_token_idx"] == i).numpy()] += np.array([0.0, 0.0, 8.0])  # pull one base away
    assert pairs_missed(feats.layout, np.stack([x, opened]), native | {(0, 1)}).tolist() == [1, 2]
    assert pairs_missed(feats.layout, np.stack([x, np.full_like(x, np.nan)]), native).tolist() == [0, len(native)]
