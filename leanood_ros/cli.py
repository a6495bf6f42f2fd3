"""`leanood`: the command-line entry point to the offline tooling and the demo.

    leanood demo        play a recording through ood_monitor, print the verdict timeline
    leanood dataset     build labelled rosbag2 datasets from rendered Duckietown sequences
    leanood train-vae   train a beta-VAE on in-distribution recordings
    leanood compress    the VAE design methodology (prune / distill / quantize, select)
    leanood quantize    an int8 (CPU) or fp16 (GPU) copy of a VAE bundle, recalibrated
    leanood adapt       adapt any bundle to a new robot/place from its normal recordings
    leanood refit       replace a bundle's ID statistics, recalibrate and retune
    leanood earlin      fit and export an EARLIN detector (layer study included)
    leanood evaluate    AUROC / FPR95 / detection delay of bundles on recordings
    leanood tune        a bundle's recommended decision settings, from ID recordings only
    leanood bench       latency, throughput and memory of bundles and of the node

Each subcommand imports its own (possibly heavy) modules only when it runs.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    'demo': 'leanood_ros.demo',
    'dataset': 'leanood_ros.data.duckietown_dataset',
    'train-vae': 'leanood_ros.training.train_vae',
    'compress': 'leanood_ros.training.compress',
    'quantize': 'leanood_ros.training.export:quantize_main',
    'adapt': 'leanood_ros.training.adapt',
    'refit': 'leanood_ros.training.refit',
    'earlin': 'leanood_ros.training.earlin',
    'evaluate': 'leanood_ros.evaluation.evaluate',
    'tune': 'leanood_ros.evaluation.tune',
    'bench': 'leanood_ros.evaluation.bench',
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in ('-h', '--help') else 2
    module, _, func = COMMANDS[argv[0]].partition(':')
    return int(getattr(importlib.import_module(module), func or 'main')(argv[1:]) or 0)


if __name__ == '__main__':
    sys.exit(main())
