"""Export trained detectors as model bundles (ONNX graph + manifest + model card), and quantize.

Calibration scores are computed through the exported ONNX graph with the same detector code the
node runs, so the bundle's p-values match what the robot will see.
"""
from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from ..bundle import load_bundle, write_bundle
from ..detectors import build_detector
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


def calibrate(bundle_dir: Path, calib_images: np.ndarray, source: str) -> np.ndarray:
    """Score the calibration frames through the bundle's ONNX graph and store the scores."""
    det = build_detector(load_bundle(bundle_dir), threads=2)
    scores = det.predict_resized(calib_images)
    manifest = json.loads((bundle_dir / 'bundle.json').read_text())
    manifest['calibration'] = {'scores': scores.tolist(), 'source': source, 'n': int(scores.size)}
    write_bundle(bundle_dir, manifest)
    return scores


def vae_bundle(out: Path, name: str, encoder: torch.nn.Module, arch: dict, pre: Preprocessing,
               calib_images: np.ndarray, calib_source: str, dims=None, description: str = '',
               prov: dict | None = None, metrics: dict | None = None, decision: dict | None = None,
               onnx_file: Path | None = None, head: dict | None = None) -> Path:
    """Write a vae-family bundle. `onnx_file` replaces the exported graph (e.g. quantized)."""
    from safetensors.torch import save_file
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graph = out / 'encoder.onnx'
    outputs = ['mu', 'logvar'] + (['features'] if arch.get('feature_taps') else [])
    if onnx_file is not None:
        graph.write_bytes(Path(onnx_file).read_bytes())
    else:
        export_onnx(encoder, pre.width, graph, outputs)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()},
              str(out / 'encoder.safetensors'))
    manifest = {
        'name': name, 'description': description,
        'detector': {'family': 'vae',
                     'head': head or {'type': 'kl_divergence', 'mu': 'mu', 'logvar': 'logvar',
                                      'dims': None if dims is None else [int(d) for d in dims]},
                     'score': score_description(head)},
        'graphs': {'detector': {'file': 'encoder.onnx', 'input': 'image',
                                'outputs': outputs,
                                'torch': {'file': 'encoder.safetensors',
                                          'architecture': dict(arch, type='vae_encoder')}}},
        'preprocessing': pre.to_dict(),
        'calibration': {'scores': [0.0] * 20, 'source': 'pending'},
        'provenance': prov or {},
        'metrics': metrics or {},
    }
    if decision:
        manifest['decision'] = decision
    write_bundle(out, manifest)
    calibrate(out, calib_images, calib_source)
    return out


def score_description(head: dict | None) -> str:
    kind = (head or {}).get('type', 'kl_divergence')
    return {
        'kl_divergence': 'sum over the selected latent dimensions of KL(N(mu_i, sigma_i^2) || '
                         'N(0, 1)) (the paper\'s score)',
        'kl_to_fitted': 'KL(N(mu, sigma^2) || N(m, S)): divergence of the latent Gaussian from '
                        'the ID aggregate posterior fitted on training frames',
        'mahalanobis': 'Gaussian divergence (squared Mahalanobis distance) of the encoder\'s '
                       'summary vector from its ID distribution fitted on training frames',
    }.get(kind, kind) + '; higher = more OOD'


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
    """Static int8 PTQ (QDQ, per-channel weights, calibration on ID frames).  By default every
    node feeding a `features` output stays float: those statistics are the score's input, and
    the score is computed in float."""
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
    return Path(dst)


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and activations with fp32 inputs/outputs (for GPU / TensorRT)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return Path(dst)
