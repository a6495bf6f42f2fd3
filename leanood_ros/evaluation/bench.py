"""`leanood bench`: latency, throughput, memory and robustness, measured and recorded.

    leanood bench detectors [--models vae_baseline,vae_lean,earlin_lite0]
                                                    # side by side, 1 and 2 threads
    leanood bench node      [--model vae_lean] [--rates 30,60,120,240]  # real DDS, 640x480
                            [--size 1920x1080] [--compressed]           # other frames, JPEG
    leanood bench big_frames --out benchmarks/big_frames  # big JPEGs, reduced decode, memory
    leanood bench input --baseline REV --out benchmarks/raw_input  # input path vs a revision
    leanood bench cadence --out benchmarks/cadence  # own work: back to back vs camera rates
    leanood bench soak      [--minutes 10]          # resident memory slope
    leanood bench faults                            # burst, stall, slow, malformed
    leanood bench all       --out benchmarks/       # everything, JSON + markdown

Detector level: every bundle x thread count x available provider runs `Detector.infer` on a real
640x480 frame (resize and preprocessing included) and inference alone, in interleaved rounds so
that machine noise hits all alike; peak RSS per bundle is measured in a process of its own.
Node level: a camera process -> ood_monitor (pinned to one CPU core) -> this process, over Fast
DDS with the shipped large-frame profile; end-to-end latency (camera stamp -> verdict received)
is split into transport, the node's own overhead and inference, as ood_monitor reports per frame.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path
import platform
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / 'config' / 'fastdds_large_frames.xml'
MONITOR_PROFILE = REPO / 'config' / 'fastdds_monitor.xml'   # the monitor's process alone
DEFAULT_MODELS = ('vae_baseline', 'vae_lean', 'earlin_lite0')


def machine() -> dict:
    cpu = ''
    try:
        cpu = next(ln.split(':', 1)[1].strip() for ln in Path('/proc/cpuinfo').read_text()
                   .splitlines() if ln.startswith('model name'))
    except (OSError, StopIteration):
        pass
    import onnxruntime as ort
    return {'cpu': cpu, 'cores': os.cpu_count(), 'machine': platform.machine(),
            'python': platform.python_version(), 'onnxruntime': ort.__version__,
            'providers': ort.get_available_providers(),
            'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}


def sample_frames(count: int | None = None) -> list:
    """Return the sample recording's first `count` frames (all: None), as decoded from rgb8."""
    import itertools
    from ..data.recordings import open_recording
    from ..image_conversion import from_array, to_rgb
    from ..nodes.camera_replay import sample_recording
    with open_recording(sample_recording()) as rec:
        return [from_array(np.ascontiguousarray(to_rgb(f.image)), 'rgb')
                for f in itertools.islice(rec, count)]


def sample_frame():
    return sample_frames(1)[0]   # 640x480


# -- detector level ---------------------------------------------------------------------------
def bench_detectors(models, threads=(1, 2), rounds: int = 5, per_round: int = 40) -> list:
    import onnxruntime as ort
    from ..bundle import load_bundle
    from ..detectors import build_detector
    from .graph_stats import graph_macs
    frame = sample_frame()
    devices = ['cpu'] + (['gpu'] if any(p in ort.get_available_providers() for p in
                                        ('CUDAExecutionProvider', 'TensorrtExecutionProvider'))
                         else [])
    dets = {}
    for m in models:
        b = load_bundle(m)
        for th in threads:
            for dev in devices:
                det = build_detector(b, device=dev, threads=th)
                for _ in range(10):
                    det.infer(frame)
                dets[(Path(m).name, th, dev)] = (b, det)
    total = {k: [] for k in dets}
    infer = {k: [] for k in dets}
    for _ in range(rounds):
        for k, (_, det) in dets.items():
            for _ in range(per_round):
                t = time.perf_counter()
                r = det.infer(frame)
                total[k].append((time.perf_counter() - t) * 1e3)
                infer[k].append(r.inference_ms)
    rows = []
    for (name, th, dev), (b, det) in dets.items():
        g = b.graphs.get('detector')
        tot, inf = np.array(total[(name, th, dev)]), np.array(infer[(name, th, dev)])
        rows.append({'model': name, 'threads': th, 'device': dev, 'provider': det.provider,
                     'latency_p50_ms': float(np.percentile(tot, 50)),
                     'latency_p99_ms': float(np.percentile(tot, 99)),
                     'inference_p50_ms': float(np.percentile(inf, 50)),
                     'throughput_fps': float(1000.0 / tot.mean()),
                     'graph_bytes': g.path.stat().st_size if g else 0,
                     'macs': graph_macs(g.path) if g else 0,
                     'input': b.manifest['preprocessing']['input_size']})
    paths = {Path(m).name: m for m in models}
    for r in rows:
        r['peak_rss_mb'] = peak_rss_mb(paths[r['model']], r['threads'])
    base = {(r['threads'], r['device']): r for r in rows if r['model'] == 'vae_baseline'}
    for r in rows:
        ref = base.get((r['threads'], r['device']))
        if ref:
            r['speedup_vs_baseline'] = ref['latency_p50_ms'] / r['latency_p50_ms']
            r['inference_speedup_vs_baseline'] = ref['inference_p50_ms'] / r['inference_p50_ms']
            r['size_ratio_vs_baseline'] = r['graph_bytes'] / ref['graph_bytes']
    return rows


