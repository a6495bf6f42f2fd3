"""Export trained detectors as model bundles (ONNX graph + manifest + model card), and quantize.

Calibration scores are computed through the exported ONNX graph with the same detector code the
node runs, so the bundle's p-values match what the robot will see.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

from ..bundle import load_bundle, ModelBundle, resolve_bundle_path, save_bundle
from ..calibration import calibrate
from ..evaluation.tune import tune_bundle
from ..heads import KLPriorHead, ScoreHead
from ..preprocess import Preprocessing

REPO = Path(__file__).resolve().parents[2]


def provenance(data: str, extra: dict | None = None) -> dict:
    try:
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ''
    from .. import __version__
    return {'data': data, 'command': ' '.join(['leanood'] + sys.argv[1:]) if sys.argv else '',
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'git_commit': commit, 'leanood_ros': __version__, 'torch': torch.__version__,
            'machine': f'{platform.machine()} {platform.processor() or ""}'.strip(),
            **(extra or {})}


def export_onnx(module: torch.nn.Module, input_size: int, path: Path, output_names,
                opset: int = 17, example: torch.Tensor | None = None,
                input_name: str = 'image') -> Path:
    """ONNX with a dynamic batch axis; the input is an image unless `example` says otherwise."""
    module = module.eval().float().to(memory_format=torch.contiguous_format)
    x = torch.zeros(1, 3, input_size, input_size) if example is None else example
    torch.onnx.export(module, (x,), str(path), input_names=[input_name],
                      output_names=list(output_names), opset_version=opset, dynamo=False,
                      dynamic_axes={input_name: {0: 'batch'}, **{o: {0: 'batch'}
                                                                 for o in output_names}})
    return path


def vae_bundle(out: Path, name: str, encoder: torch.nn.Module, arch: dict, pre: Preprocessing,
               calib_images: np.ndarray, calib_source: str, head: ScoreHead | None = None,
               description: str = '', prov: dict | None = None, metrics: dict | None = None,
               decision: dict | None = None, onnx_file: Path | None = None, id_paths=(),
               force: bool = True, fit_frames: int | None = None, twin: bool = True) -> Path:
    """Build a vae-family bundle in memory and write it once.

    Graph, torch twin, fitted `head`, calibration, decision tuned on `id_paths` when given.
    `onnx_file` replaces the exported graph (e.g. quantized).  `fit_frames` (how many ID frames
    the head was fitted on) weighs the prior when `leanood adapt` pools a new place in.
    `twin=False` leaves out the torch twin (the graph alone can rebuild it: encoder_from_onnx).
    """
    from safetensors.torch import save_file
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        outputs = ['mu', 'logvar'] + (['features'] if arch.get('feature_taps') else [])
        if onnx_file is not None:
            shutil.copyfile(onnx_file, tmp / 'encoder.onnx')
        else:
            export_onnx(encoder, pre.width, tmp / 'encoder.onnx', outputs)
        graph = {'file': 'encoder.onnx', 'input': 'image', 'outputs': outputs}
        if onnx_file is None and twin:  # a quantized graph no longer matches the torch weights
            save_file({k: v.contiguous() for k, v in encoder.state_dict().items()},
                      str(tmp / 'encoder.safetensors'))
            graph['torch'] = {'file': 'encoder.safetensors',
                              'architecture': dict(arch, type='vae_encoder')}
        detector = {'family': 'vae', **({'fit_frames': int(fit_frames)} if fit_frames else {})}
        manifest = {'name': name, 'description': description, 'detector': detector,
                    'graphs': {'detector': graph}, 'preprocessing': pre.to_dict(),
                    'provenance': prov or {}, 'metrics': metrics or {}}
        if decision:
            manifest['decision'] = decision
        bundle = ModelBundle.draft(tmp, manifest, head or KLPriorHead())
        calibrate(bundle, calib_images, calib_source)
        if id_paths:
            tune_bundle(bundle, id_paths)
        save_bundle(bundle, out, force=force)
    return Path(out)


class _Reader:
    """onnxruntime CalibrationDataReader over preprocessed frames."""

    def __init__(self, images: np.ndarray, pre: Preprocessing, input_name: str = 'image',
                 batch: int = 8):
        self.images, self.pre, self.name, self.batch, self.i = images, pre, input_name, batch, 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        x = self.pre.normalize(self.images[self.i:self.i + self.batch])
        self.i += self.batch
        return {self.name: x}

    def rewind(self):
        self.i = 0


def nodes_feeding(model_path: Path, output: str) -> list:
    """Names of every node an output depends on (to keep a score's inputs in float)."""
    import onnx
    graph = onnx.load(str(model_path)).graph
    producer = {o: n for n in graph.node for o in n.output}
    todo, seen = [output], set()
    while todo:
        n = producer.get(todo.pop())
        if n is not None and n.name not in seen:
            seen.add(n.name)
            todo += list(n.input)
    return sorted(seen)


def quantize_int8(src: Path, dst: Path, calib_images: np.ndarray, pre: Preprocessing,
                  exclude_nodes=None) -> Path:
    """Quantize to int8 by static PTQ (QDQ, per-channel weights, calibration on ID frames).

    By default every node feeding a `features` output stays float: those statistics are the
    score's input, and the score is computed in float.
    """
    import onnx
    if exclude_nodes is None:
        outs = {o.name for o in onnx.load(str(src)).graph.output}
        exclude_nodes = nodes_feeding(src, 'features') if 'features' in outs else []
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    prep = Path(dst).with_suffix('.prep.onnx')
    quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
    quantize_static(str(prep), str(dst), _Reader(calib_images, pre), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=list(exclude_nodes),
                    extra_options={'ActivationSymmetric': False, 'WeightSymmetric': True})
    prep.unlink(missing_ok=True)
    if exclude_nodes:
        _bypass_qdq(Path(dst), set(exclude_nodes))
    return Path(dst)


def _bypass_qdq(path: Path, float_nodes: set) -> None:
    """Feed the float nodes the float tensors again.

    A tensor that a quantized node also reads gets one Q/DQ pair that every consumer shares;
    rewire the float consumers around it (and drop pairs nothing reads any more), so the score's
    inputs are exactly the fp32 graph's.
    """
    import onnx
    model = onnx.load(str(path))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    for n in g.node:
        if n.name not in float_nodes:
            continue
        for i, t in enumerate(n.input):
            dq = producer.get(t)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == 'DequantizeLinear' \
                else None
            if q is not None and q.op_type == 'QuantizeLinear':
                n.input[i] = q.input[0]
    used = {t for n in g.node for t in n.input} | {o.name for o in g.output}
    dead = [n for n in g.node if n.op_type in ('QuantizeLinear', 'DequantizeLinear')
            and not any(o in used for o in n.output)]
    while dead:
        for n in dead:
            g.node.remove(n)
        used = {t for n in g.node for t in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type in ('QuantizeLinear', 'DequantizeLinear')
                and not any(o in used for o in n.output)]
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and activations with fp32 inputs/outputs (for GPU / TensorRT)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)


