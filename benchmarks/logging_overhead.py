"""The cost of the logging callbacks on an overhead-bound fit, against the same fit without them, in one process.

    python benchmarks/logging_overhead.py [--rounds 7] [--epochs 3] [--threads 1] [--quick]

The workload is benchmarks/loop_overhead.py's W1, the one where the loop's own costs show most: an MLP 20-32-2 on
20k synthetic samples (16k train, 4k valid), bs 64, accuracy each epoch, the display off. Each variant is a fit of
`--epochs` epochs with one or all of the logging callbacks, each logging once an epoch:

  CSVLogger                  the table, rewritten to a CSV file each epoch
  LearnerTensorboardWriter   every='epoch', histograms off (hist_iters=0, stats_iters=0): scalars once an epoch
  MLFlowTracker              a local file store (no server); a run per fit, metrics each epoch, the model at the end

Rounds are interleaved (baseline, CSV, TensorBoard, MLflow, all, baseline...) after one warm-up round that is not
counted, so drifts in the machine's speed hit every variant alike. Three measures of each fit, each printed as the
median over the rounds of the ratio to the baseline fit of the same round:

  wall   elapsed time (what a user waits for; the noisiest on a shared machine)
  cpu    the process's CPU time, all threads (time.process_time: much less sensitive to other processes' load,
         blind to time spent waiting on the disk)
  inside the time spent inside the logging callbacks' own methods (elapsed, so disk waits count), as the ratio
         (fit) / (fit - inside): the overhead they add, measured within the same fit, so immune to drifts

and, to tell a fixed cost from a cost that grows with training, the time inside per fit (on_train_begin and
on_train_end: opening files, creating and closing a run, storing the model) in ms, and the time inside the other
events as a share of the epochs' time.

Budget: median `inside` ratio <= 1.05 for each callback, and for all three together. `wall` and `cpu` are printed
beside it and should agree on an idle machine; when the baseline's own fits vary by more than 10% from round to
round, the script says that the machine is too busy for them to mean anything. For information, TensorBoard with
its defaults (the training loss, lr and momentum every 25 batches, gradients every 100, weights every 500) is timed
too; it writes per batch, so the per-epoch budget does not apply to it.
"""
import argparse, os, platform, statistics, sys, tempfile, time, warnings
from pathlib import Path
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loop_overhead import make_data, make_learner, mlp  # noqa: E402

import fastbook_core  # noqa: E402
from fastbook_core.callbacks.csv_logger import CSVLogger  # noqa: E402
from fastbook_core.callbacks.tensorboard import LearnerTensorboardWriter  # noqa: E402
from fastbook_core.callbacks.mlflow import MLFlowTracker  # noqa: E402

BUDGET = 1.05
EVENTS = ('train_begin', 'epoch_begin', 'batch_begin', 'loss_begin', 'backward_begin', 'backward_end', 'step_end',
          'batch_end', 'epoch_end', 'train_end')


