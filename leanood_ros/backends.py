"""Inference backends behind one interface: `run(tensor) -> {output name: array}`.

ONNX Runtime is the deployed backend (CPU, or TensorRT/CUDA with CPU fallback).  PyTorch is an
optional backend for development; it is imported only when asked for, so the ONNX path never
loads torch.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import os
from pathlib import Path

import numpy as np

from .bundle import BundleError, GraphSpec

DEVICES = ('cpu', 'gpu')
BACKENDS = ('onnxruntime', 'torch')
_GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')


class BackendError(RuntimeError):
    """The requested backend cannot run here (e.g. `require_gpu` without a usable GPU)."""


class InferenceBackend(ABC):
    fallback_reason = ''   # why a requested GPU is not used ('' when it is, or was not asked)
    name = 'abstract'

    def __init__(self, graph: GraphSpec):
        self.graph = graph
        self.input_name = graph.input
        self.output_names = tuple(graph.outputs)

    @property
    @abstractmethod
    def provider(self) -> str:
        """Name what really executes the graph, e.g. 'CPUExecutionProvider'."""

    @property
    def fell_back(self) -> bool:
        """Tell whether a GPU was requested but the graph runs on the CPU."""
        return False

    @abstractmethod
    def run(self, x: np.ndarray) -> dict:
        """Run one batch; returns every graph output by name."""


class OnnxRuntimeBackend(InferenceBackend):
    name = 'onnxruntime'

    def __init__(self, graph: GraphSpec, device: str = 'cpu', threads: int = 1,
                 require_gpu: bool = False, fp16: bool = False):
        super().__init__(graph)
        import onnxruntime as ort
        if device not in DEVICES:
            raise BackendError(f'device must be one of {DEVICES}, got {device!r}')
        self.device = device
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        available = ort.get_available_providers()
        providers = ['CPUExecutionProvider']
        if device == 'gpu':
            cache = Path(os.environ.get('LEANOOD_TRT_CACHE',
                                        Path.home() / '.cache' / 'leanood_ros' / 'tensorrt'))
            trt_opts = {'trt_engine_cache_enable': True, 'trt_engine_cache_path': str(cache),
                        'trt_fp16_enable': bool(fp16)}
            gpu = [(p, trt_opts) if p == 'TensorrtExecutionProvider' else p
                   for p in _GPU_PROVIDERS if p in available]
            if not gpu and require_gpu:
                raise BackendError('require_gpu is set but this onnxruntime has no GPU provider '
                                   f'(available: {", ".join(available)}); install onnxruntime-gpu')
            providers = gpu + providers
        try:
            # from the verified bytes, never the path: what was hashed is what runs, and a
            # graph that points to external weight files cannot load them
            self.session = ort.InferenceSession(graph.read(), sess_options=opts,
                                                providers=providers)
        except BundleError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(f'{graph.path}: onnxruntime cannot load this graph: {exc}') from exc
        in_use = self.session.get_providers()
        self._provider = in_use[0] if in_use else 'unknown'
        self.fallback_reason = '' if not self.fell_back else (
            'this onnxruntime has no GPU provider (available: '
            f'{", ".join(available)}): install onnxruntime-gpu (on a Jetson NVIDIA\'s wheel) '
            'instead of onnxruntime' if not any(p in available for p in _GPU_PROVIDERS) else
            f'the GPU providers ({", ".join(p for p in _GPU_PROVIDERS if p in available)}) '
            'failed to start: the CUDA/cuDNN/TensorRT libraries were not found or no GPU is '
            'visible (onnxruntime logs the cause at log_severity 2)')
        if device == 'gpu' and self.fell_back and require_gpu:
            raise BackendError(f'require_gpu is set but {self.fallback_reason}; '
                               f'running on {self._provider}')
        names = {i.name for i in self.session.get_inputs()}
        if graph.input not in names:
            raise BundleError(f"{graph.path}: graph has no input '{graph.input}' "
                              f'(has {sorted(names)})')
        outs = {o.name for o in self.session.get_outputs()}
        missing = set(graph.outputs) - outs
        if missing:
            raise BundleError(f'{graph.path}: graph lacks outputs {sorted(missing)} named in the '
                              f'manifest (has {sorted(outs)})')

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def fell_back(self) -> bool:
        return self.device == 'gpu' and self._provider == 'CPUExecutionProvider'

    def run(self, x: np.ndarray) -> dict:
        values = self.session.run(list(self.output_names), {self.input_name: x})
        return dict(zip(self.output_names, values))


class TorchBackend(InferenceBackend):
    """Runs a bundle graph's PyTorch twin (architecture spec + safetensors weights)."""

    name = 'torch'

    def __init__(self, graph: GraphSpec, torch_spec: dict, bundle_path: Path,
                 device: str = 'cpu', threads: int = 1):
        super().__init__(graph)
        try:
            import torch
            from .training.architectures import load_torch_twin
        except ImportError as exc:
            raise BackendError(f'the torch backend needs PyTorch installed ({exc})') from exc
        torch.set_num_threads(int(threads))
        self._torch = torch
        self._device = 'cuda' if device == 'gpu' and torch.cuda.is_available() else 'cpu'
        self.device = device
        self.module = load_torch_twin(torch_spec, bundle_path).to(self._device).eval()

    @property
    def provider(self) -> str:
        return f'torch-{self._device}'

    @property
    def fell_back(self) -> bool:
        return self.device == 'gpu' and self._device == 'cpu'

    def run(self, x: np.ndarray) -> dict:
        with self._torch.inference_mode():
            out = self.module(self._torch.from_numpy(x).to(self._device))
        if not isinstance(out, (tuple, list)):
            out = (out,)
        return {n: o.detach().cpu().numpy() for n, o in zip(self.output_names, out)}


def make_backend(bundle, role: str = 'detector', backend: str = 'onnxruntime',
                 device: str = 'cpu', threads: int = 1, require_gpu: bool = False
                 ) -> InferenceBackend:
    if backend not in BACKENDS:
        raise BackendError(f'backend must be one of {BACKENDS}, got {backend!r}')
    graph = bundle.graphs[role]
    spec = bundle.manifest['graphs'][role]
    if backend == 'torch':
        if 'torch' not in spec:
            raise BackendError(f"bundle {bundle.path} has no PyTorch twin for graph '{role}'")
        b = TorchBackend(graph, spec['torch'], bundle.path, device, threads)
        if require_gpu and b.fell_back:
            raise BackendError('require_gpu is set but torch sees no CUDA device')
        return b
    return OnnxRuntimeBackend(graph, device, threads, require_gpu,
                              fp16=bool(spec.get('fp16_ok', False)))
