"""Score heads: one fit/score/to_spec interface for training and runtime.

Checked against independent computations (scikit-learn, brute force, closed forms).
"""
import numpy as np
import pytest

from leanood_ros.heads import (GaussianHead, greedy_coreset, head_from_spec, HeadSpecError,
                               KLPriorHead, KLToFittedHead, WhitenedKnnHead, Whitener)


def correlated(rng, n, d=6, shift=0.0):
    a = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ a + shift


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def roundtrip(head):
    spec, arrays = head.to_spec()
    # through the bundle's storage types: JSON-able spec, float arrays
    import json
    spec = json.loads(json.dumps(spec))
    return head_from_spec(spec, {k: np.asarray(v) for k, v in arrays.items()})


def test_gaussian_head_is_sklearn_mahalanobis_and_survives_the_bundle(rng):
    from sklearn.covariance import LedoitWolf
    x, q = correlated(rng, 400), correlated(rng, 50, shift=0.5)
    head = GaussianHead('f').fit({'f': x})
    ref = LedoitWolf().fit(x).mahalanobis(q)        # squared distance, computed independently
    np.testing.assert_allclose(head.score({'f': q}), ref, rtol=1e-8)
    np.testing.assert_allclose(roundtrip(head).score({'f': q}), ref, rtol=1e-8)


def test_kl_to_fitted_reduces_to_prior_kl_and_matches_the_closed_form(rng):
    out = {'mu': rng.normal(size=(5, 8)), 'logvar': rng.normal(size=(5, 8)) * 0.3}
    prior = KLToFittedHead(whitener=Whitener(np.zeros(8), np.eye(8)))
    np.testing.assert_allclose(prior.score(out), KLPriorHead().score(out), rtol=1e-10)
    a = rng.normal(size=(8, 8))
    cov = a @ a.T + 8 * np.eye(8)
    m = rng.normal(size=8)
    head = roundtrip(KLToFittedHead(whitener=Whitener(m, np.linalg.cholesky(np.linalg.inv(cov)))))
    mu, var = out['mu'][0], np.exp(out['logvar'][0])
    ci = np.linalg.inv(cov)
    kl = 0.5 * (np.trace(ci @ np.diag(var)) + (m - mu) @ ci @ (m - mu) - 8
                + np.linalg.slogdet(cov)[1] - np.log(var).sum())
    assert head.score(out)[0] == pytest.approx(kl)


def test_wknn_is_the_brute_force_nearest_whitened_neighbour(rng):
    x, q = correlated(rng, 300), correlated(rng, 40, shift=0.3)
    head = WhitenedKnnHead('f').fit({'f': x})
    w = head.whitener
    zx, zq = w.whiten(x), w.whiten(q)
    ref = ((zq[:, None, :] - zx[None]) ** 2).sum(-1).min(1)
    np.testing.assert_allclose(head.score({'f': q}), ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(roundtrip(head).score({'f': q}), ref, rtol=1e-5, atol=1e-6)
    assert head.score({'f': x[:5]}) == pytest.approx(np.zeros(5), abs=1e-6)   # its own twins


def test_wknn_memory_is_bounded_by_a_coreset_that_keeps_the_extremes(rng):
    x = correlated(rng, 2000)
    head = WhitenedKnnHead('f', max_bank=300).fit({'f': x})
    assert len(head.bank) == 300
    # k-center covers the data: no training vector is far from the memory
    cover = np.sqrt(head.score({'f': x}))
    full = WhitenedKnnHead('f').fit({'f': x})
    z = full.whitener.whiten(x)
    farthest = np.argmax(np.linalg.norm(z - z.mean(0), axis=1))
    assert cover.max() < np.percentile(np.linalg.norm(z - z.mean(0), axis=1), 50)
    assert head.score({'f': x[farthest:farthest + 1]})[0] == pytest.approx(0.0, abs=1e-6)


def test_extend_adds_a_new_place_and_forgets_nothing(rng):
    old, new = correlated(rng, 500), correlated(rng, 300, shift=6.0)
    head = WhitenedKnnHead('f', max_bank=2000).fit({'f': old})
    before_old = head.score({'f': old[:50]})
    far = head.score({'f': new}).min()
    added = head.extend({'f': new})
    assert 0 < added <= 300
    np.testing.assert_allclose(head.score({'f': old[:50]}), before_old)      # prior kept
    assert head.score({'f': new}).max() < far                                # new place known
    # a second pass over the same frames adds (almost) nothing: they are covered now
    assert head.extend({'f': new}) <= 0.05 * added
    small = WhitenedKnnHead('f', max_bank=510).fit({'f': old})
    assert small.extend({'f': new}) == 10 and len(small.bank) == 510        # bounded


def test_greedy_coreset_picks_farthest_first():
    z = np.array([[0.0], [1.0], [10.0], [10.5], [5.0]])
    assert greedy_coreset(z, 3).tolist() == [0, 3, 4]
    assert greedy_coreset(z, 5, initial=np.array([0, 0, 9.0, 9.5, 4.0]),
                          stop_below=1.0).tolist() == [3, 4]


def test_pooled_whitener_matches_the_moments_of_both_sets(rng):
    a, b = correlated(rng, 3000), correlated(rng, 3000, shift=2.0)
    pooled = Whitener.fit(a).pooled(b, len(a))
    np.testing.assert_allclose(pooled.mean, np.concatenate([a, b]).mean(0), rtol=1e-9,
                               atol=1e-9)
    cov = np.linalg.inv(pooled.chol @ pooled.chol.T)
    np.testing.assert_allclose(cov, np.cov(np.concatenate([a, b]).T, bias=True), rtol=0.05,
                               atol=0.05 * np.abs(cov).max())


@pytest.mark.parametrize('spec,arrays,message', [
    ({'type': 'nope'}, {}, "'type' must be one of"),
    ({'type': 'mahalanobis', 'input': 'f'}, {'mean': np.zeros(3)}, "'chol'"),
    ({'type': 'mahalanobis', 'input': 'f'}, {'mean': np.zeros(3), 'chol': np.eye(2)}, '3x3'),
    ({'type': 'mahalanobis', 'input': ''}, {'mean': np.zeros(2), 'chol': np.eye(2)}, 'input'),
    ({'type': 'wknn', 'input': 'f', 'max_bank': 1},
     {'mean': np.zeros(2), 'chol': np.eye(2), 'bank': np.zeros((5, 2))}, 'max_bank'),
    ({'type': 'kl_divergence', 'mu': 'mu', 'logvar': 'lv', 'dims': [-1]}, {}, 'dims'),
])
def test_bad_specs_name_the_key(spec, arrays, message):
    with pytest.raises(HeadSpecError, match=message):
        head_from_spec(spec, arrays)


def test_the_earlin_study_scores_with_the_runtime_heads(rng):
    """The layer study and the deployed bundle compute the same number."""
    pytest.importorskip('torch')   # the study code imports torch
    from leanood_ros.training.earlin import FeatureScorer
    x, q = correlated(rng, 300), correlated(rng, 30, shift=0.4)
    for dist, head in (('mahalanobis', GaussianHead('features')),
                       ('wknn', WhitenedKnnHead('features'))):
        np.testing.assert_allclose(FeatureScorer(dist).fit(x).predict(q),
                                   head.fit({'features': x}).score({'features': q}))