def timing(cb, acc: list):
    "Wrap the event methods `cb`'s class defines so that the time spent in them is added to `acc[0]` (`acc[1]`: per fit)."
    for e in EVENTS:
        name = f'on_{e}'
        if name not in {k for c in type(cb).__mro__[:-1] if c.__module__.startswith('fastbook_core.callbacks') for k in vars(c)}:
            continue
        meth = getattr(cb, name)
        def wrapped(*args, _meth=meth, _fixed=e in ('train_begin', 'train_end'), **kwargs):
            t = time.perf_counter()
            try: return _meth(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t
                acc[0] += dt
                if _fixed: acc[1] += dt
        setattr(cb, name, wrapped)
    return cb


def variants(epochs: int, folder: Path) -> dict:
    "name -> a callable running one fit and returning the seconds spent inside the logging callbacks (all, per fit)."
    os.environ.setdefault('MLFLOW_ALLOW_FILE_STORE', 'true')  # MLflow 3 asks for this opt-in to a local folder store
    uri = (folder / 'mlruns').as_uri()
    train_ds, valid_ds = make_data()
    csv = lambda learn: CSVLogger(learn, filename='history')  # in learn.path, the temporary folder
    tb = lambda learn: LearnerTensorboardWriter(learn, folder / 'tb', 'run', every='epoch', hist_iters=0, stats_iters=0)
    tb_default = lambda learn: LearnerTensorboardWriter(learn, folder / 'tb', 'default')
    mlf = lambda learn: MLFlowTracker(learn, 'bench', uri=uri)
    def fit_with(*makers):
        learn = make_learner(mlp, train_ds, valid_ds, 64)
        learn.path = folder
        def run():
            acc = [0., 0.]
            learn.fit(epochs, 1e-3, callbacks=[timing(m(learn), acc) for m in makers])
            return acc
        return run
    return {
        'no logging callback (baseline)': fit_with(),
        'CSVLogger': fit_with(csv),
        'LearnerTensorboardWriter, per epoch': fit_with(tb),
        'MLFlowTracker, local file store': fit_with(mlf),
        'all three': fit_with(csv, tb, mlf),
        'LearnerTensorboardWriter, defaults (per batch; no budget)': fit_with(tb_default),
    }


def measure(f) -> tuple:
    "(wall, cpu, inside, inside per fit) seconds of one call of `f`."
    w, c = time.perf_counter(), time.process_time()
    inside, fixed = f()
    return time.perf_counter() - w, time.process_time() - c, inside, fixed


def compare(fns: dict, rounds: int) -> dict:
    "Time `fns` interleaved; print and return each variant's median ratios to the first."
    for f in fns.values(): f()  # warm-up round, not counted (imports, first event file, first MLflow run)
    res = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items(): res[k].append(measure(f))
    base = list(fns)[0]
    med = lambda xs: statistics.median(xs)
    print(f'{base}: median {med([r[0] for r in res[base]]) * 1e3:.0f} ms wall, '
          f'{med([r[1] for r in res[base]]) * 1e3:.0f} ms cpu per fit')
    print(f'  {"":<58} {"wall":>6} {"cpu":>6} {"inside":>7} {"per fit":>8} {"per epoch":>9}   (min-max of wall)')
    out = {}
    for k in list(fns)[1:]:
        wall = sorted(r[0] / b[0] for r, b in zip(res[k], res[base]))
        cpu = med([r[1] / b[1] for r, b in zip(res[k], res[base])])
        inside = med([r[0] / (r[0] - r[2]) for r in res[k]])
        fixed = med([r[3] for r in res[k]])
        per_epoch = med([(r[2] - r[3]) / (r[0] - r[3]) for r in res[k]])
        out[k] = (med(wall), cpu, inside)
        ok = '' if 'no budget' in k else ('  ok' if inside <= BUDGET else f'  OVER BUDGET {BUDGET:.2f}')
        print(f'  {k:<58} {med(wall):6.3f} {cpu:6.3f} {inside:7.3f} {fixed * 1e3:5.0f} ms {per_epoch:8.1%}   '
              f'({wall[0]:.2f}-{wall[-1]:.2f}){ok}')
    walls = [r[0] for r in res[base]]
    spread = max(walls) / min(walls) - 1
    if spread > 0.10:
        print(f'  note: the baseline fit itself varied by {spread:.0%} from round to round: this machine is too busy '
              'for the wall and cpu ratios to mean anything; trust `inside`.')
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--epochs', type=int, default=3, help='epochs of each fit (a run per fit for MLflow)')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--quick', action='store_true', help='3 rounds of 2-epoch fits, for a smoke test')
    args = p.parse_args()
    rounds, epochs = (3, 2) if args.quick else (args.rounds, args.epochs)
    torch.set_num_threads(args.threads)
    print(f'fastbook_core {fastbook_core.__version__}, torch {torch.__version__}, Python {platform.python_version()}, '
          f'{platform.machine()} {os.cpu_count()} cores, {args.threads} torch thread(s), {rounds} rounds of {epochs}-epoch fits')
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        res = compare(variants(epochs, Path(d)), rounds)
    over = [k for k, r in res.items() if 'no budget' not in k and r[2] > BUDGET]
    print('all within budget' if not over else f'over budget: {", ".join(over)}')
    return 1 if over else 0


if __name__ == '__main__': sys.exit(main())