_RSS_CODE = """
import sys
from leanood_ros.bundle import load_bundle
from leanood_ros.detectors import build_detector
from leanood_ros.evaluation.bench import sample_frame
det = build_detector(load_bundle(sys.argv[1]), threads=int(sys.argv[2]))
frame = sample_frame()
for _ in range(50):
    det.infer(frame)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from the (large) parent
hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(int(hwm.split()[1]) / 1024.0)
"""


def peak_rss_mb(model: str, threads: int) -> float:
    """Peak resident memory of a process that loads the bundle and judges 50 frames."""
    out = subprocess.run([sys.executable, '-c', _RSS_CODE, model, str(threads)], cwd=REPO,
                         capture_output=True, text=True, env=_env(os.getpid() % 100 + 1))
    try:
        return float(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return float('nan')


# -- node level -------------------------------------------------------------------------------
def _qos_from_xml() -> str:
    """RMW_FASTRTPS_USE_QOS_FROM_XML for the bench's processes.

    The documented monitor set-up (README "QoS trade-off"; the bench's own processes call no
    services); RMW_FASTRTPS_USE_QOS_FROM_XML=0 in the caller's environment measures without.
    """
    return os.environ.get('RMW_FASTRTPS_USE_QOS_FROM_XML', '1')


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def monitor_profile() -> Path:
    """Return the monitor's Fast DDS profile (LEANOOD_BENCH_MONITOR_PROFILE: another one)."""
    return Path(os.environ.get('LEANOOD_BENCH_MONITOR_PROFILE', MONITOR_PROFILE)).resolve()


def _env(domain: int, repo: Path = REPO, monitor: bool = False, pythonpath=()) -> dict:
    """Environment of a bench process; `monitor`: the ood_monitor's own (its profile).

    `pythonpath`: folders ahead of the environment's packages (another onnxruntime release).
    """
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               FASTDDS_DEFAULT_PROFILES_FILE=str(monitor_profile() if monitor else PROFILE),
               PYTHONUNBUFFERED='1', RMW_FASTRTPS_USE_QOS_FROM_XML=_qos_from_xml())
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(repo), *map(str, pythonpath), env.get('PYTHONPATH', '')) if p)
    return env


