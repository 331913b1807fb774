"""What BackupAndRestore costs: a fit with it against the same fit without it, in one process.

    python benchmarks/backup_overhead.py [--rounds 5] [--threads 1] [--epochs 3] [--quick]

MAIN  the main job's model and data (`python -m fastbook_core`: digits_cnn on the digits, bs 64, fit_one_cycle),
      a backup at the end of every epoch. Goal: under 2% of the fit's time.
MLP   an overhead-bound MLP 20-32-2 on 16k synthetic samples, bs 64 (250 batches an epoch), a backup every 10
      batches (25 an epoch): what a backup costs when batches take well under a millisecond.

Rounds are interleaved (without, with, without, with...) after a warm-up round that is not counted, so that drifts
in the machine's speed hit both alike. Times are CPU time of this process (`time.process_time`: on a shared machine
wall time swings with the other users, CPU time does not) and wall time; each ratio is with/without, per round, and
the median of the rounds is reported. Wall time includes the fsync of each backup (waiting on the disk is not CPU time).
"""
import argparse, platform, statistics, sys, tempfile, time
from pathlib import Path
import torch
from torch import nn
from torch.utils.data import TensorDataset
import fastbook_core
from fastbook_core.basics import *
import fastbook_core.train  # noqa: F401
from fastbook_core.callbacks.backup import BackupAndRestore


def main_job(backup: bool, epochs: int, folder: Path):
    from fastbook_core.cli import digits_cnn
    from fastbook_core.datasets import digits_data
    set_seed(42)
    learn = Learner(digits_data(bs=64, device='cpu'), digits_cnn(), metrics=[accuracy], path=folder, silent=True)
    cbs = [BackupAndRestore(learn)] if backup else []
    return lambda: learn.fit_one_cycle(epochs, 1e-2, callbacks=cbs)


def mlp_job(backup: bool, epochs: int, folder: Path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20_000, 20, generator=g)
    y = (x[:, 0] > 0).long()
    set_seed(0)
    data = DataBunch.create(TensorDataset(x[:16_000], y[:16_000]), TensorDataset(x[16_000:], y[16_000:]), bs=64,
                            device='cpu')
    learn = Learner(data, nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2)), metrics=[accuracy],
                    path=folder, silent=True)
    cbs = [BackupAndRestore(learn, save_freq=10)] if backup else []
    return lambda: learn.fit(epochs, 1e-3, callbacks=cbs)


def timed(make, backup: bool, epochs: int) -> tuple:
    with tempfile.TemporaryDirectory() as d:
        fit = make(backup, epochs, Path(d))
        c0, w0 = time.process_time(), time.perf_counter()
        fit()
        res = time.process_time() - c0, time.perf_counter() - w0
        assert not (Path(d) / 'backup').exists()  # deleted at the end of the fit, inside the timing
    return res


def bench(name: str, make, rounds: int, epochs: int, extra: str) -> None:
    timed(make, False, 1); timed(make, True, 1)  # warm-up
    rows = []
    for _ in range(rounds):
        (c0, w0), (c1, w1) = timed(make, False, epochs), timed(make, True, epochs)
        rows.append((c0, c1, w0, w1))
    med = lambda i: statistics.median(r[i] for r in rows)
    cpu = [r[1] / r[0] for r in rows]
    wall = [r[3] / r[2] for r in rows]
    print(f"{name:5} {extra}: without {med(0):.2f}s CPU ({med(2):.2f}s wall), with {med(1):.2f}s CPU ({med(3):.2f}s wall)")
    print(f"      with/without, CPU: median {statistics.median(cpu):.4f} (min {min(cpu):.4f}, max {max(cpu):.4f}); "
          f"wall: median {statistics.median(wall):.4f} (min {min(wall):.4f}, max {max(wall):.4f})")
    print(f"      overhead: {100 * (statistics.median(cpu) - 1):+.2f}% CPU, {100 * (statistics.median(wall) - 1):+.2f}% wall")


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--quick', action='store_true', help='2 rounds of 1 epoch: checks that it runs')
    a = p.parse_args()
    if a.quick: a.rounds, a.epochs = 2, 1
    torch.set_num_threads(a.threads)
    print(f"fastbook_core {fastbook_core.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {a.threads} thread(s), {a.rounds} rounds of {a.epochs} epoch(s)")
    bench('MAIN', main_job, a.rounds, a.epochs, 'digits_cnn, fit_one_cycle, a backup every epoch')
    bench('MLP', mlp_job, a.rounds, a.epochs, 'MLP 20-32-2, 250 batches an epoch, a backup every 10 batches')
