"""EARLIN: the split is exact, fitting sees ID data only, and the shipped bundle is consistent."""
import inspect
from pathlib import Path

import numpy as np
import pytest

from leanood_ros.bundle import load_bundle
from leanood_ros.detectors import build_detector

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / 'models' / 'earlin_lite0'
torch = pytest.importorskip('torch')
earlin = pytest.importorskip('leanood_ros.training.earlin')
pytestmark = pytest.mark.tools


def tiny_stages():
    torch.manual_seed(0)
    nn = torch.nn
    return [('stem', nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6())),
            ('stage1', nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.Conv2d(8, 4, 1))),
            ('stage2', nn.Sequential(nn.Conv2d(4, 16, 3, 2, 1), nn.ReLU6())),
            ('head', nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
                                   nn.Softmax(dim=1)))]


@pytest.mark.parametrize('split', ['stem', 'stage1', 'stage2'])
def test_split_is_exact_for_every_cut(split):
    model = earlin.SplitModel(tiny_stages(), 32)
    x = torch.rand(3, 3, 32, 32)
    with torch.inference_mode():
        full = torch.nn.Sequential(*model.modules)(x)
        split_out = model.cloud(split)(model.edge(split)(x))
    torch.testing.assert_close(split_out, full, rtol=0, atol=0)


def test_fit_api_takes_only_in_distribution_data():
    params = list(inspect.signature(earlin.FeatureScorer.fit).parameters)
    assert params == ['self', 'id_features']          # no labels, no OOD set
    rng = np.random.default_rng(0)
    sc = earlin.FeatureScorer().fit(rng.normal(size=(200, 4)))
    with pytest.raises(TypeError):
        sc.fit(rng.normal(size=(200, 4)), np.zeros(200))
    from leanood_ros.evaluation.frames import FrameSet
    mixed = FrameSet(np.zeros((3, 8, 8, 3), np.uint8), ['in_distribution', 'rain', None],
                     np.zeros(3, int), ['x'])
    with pytest.raises(ValueError, match='in-distribution data only'):
        earlin.id_only(mixed)
    assert len(earlin.id_only(mixed.subset([True, False, True]))) == 2


@pytest.mark.parametrize('distance', earlin.DISTANCES)
def test_scorers_rank_far_points_higher(distance):
    rng = np.random.default_rng(1)
    sc = earlin.FeatureScorer(distance).fit(rng.normal(size=(300, 6)))
    near, far = sc.predict(rng.normal(size=(50, 6))), sc.predict(rng.normal(5, 1, size=(50, 6)))
    assert far.min() > np.median(near)


def test_edge_graph_features_through_onnxruntime_equal_the_study_features(tmp_path):
    """The edge graph outputs the statistics the study scored; the head runs outside it."""
    import onnxruntime as ort
    model = earlin.SplitModel(tiny_stages(), 32)
    edge = earlin.EdgeGraph(model.modules[:2], [0, 1], 'meanstd').eval()
    torch.onnx.export(edge, (torch.zeros(1, 3, 32, 32),), str(tmp_path / 'e.onnx'),
                      input_names=['image'], output_names=['features', 'split'], opset_version=17,
                      dynamo=False, dynamic_axes={'image': {0: 'n'}, 'features': {0: 'n'},
                                                  'split': {0: 'n'}})
    from leanood_ros.preprocess import Preprocessing
    pre = Preprocessing(32, 32)
    imgs = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    got = ort.InferenceSession(str(tmp_path / 'e.onnx')).run(['features'],
                                                             {'image': pre.normalize(imgs)})[0]
    f = earlin.extract(model, imgs, pre, 'stage1', reductions=('meanstd',))
    want = np.concatenate([f[('stem', 'meanstd')], f[('stage1', 'meanstd')]], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_whitened_knn_is_local():
    """A rare ID mode that is in the training set scores low with wknn, high with Mahalanobis."""
    rng = np.random.default_rng(4)
    common = rng.normal(size=(990, 4))
    rare = rng.normal(8.0, 0.1, size=(10, 4))         # 1 % of the ID frames, far from the mean
    fit = np.concatenate([common, rare])
    probe_rare, probe_new = rng.normal(8.0, 0.1, size=(5, 4)), rng.normal(-8.0, 0.1, size=(5, 4))
    wknn, maha = earlin.FeatureScorer('wknn').fit(fit), earlin.FeatureScorer().fit(fit)
    typical = np.quantile(wknn.predict(rng.normal(size=(200, 4))), 0.99)
    assert wknn.predict(probe_rare).max() < typical < wknn.predict(probe_new).min()
    assert maha.predict(probe_rare).min() > np.quantile(maha.predict(common), 0.99)


@pytest.mark.skipif(not (SHIPPED / 'bundle.json').is_file(), reason='earlin_lite0 not built')
def test_shipped_bundle_split_equals_the_full_pretrained_model():
    b = load_bundle(SHIPPED)
    edge = build_detector(b).backend
    from leanood_ros.backends import make_backend
    cloud = make_backend(b, 'cloud')
    stages, size = earlin.load_backbone(b.manifest['detector']['backbone'])
    rng = np.random.default_rng(3)
    x = b.preprocessing.normalize(rng.integers(0, 256, (2, size, size, 3), dtype=np.uint8))
    split = edge.run(x)['split']
    assert list(split.shape[1:]) == b.forward['shape'][1:]
    probs = cloud.run(split)['probabilities']
    with torch.inference_mode():
        ref = torch.nn.Sequential(*[m.eval() for _, m in stages])(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-4)
    # forwarded as float16 (what travels over DDS): still the same prediction
    probs16 = cloud.run(split.astype(np.float16).astype(np.float32))['probabilities']
    assert (probs16.argmax(1) == ref.argmax(1)).all()
    np.testing.assert_allclose(probs16, ref, atol=2e-3)
    f = b.manifest['flops']
    assert f['edge_macs'] + f['cloud_macs'] == pytest.approx(f['full_macs'], rel=0.01)
    assert f['edge_share'] <= 0.25


def test_study_cell_scores_each_shift_against_the_same_id_frames():
    rng = np.random.default_rng(5)
    fit, id_val = rng.normal(size=(400, 5)), rng.normal(size=(100, 5))
    ood = np.concatenate([rng.normal(6.0, 1.0, size=(50, 5)),       # easy shift
                          rng.normal(0.0, 1.0, size=(50, 5))])      # indistinguishable
    labels = np.array(['fog'] * 50 + ['blur'] * 50)
    cell = earlin.study_scores('wknn', fit, id_val, ood, labels)
    assert cell['dims'] == 5 and set(cell['per_shift']) == {'fog', 'blur'}
    assert cell['per_shift']['fog'] == 1.0 and cell['per_shift']['blur'] < 0.7
    assert cell['min_auroc'] == pytest.approx(cell['per_shift']['blur'], abs=1e-5)
    assert cell['mean_auroc'] == pytest.approx((1.0 + cell['min_auroc']) / 2, abs=1e-5)