class NodeRun:
    """ood_monitor (pinned to CPU 0) + a bench camera, observed from this process.

    `repo`: the checkout whose ood_monitor runs (another revision, for side-by-side runs); the
    camera and the observer are always this checkout's.
    """

    def __init__(self, model: str, extra_params=(), cpu: int = 0, repo: Path = REPO,
                 pythonpath=()):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import Bool
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        # LEANOOD_BENCH_DOMAIN pins the ROS domain (machines shared with other test runs)
        self.domain = int(os.environ.get('LEANOOD_BENCH_DOMAIN', 0)) or \
            random.Random(time.time_ns()).randint(120, 230)
        self.env = _env(self.domain)
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PROFILE)
        params = ['-p', f'model:={model}', '-p', 'deadline_ms:=100.0']
        for p in extra_params:
            params += ['-p', p]
        self.log = open(f'/tmp/leanood_bench_node_{self.domain}.log', 'wb')
        cmd = [sys.executable, '-m', 'leanood_ros.nodes.ood_monitor', '--ros-args', *params]
        if cpu is not None and hasattr(os, 'sched_setaffinity') and os.cpu_count() > 1:
            cmd = ['taskset', '-c', str(cpu)] + cmd
        self.node = subprocess.Popen(cmd, env=_env(self.domain, repo, True, pythonpath),
                                     cwd=repo, stdout=self.log, stderr=subprocess.STDOUT)
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=self.domain)
        self.lis = rclpy.create_node('bench_listener', context=self.ctx)
        self.status, self.safe, self.diag = [], [], []
        self.lis.create_subscription(DiagnosticArray, 'ood/status', self._on_status, 1000)
        self.lis.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 100)
        self.lis.create_subscription(
            Bool, 'ood/is_safe', lambda m: self.safe.append((time.monotonic(), m.data)),
            QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.lis)
        self._stop = threading.Event()
        self._spin = threading.Thread(target=self._spinner, daemon=True)
        self._spin.start()
        deadline = time.monotonic() + 60
        while not self.safe and time.monotonic() < deadline:
            if self.node.poll() is not None:
                raise RuntimeError(f'ood_monitor exited: {self.log.name}')
            time.sleep(0.1)

    def _spinner(self):
        while not self._stop.is_set():
            try:
                self.ex.spin_once(timeout_sec=0.05)
            except Exception:
                return

    def _on_status(self, msg):
        now = time.time_ns()
        kv = {v.key: v.value for v in msg.status[0].values}
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.status.append({'t': time.monotonic(), 'e2e_ms': (now - stamp) / 1e6,
                            **{k: float(kv[k]) for k in ('transport_ms', 'node_ms',
                                                         'inference_ms', 'latency_ms')},
                            'is_safe': kv['is_safe'] == 'True'})

    def _on_diag(self, msg):
        for st in msg.status:
            kv = {v.key: v.value for v in st.values}
            if 'frames_received' in kv:
                self.diag.append((time.monotonic(), kv))

    @staticmethod
    def camera_command(schedule: str, bad: float = 0.0, cpu: int = 1, size=(640, 480),
                       compressed: bool = False, topic: str = 'image') -> list:
        """Return the bench camera's command line (pinned to `cpu`; prints {'sent': ...})."""
        cmd = [sys.executable, '-m', 'leanood_ros.evaluation.bench_camera', '--schedule', schedule,
               '--bad', str(bad), '--width', str(size[0]), '--height', str(size[1]),
               '--topic', topic]
        cmd += ['--compressed'] if compressed else []
        if os.cpu_count() > 1:
            cmd = ['taskset', '-c', str(cpu)] + cmd
        return cmd

    def camera(self, schedule: str, bad: float = 0.0, cpu: int = 1, size=(640, 480),
               compressed: bool = False) -> dict:
        cmd = self.camera_command(schedule, bad, cpu, size, compressed)
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
        time.sleep(1.5)   # last verdicts and one more /diagnostics
        try:
            return json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise RuntimeError(f'bench camera failed: {out.stderr[-2000:]}') from exc

    def rss_mb(self) -> float:
        import psutil
        try:
            proc = psutil.Process(self.node.pid)
            kids = proc.children(recursive=True)
            return max([proc.memory_info().rss] + [k.memory_info().rss for k in kids]) / 2 ** 20
        except psutil.Error:
            return float('nan')

    def memory(self) -> dict:
        """Return the node's memory in MB: RSS and what it is made of, USS and PSS.

        RSS counts the shared libraries (onnxruntime, OpenCV, ROS: mapped once for every
        process on the robot) and DDS shared-memory segments; USS is what this process alone
        costs, PSS its fair share of the shared pages.
        """
        import psutil
        try:
            proc = psutil.Process(self.node.pid)
            if proc.children():   # taskset -> python: the node is the child
                proc = proc.children()[0]
            full = proc.memory_full_info()
            status = dict(line.split(':', 1) for line in
                          open(f'/proc/{proc.pid}/status').read().splitlines() if ':' in line)
        except (psutil.Error, OSError):
            return {}
        kb = {k: int(status[k].split()[0]) / 1024 for k in ('RssAnon', 'RssFile', 'RssShmem')
              if k in status}
        return {'rss': full.rss / 2 ** 20, 'uss': full.uss / 2 ** 20, 'pss': full.pss / 2 ** 20,
                'anon': kb.get('RssAnon'), 'file': kb.get('RssFile'),
                'shmem': kb.get('RssShmem')}

    def last_diag(self) -> dict:
        return dict(self.diag[-1][1]) if self.diag else {}

    def close(self) -> int:
        if self.node.poll() is None:
            self.node.send_signal(signal.SIGINT)
        try:
            rc = self.node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.node.kill()
            rc = -9
        self._stop.set()
        self._spin.join(timeout=2)
        self.ex.shutdown(timeout_sec=1)
        self.lis.destroy_node()
        import rclpy
        rclpy.try_shutdown(context=self.ctx)
        self.log.close()
        return rc


