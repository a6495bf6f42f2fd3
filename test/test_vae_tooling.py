"""VAE tooling: architecture, training step, pruning, distillation, export and quantization."""
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytestmark = pytest.mark.tools

from leanood_ros.bundle import load_bundle  # noqa: E402
from leanood_ros.detectors import build_detector  # noqa: E402
from leanood_ros.training import compress  # noqa: E402
from leanood_ros.training.architectures import (BASELINE, count_parameters,  # noqa: E402
                                                encoder_from_onnx, encoder_from_state,
                                                VaeEncoder)
from leanood_ros.training.export import quantize_int8, vae_bundle  # noqa: E402
from leanood_ros.training.train_vae import train, vae_preprocessing  # noqa: E402

SMALL = dict(BASELINE, input_size=32, channels=[8, 8, 8], fc=[32], latent=6)


def frames(n=64, size=32, seed=0, low=60, high=140):
    rng = np.random.default_rng(seed)
    base = rng.integers(low, high, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 10, (n, size, size, 3)), 0, 255).astype(np.uint8)


def test_baseline_matches_the_paper_configuration():
    enc = VaeEncoder(**BASELINE)
    assert enc.flat == 3136                                   # 16 x 14 x 14
    assert [m[0].out_channels for m in enc.features] == [128, 64, 32, 16]
    assert [enc.fc[i].out_features for i in (0, 2, 4)] == [2048, 1000, 250]
    assert enc.mu.out_features == 30
    assert count_parameters(enc) == 8_839_590                 # the paper's 8.84 M


def test_training_reduces_the_loss_and_resumes(tmp_path):
    imgs = frames()
    model = train(imgs, SMALL, tmp_path, epochs=2, batch=16, log=lambda *_: None)
    hist = json.loads((tmp_path / 'history.json').read_text())
    assert hist[1]['loss'] < hist[0]['loss']
    # resuming at the end is a no-op that keeps the history
    model2 = train(imgs, SMALL, tmp_path, epochs=2, batch=16, log=lambda *_: None)
    assert len(json.loads((tmp_path / 'history.json').read_text())) == 2
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)


def test_pruning_removes_channels_and_keeps_the_latent():
    enc = VaeEncoder(**dict(BASELINE, input_size=64, channels=[32, 16, 16, 8], fc=[64, 32]))
    pruned = compress.prune(enc, 0.5, 64)
    arch = compress.pruned_arch(pruned, enc.__dict__.get('arch', dict(
        BASELINE, input_size=64, channels=[32, 16, 16, 8], fc=[64, 32])))
    assert arch['channels'] == [16, 8, 8, 4] and arch['fc'] == [32, 16]
    assert pruned.mu.out_features == 30
    assert count_parameters(pruned) < 0.35 * count_parameters(enc)
    rebuilt = encoder_from_state(arch, pruned.state_dict())  # widths read from the weights
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(x)[0], pruned(x)[0])


def test_distillation_matches_the_teacher():
    imgs = frames(96)
    teacher = VaeEncoder(**SMALL).eval()
    mu_t, lv_t = compress.latent_targets(teacher, imgs)
    student = VaeEncoder(**dict(SMALL, channels=[4, 4, 4], fc=[16]))
    before = float(((compress.latent_targets(student, imgs)[0] - mu_t) ** 2).mean())
    compress.distill(student, imgs, mu_t, lv_t, epochs=20, batch=32, lr=5e-3)
    after = float(((compress.latent_targets(student, imgs)[0] - mu_t) ** 2).mean())
    assert after < 0.5 * before