def quantize_bundle(src: Path, dst: Path, precision: str, ptq_images: np.ndarray | None = None,
                    calib_images: np.ndarray | None = None, calib_source: str = '',
                    force: bool = False) -> Path:
    """Make a quantized copy of a vae-family bundle: int8 (static PTQ on `ptq_images`) or fp16.

    int8 PTQ runs on ID frames.  The torch twin is dropped (it no longer matches the graph), the
    fitted head and the decision settings travel unchanged, and the calibration scores and
    self-test are recomputed through the new graph (on `calib_images`; without them the source's
    are kept: fp16 only).
    """
    src, dst = Path(src), Path(dst)
    bundle = load_bundle(src)
    if bundle.family != 'vae':
        raise ValueError(f'{src}: only vae-family bundles can be quantized here')
    if precision not in ('int8', 'fp16'):
        raise ValueError(f"precision must be 'int8' or 'fp16', got {precision!r}")
    if precision == 'int8' and (ptq_images is None or calib_images is None):
        raise ValueError('int8 changes the scores: it needs ID frames for the static '
                         'calibration and held-out ID frames for the p-values')
    graph = bundle.graphs['detector']
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plain = tmp / 'source.onnx'
        plain.write_bytes(graph.read())
        out_graph = tmp / graph.path.name
        if precision == 'int8':
            quantize_int8(plain, out_graph, ptq_images, bundle.preprocessing)
        else:
            convert_fp16(plain, out_graph)
        plain.unlink()
        manifest = json.loads(json.dumps(bundle.manifest))
        manifest['name'] = f'{bundle.name}_{precision}'
        manifest['description'] = f"{manifest.get('description', '')} ({precision})".strip()
        manifest['graphs']['detector'].pop('torch', None)
        prov = dict(manifest.get('provenance', {}))
        prov['recipe'] = list(prov.get('recipe', [])) + [
            'int8 static PTQ (QDQ, per-channel weights; score inputs kept float)'
            if precision == 'int8' else 'fp16 (fp32 inputs/outputs)']
        prov['quantized_from'] = {'bundle': bundle.name, 'sha256': graph.sha256}
        manifest['provenance'] = prov
        manifest['metrics'] = {}  # measured again on the new graph, not inherited
        new = ModelBundle.draft(tmp, manifest, bundle.head)
        if calib_images is not None:
            calibrate(new, calib_images, calib_source)
        else:
            from ..detectors import build_detector
            new.calibration_scores = bundle.calibration_scores
            new.manifest['self_test']['scores'] = [
                float(s) for s in build_detector(new).known_answers()]
        save_bundle(new, dst, force=force)
    return dst


def quantize_main(argv=None) -> int:
    """`leanood quantize`: an int8 or fp16 copy of a VAE bundle, recalibrated on ID recordings."""
    import argparse
    from ..evaluation.frames import load_frames
    from ..evaluation.recording_sets import add_recording_args, recording_sets, require
    ap = argparse.ArgumentParser(prog='leanood quantize', description=quantize_main.__doc__)
    ap.add_argument('--model', required=True, help='source bundle (name under models/ or path)')
    ap.add_argument('--out', type=Path, required=True, help='folder for the new bundle')
    ap.add_argument('--precision', choices=('int8', 'fp16'), default='int8')
    add_recording_args(ap, roles=('fit', 'calib'))
    ap.add_argument('--fit-stride', type=int, default=10, help='use every k-th fit frame')
    ap.add_argument('--force', action='store_true', help='replace an existing bundle at --out')
    a = ap.parse_args(argv)
    sets = recording_sets(a, ap, split='val')
    int8 = a.precision == 'int8'
    require(ap, sets, *(('fit', 'calib') if int8 else ('calib',)),
            why='(int8 sets its activation ranges on --fit frames)' if int8 else '')
    fit, calib = sets['fit'], sets['calib']
    pre = load_bundle(a.model).preprocessing
    ptq = load_frames(fit, pre, stride=a.fit_stride).images if fit else None
    cal = load_frames(calib, pre).images
    out = quantize_bundle(resolve_bundle_path(a.model), a.out, a.precision, ptq, cal,
                          ', '.join(Path(p).name for p in calib), force=a.force)
    print(f'wrote {out} ({a.precision})')
    return 0