def _count(diag: dict, key: str) -> float:
    """Return a /diagnostics counter; nan where the node cannot count it (frames_lost, Humble)."""
    value = diag.get(key, '0')
    return int(value) if str(value).isdigit() else float('nan')


def counted(n) -> str:
    """Return a counter for the tables: '-' where the node could not count it (nan, None)."""
    return '-' if n is None or n != n else str(int(n))


def lost(row: dict) -> str:
    """Return a row's frames lost before the node, for the tables."""
    return counted(row.get('lost_before_node'))


def _pct(xs, q):
    return float(np.percentile(xs, q)) if len(xs) else float('nan')


def bench_node(model: str = 'vae_lean', rates=(30, 60, 120, 240), seconds: float = 10.0,
               size=(640, 480), compressed: bool = False, repo: Path = REPO,
               params=(), pythonpath=()) -> dict:
    """Run the node at each camera rate; `params`: extra `name:=value` node parameters."""
    run = NodeRun(model, (['compressed:=true'] if compressed else []) + list(params), repo=repo,
                  pythonpath=pythonpath)
    rows = []
    try:
        idle_rss, idle_memory = run.rss_mb(), run.memory()
        for rate in rates:
            before = run.last_diag()
            n0 = len(run.status)
            cam = run.camera(f'{rate}:{seconds}', size=size, compressed=compressed)
            st = run.status[n0:]
            d = run.last_diag()
            delta = {k: _count(d, k) - _count(before, k)
                     for k in ('frames_received', 'frames_judged', 'frames_skipped',
                               'frames_lost')}
            e2e = [s['e2e_ms'] for s in st]
            half = len(e2e) // 2
            rows.append({
                'rate_hz': rate, 'sent': cam['sent'], 'received': delta['frames_received'],
                'judged': delta['frames_judged'], 'skipped': delta['frames_skipped'],
                'lost_before_node': delta['frames_lost'],
                'sustained': delta['frames_judged'] >= 0.98 * cam['sent'],
                'e2e_p50_ms': _pct(e2e, 50), 'e2e_p99_ms': _pct(e2e, 99),
                'transport_p50_ms': _pct([s['transport_ms'] for s in st], 50),
                'node_overhead_p50_ms': _pct([s['node_ms'] for s in st], 50),
                'node_overhead_p99_ms': _pct([s['node_ms'] for s in st], 99),
                'inference_p50_ms': _pct([s['inference_ms'] for s in st], 50),
                # a growing queue would show as latency rising through the run
                'e2e_p50_first_half_ms': _pct(e2e[:half], 50),
                'e2e_p50_second_half_ms': _pct(e2e[half:], 50),
                'node_rss_mb': run.rss_mb(), 'node_memory_mb': run.memory()})
    finally:
        rc = run.close()
    sustained = [r['rate_hz'] for r in rows if r['sustained']]
    return {'model': model, 'node_cpu': 'pinned to one core (taskset -c 0)', 'rows': rows,
            'max_sustained_hz': max(sustained) if sustained else None, 'exit_code': rc,
            'fastdds_profile': _shown(PROFILE),
            'monitor_fastdds_profile': _shown(monitor_profile()),
            'qos_from_xml': _qos_from_xml() == '1',
            'idle_rss_mb': idle_rss,
            'idle_memory_mb': idle_memory,
            'input': f"{size[0]}x{size[1]} {'jpeg' if compressed else 'rgb8'}",
            'params': list(params)}