@pytest.mark.parametrize('kind', compress.SCORES)
def test_export_quantize_and_score_through_onnx(tmp_path, kind):
    torch.manual_seed(0)
    imgs = frames(80, low=0, high=255)   # a wide range of scores, so the ranking is meaningful
    arch = dict(SMALL, feature_taps=[0])
    enc = VaeEncoder(**arch).eval()
    # fitted on the first half, scored on the second: a memory bank scores its own frames ~0
    mu, _, feat = (t.numpy()[:40] for t in compress.latent_targets(enc, imgs, features=True))
    pre = vae_preprocessing(32)
    b = vae_bundle(tmp_path / 'fp32', 'small', enc, arch, pre, imgs[:40], 'synthetic',
                   head=compress.fit_head(kind, mu, feat))
    det = build_detector(load_bundle(b))
    s32 = det.predict_resized(imgs[40:])
    q = quantize_int8(b / 'encoder.onnx', tmp_path / 'int8.onnx', imgs[:40], pre)
    b8 = vae_bundle(tmp_path / 'int8', 'small8', enc, arch, pre, imgs[:40], 'synthetic',
                    onnx_file=q, head=compress.fit_head(kind, mu, feat))
    s8 = build_detector(load_bundle(b8)).predict_resized(imgs[40:])
    assert np.corrcoef(s32, s8)[0, 1] > 0.9                     # int8 keeps the ranking
    assert 'QuantizeLinear' in Path(q).read_bytes().decode('latin1')
    twin = build_detector(load_bundle(b), backend='torch')      # the PyTorch backend agrees
    np.testing.assert_allclose(twin.predict_resized(imgs[40:]), s32, rtol=1e-3, atol=1e-4)


def test_latencies_are_measured_side_by_side(tmp_path):
    from leanood_ros.training.export import export_onnx
    a = export_onnx(VaeEncoder(**SMALL), 32, tmp_path / 'a.onnx', ('mu', 'logvar'))
    b = export_onnx(VaeEncoder(**dict(SMALL, channels=[64, 64, 64])), 32, tmp_path / 'b.onnx',
                    ('mu', 'logvar'))
    lat = compress.measure_latencies({'a': (a, 32), 'b': (b, 32)}, rounds=2, per_round=5)
    assert set(lat) == {'a', 'b'} and lat['b']['p50_ms'] > lat['a']['p50_ms']


