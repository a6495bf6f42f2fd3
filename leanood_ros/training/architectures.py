"""beta-VAE encoder/decoder family (offline tooling; torch).

The reference baseline is the seed paper's configuration: RGB 224x224, four conv blocks (3x3 conv,
batch norm, LeakyReLU, 2x2 max-pool) of 128/64/32/16 channels, fully connected 3136-2048-1000-250,
latent 30.  Students and pruned variants are the same family with other widths and input sizes,
described by an `architecture` dict that travels in the bundle (so the torch backend can rebuild
the module from safetensors weights, without pickle).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

BASELINE = {'type': 'vae_encoder', 'input_size': 224, 'channels': [128, 64, 32, 16],
            'fc': [2048, 1000, 250], 'latent': 30}


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.LeakyReLU(0.1, inplace=True), nn.MaxPool2d(2))


def _mlp(dims: list) -> nn.Sequential:
    layers = []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.1, inplace=True)]
    return nn.Sequential(*layers)


class VaeEncoder(nn.Module):
    """image (N, 3, S, S) -> (mu, logvar), each (N, latent).

    With `feature_taps` (indices of conv blocks) it also returns `features`: the per-channel mean
    and standard deviation of those blocks' outputs - summary statistics the encoder computes
    anyway, which a score head can use beside the latent (see leanood compress).
    """

    def __init__(self, input_size: int = 224, channels=(128, 64, 32, 16), fc=(2048, 1000, 250),
                 latent: int = 30, feature_taps=(), **_):
        super().__init__()
        self.feature_taps = tuple(feature_taps)
        chans = [3] + list(channels)
        self.features = nn.Sequential(*[conv_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        side = input_size // 2 ** len(channels)
        if side < 1:
            raise ValueError(f'input {input_size} too small for {len(channels)} pooling stages')
        self.flat = chans[-1] * side * side
        self.fc = _mlp([self.flat] + list(fc))
        self.mu = nn.Linear(fc[-1] if fc else self.flat, latent)
        self.logvar = nn.Linear(fc[-1] if fc else self.flat, latent)

    def forward(self, x):
        stats = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.feature_taps:
                stats += [x.mean(dim=(2, 3)), x.var(dim=(2, 3), unbiased=False).add(1e-6).sqrt()]
        h = self.fc(torch.flatten(x, 1))
        if stats:
            return self.mu(h), self.logvar(h), torch.cat(stats, dim=1)
        return self.mu(h), self.logvar(h)


class VaeDecoder(nn.Module):
    """Decode latent -> image in [0, 1]; used only for training, so lighter than the encoder.

    Lighter than a mirror of the encoder: a mirrored 128-channel block at full resolution costs
    ~7 GMACs per image.
    """

    def __init__(self, input_size: int = 224, channels=(128, 64, 32, 16), fc=(2048, 1000, 250),
                 latent: int = 30, **_):
        super().__init__()
        stages = len(channels)
        self.side = input_size // 2 ** stages
        self.c0 = channels[-1]
        self.fc = _mlp([latent] + list(reversed(fc)) + [self.c0 * self.side * self.side])
        # widths from coarse to fine: 64 at the coarse end, halving towards full resolution
        widths = [max(16, 64 // 2 ** max(0, i - 1)) for i in range(stages)]
        blocks, c = [], self.c0
        for w in widths:
            blocks += [nn.Upsample(scale_factor=2, mode='nearest'),
                       nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                       nn.LeakyReLU(0.1, inplace=True)]
            c = w
        self.deconv = nn.Sequential(*blocks)
        self.out = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, z):
        h = self.fc(z).view(-1, self.c0, self.side, self.side)
        return torch.sigmoid(self.out(self.deconv(h)))


class BetaVAE(nn.Module):
    def __init__(self, arch: dict):
        super().__init__()
        self.arch = dict(arch)
        self.encoder = VaeEncoder(**arch)
        self.decoder = VaeDecoder(**arch)

    def forward(self, x):
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar


def build_encoder(arch: dict) -> VaeEncoder:
    if arch.get('type', 'vae_encoder') != 'vae_encoder':
        raise ValueError(f"unknown architecture type {arch.get('type')!r}")
    return VaeEncoder(**arch)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def encoder_from_state(arch: dict, state: dict) -> VaeEncoder:
    """Rebuild an encoder whose layer widths may differ from `arch` (pruned).

    The widths are read from the weights themselves.
    """
    chans = [state[f'features.{i}.0.weight'].shape[0] for i in range(len(arch['channels']))]
    fcs = [state[f'fc.{2 * i}.weight'].shape[0] for i in range(len(arch['fc']))]
    arch = dict(arch, channels=chans, fc=fcs)
    enc = build_encoder(arch)
    enc.load_state_dict(state)
    enc.arch = arch
    return enc.eval()


def load_torch_twin(spec: dict, bundle_path: Path) -> nn.Module:
    """Load the torch backend's model: architecture from the manifest, weights from safetensors.

    The weights are read once and verified against the manifest's sha256.
    """
    from safetensors.torch import load
    from ..bundle import read_verified
    data = read_verified(Path(bundle_path) / spec['file'], spec.get('sha256', ''), 'torch twin')
    return encoder_from_state(spec['architecture'], load(data))


def bundle_encoder(bundle, feature_taps) -> VaeEncoder:
    """Load a VAE bundle's encoder with other feature taps (its torch twin, else its graph)."""
    graph = bundle.manifest['graphs']['detector']
    if 'torch' in graph:
        enc = load_torch_twin(graph['torch'], bundle.path)
    else:
        enc = encoder_from_onnx(bundle.path / graph['file'], bundle.preprocessing.width)
    enc.feature_taps = tuple(feature_taps)
    enc.arch = dict(enc.arch, feature_taps=list(feature_taps))
    return enc


def encoder_from_onnx(path, input_size: int, feature_taps=()) -> VaeEncoder:
    """Rebuild an encoder from an exported VAE graph (a bundle without its torch twin).

    The exporter folds each batch norm into its conv (weight and bias), so the rebuilt blocks get
    the folded weights and an identity batch norm; fully connected layers keep their names.
    Used to give such a bundle other feature taps (tools/retap_vae_bundle.py).
    """
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
            for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == 'Conv']
    state = {}
    for i, node in enumerate(convs):
        w = init[node.input[1]]
        b = init[node.input[2]] if len(node.input) > 2 else torch.zeros(w.shape[0])
        eps = 1e-5      # nn.BatchNorm2d's default: var = 1 - eps makes it exactly x + bias
        state.update({f'features.{i}.0.weight': w, f'features.{i}.1.weight': torch.ones_like(b),
                      f'features.{i}.1.bias': b,
                      f'features.{i}.1.running_mean': torch.zeros_like(b),
                      f'features.{i}.1.running_var': torch.full_like(b, 1.0 - eps),
                      f'features.{i}.1.num_batches_tracked': torch.tensor(0)})
    fc = sorted({int(k.split('.')[1]) for k in init
                 if k.startswith('fc.') and k.endswith('.weight')})
    state.update({k: v for k, v in init.items() if k.split('.')[0] in ('fc', 'mu', 'logvar')})
    arch = {'input_size': input_size, 'channels': [0] * len(convs), 'fc': [0] * len(fc),
            'latent': init['mu.weight'].shape[0], 'feature_taps': list(feature_taps)}
    return encoder_from_state(arch, state)