def bench_soak(model: str = 'vae_lean', minutes: float = 10.0, rate: float = 30.0) -> dict:
    run = NodeRun(model)
    samples = []
    try:
        cam_thread = threading.Thread(target=lambda: samples.append(
            ('camera', run.camera(f'{rate}:{minutes * 60}'))), daemon=True)
        t0 = time.monotonic()
        cam_thread.start()
        rss = []
        while cam_thread.is_alive():
            rss.append((time.monotonic() - t0, run.rss_mb()))
            time.sleep(1.0)
        st = run.status
        d = run.last_diag()
    finally:
        rc = run.close()
    t, m = np.array(rss).T
    steady = t > 60  # after the first minute (allocator warm-up)
    slope = float(np.polyfit(t[steady] / 60, m[steady], 1)[0]) if steady.sum() > 10 else None
    e2e = np.array([s['e2e_ms'] for s in st])
    return {'model': model, 'minutes': minutes, 'rate_hz': rate,
            'sent': samples[0][1]['sent'] if samples else None,
            'judged': int(d.get('frames_judged', 0)), 'skipped': int(d.get('frames_skipped', 0)),
            'rss_start_mb': float(m[min(60, len(m) - 1)]), 'rss_end_mb': float(m[-1]),
            'rss_max_mb': float(m.max()), 'rss_slope_mb_per_min': slope,
            'e2e_p50_ms': _pct(e2e, 50), 'e2e_p99_ms': _pct(e2e, 99),
            'rss_series': [(round(a, 1), round(b, 2)) for a, b in rss[::10]], 'exit_code': rc}


def bench_faults(model: str = 'vae_lean', slow_model: str = 'vae_baseline') -> dict:
    """Burst (10x), stall, malformed frames mixed in, and a detector slower than the camera."""
    out = {}
    run = NodeRun(model, ['input_timeout:=0.5'])
    try:
        cam = run.camera('30:5,300:3,30:4,0:3,30:5', bad=0.1)
        d = run.last_diag()
        # the stall is the longest gap between verdicts; the flag must turn unsafe inside it
        # (after input_timeout) and be safe again at the end
        ts = np.array([s['t'] for s in run.status])
        gap = int(np.argmax(np.diff(ts)))
        a, b = ts[gap], ts[gap + 1]
        during = [s for t, s in run.safe if a + 0.5 + 0.3 < t < b]
        out['burst_stall_malformed'] = {
            'sent': cam['sent'], 'malformed_sent': cam['bad'],
            'received': int(d.get('frames_received', 0)), 'judged': int(d.get('frames_judged', 0)),
            'skipped': int(d.get('frames_skipped', 0)),
            'rejected': int(d.get('frames_rejected', 0)),
            'stall_s': round(float(b - a), 2),
            'unsafe_during_stall': bool(during) and not any(during),
            'first_unsafe_after_last_frame_s': next((round(t - a, 3) for t, s in run.safe
                                                    if t > a and not s), None),
            # safe again once frames flow (before the camera's final stop makes the input stale)
            'safe_again_after_stall': any(s for t, s in run.safe if b < t <= ts[-1]),
            'node_alive': run.node.poll() is None}
    finally:
        out.setdefault('burst_stall_malformed', {})['exit_code'] = run.close()
    run = NodeRun(slow_model, ['threads:=1'])
    try:
        cam = run.camera('60:8')   # ~25 ms per frame against a 16.7 ms camera period
        d = run.last_diag()
        e2e = [s['e2e_ms'] for s in run.status]
        half = len(e2e) // 2
        out['slow_detector'] = {
            'model': slow_model, 'rate_hz': 60, 'sent': cam['sent'],
            'judged': int(d.get('frames_judged', 0)), 'skipped': int(d.get('frames_skipped', 0)),
            'deadline_misses': int(d.get('deadline_misses', 0)),
            'e2e_p50_first_half_ms': _pct(e2e[:half], 50),
            'e2e_p50_second_half_ms': _pct(e2e[half:], 50), 'node_alive': run.node.poll() is None}
    finally:
        out.setdefault('slow_detector', {})['exit_code'] = run.close()
    return out