def test_an_encoder_rebuilt_from_its_graph_scores_like_it_with_other_taps(tmp_path):
    # a bundle without its torch twin can still get other feature taps (tools/retap_vae_bundle)
    from leanood_ros.training.export import export_onnx
    torch.manual_seed(3)
    enc = VaeEncoder(**dict(SMALL, feature_taps=[0])).eval()
    for block in enc.features:          # non-trivial batch norms, folded into the convs by export
        bn = block[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    path = export_onnx(enc, 32, tmp_path / 'enc.onnx', ('mu', 'logvar', 'features'))
    rebuilt = encoder_from_onnx(path, 32, feature_taps=[0, 1])
    x = torch.from_numpy(frames(4)).permute(0, 3, 1, 2).float().div(255)
    enc.feature_taps = (0, 1)
    with torch.inference_mode():
        want, got = enc(x), rebuilt(x)
    assert got[2].shape == (4, 32)      # mean and std of 8 + 8 channels
    for w, g in zip(want, got):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def test_int8_keeps_the_score_inputs_in_float(tmp_path):
    import onnx
    from leanood_ros.training.export import export_onnx
    torch.manual_seed(0)
    enc = VaeEncoder(**dict(SMALL, feature_taps=[0])).eval()
    src = export_onnx(enc, 32, tmp_path / 'e.onnx', ('mu', 'logvar', 'features'))
    q = quantize_int8(src, tmp_path / 'q.onnx', frames(40), vae_preprocessing(32))
    g = onnx.load(str(q)).graph
    producer = {o: n for n in g.node for o in n.output}
    first_conv = next(n for n in g.node if n.op_type == 'Conv')
    # the first block's conv reads a float image and float weights (no DequantizeLinear)
    assert all(producer.get(i) is None or producer[i].op_type != 'DequantizeLinear'
               for i in first_conv.input[:2])
    assert sum(n.op_type == 'DequantizeLinear' for n in g.node) > 0   # the rest is quantized
    # and the statistics the score reads are exactly the float graph's (no shared Q/DQ pair)
    import onnxruntime as ort
    x = vae_preprocessing(32).normalize(frames(8, seed=3))

    def run(p):
        return ort.InferenceSession(str(p), providers=['CPUExecutionProvider']).run(
            ['features', 'mu'], {'image': x})

    (f32, mu32), (f8, mu8) = run(src), run(q)
    np.testing.assert_allclose(f8, f32, rtol=1e-5, atol=1e-6)   # float rounding only
    assert not np.array_equal(mu8, mu32)                            # mu went through int8


@pytest.mark.parametrize('precision', ['int8', 'fp16'])
def test_quantize_bundle_recalibrates_and_drops_the_torch_twin(tmp_path, precision):
    from leanood_ros.training.export import quantize_bundle
    torch.manual_seed(0)
    imgs = frames(80, low=0, high=255)
    arch = dict(SMALL, feature_taps=[0])
    enc = VaeEncoder(**arch).eval()
    mu, _, feat = (t.numpy() for t in compress.latent_targets(enc, imgs, features=True))
    src = vae_bundle(tmp_path / 'fp32', 'small', enc, arch, vae_preprocessing(32), imgs[:40],
                     'synthetic', head=compress.fit_head('features', mu, feat),
                     decision={'alpha': 0.01, 'fusion': 'vote', 'vote_k': 2, 'vote_n': 3})
    dst = quantize_bundle(src, tmp_path / precision, precision, imgs[:40], imgs[40:60], 'held out')
    b = load_bundle(dst)
    assert b.name == f'small_{precision}'
    assert 'torch' not in b.manifest['graphs']['detector']
    assert b.manifest['decision']['vote_k'] == 2                      # decision travels
    np.testing.assert_array_equal(b.head.whitener.chol,              # fitted head travels
                                  load_bundle(src).head.whitener.chol)
    assert b.manifest['provenance']['quantized_from']['sha256'] == load_bundle(src).graphs[
        'detector'].sha256
    assert b.manifest['calibration']['source'] == 'held out' and b.calibration_scores.size == 20
    s = build_detector(b).predict_resized(imgs[60:])
    s32 = build_detector(load_bundle(src)).predict_resized(imgs[60:])
    assert np.corrcoef(s32, s)[0, 1] > 0.9
    with pytest.raises(ValueError, match='int8 changes the scores'):
        quantize_bundle(src, tmp_path / 'x', 'int8')


def _folder(path: Path, imgs) -> Path:
    import cv2
    path.mkdir(parents=True)
    for i, im in enumerate(imgs):
        cv2.imwrite(str(path / f'f{i:04d}.png'), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    return path


def test_refit_moves_the_statistics_to_the_new_place(tmp_path):
    from leanood_ros.calibration import head_inputs
    from leanood_ros.training.refit import refit
    torch.manual_seed(0)
    arch = dict(SMALL, feature_taps=[0])
    enc = VaeEncoder(**arch).eval()
    old_place, new_place = frames(60, low=40, high=90), frames(330, seed=1, low=150, high=220)
    mu, _, feat = (t.numpy() for t in compress.latent_targets(enc, old_place, features=True))
    src = vae_bundle(tmp_path / 'src', 'small', enc, arch, vae_preprocessing(32), old_place[:20],
                     'old place', head=compress.fit_head('features', mu, feat))
    fit = _folder(tmp_path / 'fit', new_place[:200])
    cal = _folder(tmp_path / 'cal', new_place[200:310])
    ids = [_folder(tmp_path / f'id{k}', new_place[310 + 5 * k:315 + 5 * k]) for k in range(3)]
    before = build_detector(load_bundle(src)).predict_resized(new_place[310:])
    decision = refit(src, tmp_path / 'out', [fit], [cal], ids, fit_stride=1)
    b = load_bundle(tmp_path / 'out')
    assert b.name == 'out'                                              # named after --out
    det = build_detector(b)
    x = head_inputs(det, new_place[:200])['features']
    np.testing.assert_allclose(b.head.whitener.mean, x.mean(0), rtol=1e-4, atol=1e-5)
    assert b.calibration_scores.size == 110 and b.manifest['decision'] == decision
    assert b.graphs['detector'].sha256 == load_bundle(src).graphs['detector'].sha256
    assert b.manifest['metrics'] == {} and 'adapted' in b.manifest['provenance']
    assert det.predict_resized(new_place[310:]).mean() < before.mean()   # the new place is home
    kl = vae_bundle(tmp_path / 'kl', 'kl', enc, arch, vae_preprocessing(32), old_place[:20], 'x')
    with pytest.raises(ValueError, match='no fitted statistics'):
        refit(kl, tmp_path / 'out2', [fit], [cal], ids)
    # --keep-head: any head; statistics untouched, calibration from the new place
    refit(kl, tmp_path / 'out3', [], [cal], ids, keep_head=True)
    b3 = load_bundle(tmp_path / 'out3')
    assert b3.head.type == 'kl_divergence' and b3.calibration_scores.size == 110
    # an existing bundle is replaced only with force; anything else never
    with pytest.raises(Exception, match='--force'):
        refit(src, tmp_path / 'out', [fit], [cal], ids)