# -- report -----------------------------------------------------------------------------------
def markdown(results: dict, command: str = 'leanood bench all --out benchmarks') -> str:
    m = results['machine']
    lines = ['# leanood_ros benchmarks', '',
             f"Machine: {m['cpu']} ({m['cores']} cores, {m['machine']}), Python {m['python']}, "
             f"onnxruntime {m['onnxruntime']}, providers {', '.join(m['providers'])}; "
             f"{m['date']}.  Regenerate with `{command}`.", '']
    if 'detectors' in results:
        lines += ['## Detectors (one 640x480 frame: resize + preprocessing + inference + score)',
                  '',
                  '| model | threads | provider | input | latency p50 / p99 ms |'
                  ' inference p50 ms |'
                  ' throughput fps | speed-up vs vae_baseline (inference) | graph MB (ratio) |'
                  ' MMACs | peak RSS MB |', '|---|---|---|---|---|---|---|---|---|---|---|']
        for r in results['detectors']:
            lines.append(
                f"| {r['model']} | {r['threads']} | {r['provider']} "
                f"| {r['input'][0]}x{r['input'][1]} "
                f"| {r['latency_p50_ms']:.2f} / {r['latency_p99_ms']:.2f} "
                f"| {r['inference_p50_ms']:.2f}"
                f" | {r['throughput_fps']:.0f} "
                f"| {r.get('speedup_vs_baseline', float('nan')):.1f}x "
                f"({r.get('inference_speedup_vs_baseline', float('nan')):.1f}x) | "
                f"{r['graph_bytes'] / 1e6:.2f} "
                f"({r.get('size_ratio_vs_baseline', float('nan')):.3f})"
                f" | {r['macs'] / 1e6:.1f} | {r['peak_rss_mb']:.0f} |")
    if 'node' in results:
        n = results['node']
        lines += ['', f"## Node over DDS ({n['model']}, {n.get('input', '640x480 rgb8')}, "
                      f"{n['node_cpu']}, Fast DDS "
                      f"profile `{n['fastdds_profile']}`"
                      + (f", the monitor's `{n['monitor_fastdds_profile']}`"
                         if n.get('monitor_fastdds_profile') else '')
                      + (', its reader history applied: `RMW_FASTRTPS_USE_QOS_FROM_XML=1`'
                         if n.get('qos_from_xml') else '') + ')', '',
                  '| camera Hz | sent / lost / judged / skipped | end-to-end p50 / p99 ms |'
                  ' transport p50 |'
                  ' node overhead p50 / p99 | inference p50 | e2e p50 1st / 2nd half |'
                  ' node RSS MB |',
                  '|---|---|---|---|---|---|---|---|']
        for r in n['rows']:
            lines.append(
                f"| {r['rate_hz']} | {r['sent']} / {lost(r)} / {r['judged']} / {r['skipped']} | "
                f"{r['e2e_p50_ms']:.2f} / {r['e2e_p99_ms']:.2f} | {r['transport_p50_ms']:.2f} | "
                f"{r['node_overhead_p50_ms']:.2f} / {r['node_overhead_p99_ms']:.2f} | "
                f"{r['inference_p50_ms']:.2f} | {r['e2e_p50_first_half_ms']:.2f} / "
                f"{r['e2e_p50_second_half_ms']:.2f} | {r['node_rss_mb']:.0f} |")
        top = n['max_sustained_hz']
        lines.append('\nHighest rate judged without skipping (>= 98 % of the frames sent): '
                     f"{f'{top} Hz' if top else 'none of these'}.  "
                     'lost: frames the camera published that never reached the node (dropped '
                     'in transport or overwritten in its depth-1 queue; `frames_lost`, from '
                     'the publication sequence numbers); skipped: frames the node received '
                     'and replaced by a newer one before judging.')
        for label, mem in (('idle', n.get('idle_memory_mb')),
                           (f"after {n['rows'][-1]['rate_hz']} Hz", n['rows'][-1].get(
                               'node_memory_mb')) if n['rows'] else ('', None)):
            if mem:
                lines.append(
                    f"\nNode memory {label}: RSS {mem['rss']:.1f} MB = private "
                    f"{mem['anon']:.1f} + shared libraries {mem['file']:.1f} + DDS shared "
                    f"memory {mem['shmem']:.1f}; unique to the process (USS) {mem['uss']:.1f} "
                    f"MB, its share of shared pages included (PSS) {mem['pss']:.1f} MB.")
    if 'soak' in results:
        s = results['soak']
        lines += ['', f"## Soak ({s['model']}, {s['minutes']} min at {s['rate_hz']} Hz)", '',
                  f"Sent {s['sent']}, judged {s['judged']}, skipped {s['skipped']}; resident "
                  f"memory {s['rss_start_mb']:.1f} MB after 1 min -> "
                  f"{s['rss_end_mb']:.1f} MB at the"
                  f" end (max {s['rss_max_mb']:.1f}); slope after the first minute "
                  f"{s['rss_slope_mb_per_min']:+.3f} MB/min; end-to-end p50/p99 "
                  f"{s['e2e_p50_ms']:.2f}/{s['e2e_p99_ms']:.2f} ms."]
    if 'faults' in results:
        f = results['faults']
        lines += ['', '## Faults', '', '```json', json.dumps(f, indent=1), '```']
    return '\n'.join(lines) + '\n'


def publish(results: dict, text: str, out: Path | None) -> None:
    """Print a benchmark's report and, with `out`, record it (results.json + README.md)."""
    print(text)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / 'results.json').write_text(json.dumps(results, indent=1, default=str))
        (out / 'README.md').write_text(text)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['adapt']:      # the new-camera benchmark has arguments of its own
        from .bench_adapt import main as bench_adapt
        return bench_adapt(argv[1:])
    if argv[:1] == ['big_frames']:
        from .bench_big_frames import main as bench_big_frames
        return bench_big_frames(argv[1:])
    if argv[:1] == ['cameras']:
        from .bench_cameras import main as bench_cameras
        return bench_cameras(argv[1:])
    if argv[:1] == ['input']:
        from .bench_input import main as bench_input
        return bench_input(argv[1:])
    if argv[:1] == ['executors']:
        from .bench_executors import main as bench_executors
        return bench_executors(argv[1:])
    if argv[:1] == ['runtimes']:
        from .bench_runtimes import main as bench_runtimes
        return bench_runtimes(argv[1:])
    if argv[:1] == ['cadence']:
        from .bench_cadence import main as bench_cadence
        return bench_cadence(argv[1:])
    ap = argparse.ArgumentParser(prog='leanood bench', description=__doc__.splitlines()[0])
    ap.add_argument('what', choices=('detectors', 'node', 'soak', 'faults', 'all', 'adapt',
                                     'big_frames', 'input', 'cameras', 'executors',
                                     'runtimes', 'cadence'),
                    help='adapt: the new-camera benchmark (leanood bench adapt --help); '
                         'big_frames: big JPEGs and node memory (leanood bench big_frames -h); '
                         'input: the camera input path against a baseline revision '
                         '(leanood bench input -h); cameras: several cameras in one node '
                         '(leanood bench cameras -h); executors: rclpy executors side by side '
                         '(leanood bench executors -h); runtimes: onnxruntime releases side by '
                         'side (leanood bench runtimes -h); cadence: what the node itself '
                         'costs, back to back and at camera rates (leanood bench cadence -h)')
    ap.add_argument('--models', default=','.join(DEFAULT_MODELS))
    ap.add_argument('--model', default='vae_lean')
    ap.add_argument('--rates', default='30,60,120,240')
    ap.add_argument('--minutes', type=float, default=10.0)
    ap.add_argument('--size', default='640x480', help='node: camera frame size WxH')
    ap.add_argument('--compressed', action='store_true', help='node: JPEG CompressedImage')
    ap.add_argument('--out', type=Path, help='folder for results.json and README.md')
    a = ap.parse_args(argv)
    results = {'machine': machine()}
    if a.out and (a.out / 'results.json').is_file():
        results = {**json.loads((a.out / 'results.json').read_text()), 'machine': machine()}
    if a.what in ('detectors', 'all'):
        results['detectors'] = bench_detectors([m for m in a.models.split(',') if m])
    if a.what in ('node', 'all'):
        results['node'] = bench_node(a.model, tuple(int(r) for r in a.rates.split(',')),
                                     size=tuple(int(x) for x in a.size.lower().split('x')),
                                     compressed=a.compressed)
    if a.what in ('faults', 'all'):
        results['faults'] = bench_faults(a.model)
    if a.what in ('soak', 'all'):
        results['soak'] = bench_soak(a.model, a.minutes)
    text = markdown(results, 'leanood bench ' + ' '.join(argv))
    publish(results, text, a.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
