"""Prototype each per-batch saving of issue 29 by monkeypatching, and measure it on W1 in CPU time.

    nice -n 0 python benchmarks/experiments/w1_candidates.py [--rounds 11] [--epochs 3] [--out FILE.json]

The candidates already merged into the library (F1, F2, S1, D1, D2, H2: see MERGED) are part of the baseline fit
and no longer prototyped. Nothing here changes the library: each candidate is a patch applied only while its own fit runs (a context
manager), so the baseline fit, the candidates and the floor loop run interleaved in one process, one torch
thread, after a warm-up round, each round in a rotated order. Printed per candidate: the median over the rounds of its CPU time over the
baseline fit's (the same round), the saving per training batch in µs, and its ratio to the floor.

Each candidate is also checked for exactness before it is timed: a fresh Learner from the same initial weights
and seed is fitted 2 epochs with and without the patch, and the Recorder's values (smoothed losses, lrs, moms,
validation losses, metrics) and the final weights must be bitwise equal.
"""
import argparse, contextlib, json, os, statistics, sys, time
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpu_bench as b  # noqa: E402
from fastbook_core import basic_train, callback  # noqa: E402
from fastbook_core.basic_train import Recorder  # noqa: E402


@contextlib.contextmanager
def patched(*triples):
    "Set each `(obj, name, value)` while the block runs, then put the originals back."
    olds = [(o, n, o.__dict__[n]) for o, n, _ in triples]
    try:
        for o, n, v in triples: setattr(o, n, v)
        yield
    finally:
        for o, n, v in olds: setattr(o, n, v)


# ------------------------------------------------------------------------------------------------ the candidates
# Merged into the library since the 2026-12-01 run (benchmarks/results/w1_candidates_2026-12-01.json timed them as
# patches): the baseline fit below includes them, so they are no longer prototyped here (their patches would compare
# the library with itself). Listed in MERGED, printed with the results.
MERGED = {
    'F1 fetch': 'nbs/02_basic_data.ipynb (DeviceDataLoader.__iter__ -> _indexed), commit 91bab8f',
    'F2 epoch index': 'nbs/02_basic_data.ipynb (_epoch_index -> _random_order), commit 91bab8f',
    'S1 smooth': 'nbs/03_callback.ipynb (CallbackHandler.on_backward_begin: torch.scalar_tensor), branch s5-perf',
    'D1 empty events': 'nbs/03_callback.ipynb (loss_begin/backward_end/step_end/batch_end not called when empty), branch s5-perf',
    'D2 inline call': 'nbs/03_callback.ipynb (CallbackHandler.__call__ without _call_and_update), branch s5-perf',
    'H2 step, no wd': 'nbs/03_callback.ipynb (OptimWrapper.step skips the true-wd block when every lr * wd is 0), branch s5-perf',
}


def rec_on_batch_begin(self, train: bool, **kwargs):
    "R1 the Recorder's appends: read the wrapper's lists directly instead of through the `lr`/`mom` properties."
    if train:
        opt = self.opt
        self.lrs.append(opt._lr[-1])
        self.moms.append(opt._mom[-1])


def lr_setter_skip(self, val):
    "H1 OptimWrapper.lr: no write to the parameter groups when the values are those already set."
    new = basic_train.listify(val, self._lr)
    if new == self._lr and all(isinstance(v, float) for v in new): return
    self._lr = self.set_val('lr', new)


def progress_direct(gen, parent=None, total=None, label='', silent=False, leave=True):
    "P1 progress bookkeeping: under a silent MasterBar, the loop iterates the loader itself (no ProgressBar object)."
    if silent or (parent is not None and type(getattr(parent, 'view', None)).__name__ == 'NullView'): return gen
    return _orig_progress_bar(gen, parent=parent, total=total, label=label, silent=silent, leave=leave)

_orig_progress_bar = basic_train.progress_bar


def foreach_groups(learn):
    "A1 Adam's step over both parameter groups of a layer group with foreach kernels (one C++ loop per group)."
    for pg in learn.opt.opt.param_groups: pg['foreach'] = True


CANDIDATES = {
    # name: (description, patches while fitting, change to the Learner once)
    'R1 recorder': ('Recorder.on_batch_begin reads opt._lr[-1], opt._mom[-1]',
                    [(Recorder, 'on_batch_begin', rec_on_batch_begin)], None),
    'P1 progress': ('fit and validate iterate the loader directly under a silent MasterBar (basic_train.progress_bar)',
                    [(basic_train, 'progress_bar', progress_direct)], None),
    'A1 adam foreach': ("the optimizer's groups with foreach=True (not in the issue's list: the two-group cost)",
                        [], foreach_groups),
}
REFERENCES = {'floor, 2 groups': "the floor with Adam's parameters split as OptimWrapper splits them (weights; biases)",
              'baseline fit': 'fit as it is today (with every MERGED change)'}
ALL_CODE = [k for k in CANDIDATES if not k.startswith('A1')]


def combined(names):
    patches = [p for n in names for p in CANDIDATES[n][1]]
    setups = [CANDIDATES[n][2] for n in names if CANDIDATES[n][2]]
    return patches, setups


# ------------------------------------------------------------------------------------------------ exactness
def record(learn) -> dict:
    r = learn.recorder
    fl = basic_train.to_floats
    return {'losses': fl(r.losses), 'lrs': fl(r.lrs), 'moms': fl(r.moms), 'val_losses': fl(r.val_losses),
            'metrics': [fl(m) for m in r.metrics], 'rows': [row[:-1] for row in r.rows],
            'weights': [p.detach().clone() for p in learn.model.parameters()]}


def run_exact(patches, setups, epochs=2) -> dict:
    (train, valid) = b.make_data()
    learn = b.make_learner(b.same_model(b.mlp)(), train, valid, 64)
    learn.create_opt(1e-3, 0.)
    for s in setups: s(learn)
    torch.manual_seed(0)
    with patched(*patches): learn.fit(epochs, 1e-3)
    return record(learn)


def _init_beta(self, beta=0.98):
    "SmoothenValue with beta 0.9 whatever it is given: the control, which changes the smoothed losses."
    self.beta, self.n, self.mov_avg = 0.9, 0, 0.


def same(a: dict, b_: dict) -> bool:
    if any(a[k] != b_[k] for k in a if k != 'weights'): return False
    return all(torch.equal(x, y) for x, y in zip(a['weights'], b_['weights']))


# ------------------------------------------------------------------------------------------------ timing
def floor_ratios(times: dict, name: str) -> list:
    return [c / f for c, f in zip(times[name]['cpu_s'], times['floor']['cpu_s'])]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=11)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--out', help='write the raw times and the summary to this JSON file')
    p.add_argument('--check-only', action='store_true', help='the exactness checks (and their control) only, no timing')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    variants = dict(CANDIDATES)
    variants['all code changes'] = ('every candidate but A1', *combined(ALL_CODE))
    variants['all + A1'] = ('every candidate', *combined(list(CANDIDATES)))

    base = run_exact([], [])
    # a control: a change that does alter the values (the smoothing's beta) must be caught by the check
    control = same(base, run_exact([(callback.SmoothenValue, '__init__', _init_beta)], []))
    print(f'exact: control (beta 0.9, must be False) {control}', flush=True)
    for name, where in MERGED.items(): print(f'merged (in the baseline, not timed): {name:<16} {where}', flush=True)
    if control: raise SystemExit('the exactness check does not see a change of the smoothed losses: it proves nothing')
    exact = {}
    for name, (_, patches, setup) in variants.items():
        setups = setup if isinstance(setup, list) else [setup] if setup else []
        exact[name] = same(base, run_exact(patches, setups))
        print(f'exact: {name:<20} {exact[name]}', flush=True)
    if args.check_only: return

    train, valid = b.make_data()
    make = b.same_model(b.mlp)
    fm = make(); fo = b.adam(fm.parameters())
    fns = {'floor': lambda: b.floor_epochs(fm, fo, train, valid, 64, args.epochs)}
    def fit_with(patches, setups):
        learn = b.make_learner(make(), train, valid, 64)
        learn.create_opt(1e-3, 0.)
        for s in setups: s(learn)
        def run():
            with patched(*patches): learn.fit(args.epochs, 1e-3)
        return run
    fm2 = make()  # the floor with the optimizer split as OptimWrapper splits it: the cost of two groups
    fo2 = b.adam([{'params': [m.weight for m in fm2 if hasattr(m, 'weight')]},
                  {'params': [m.bias for m in fm2 if hasattr(m, 'bias')]}])
    fns['floor, 2 groups'] = lambda: b.floor_epochs(fm2, fo2, train, valid, 64, args.epochs)
    fns['baseline fit'] = fit_with([], [])
    for name, (_, patches, setup) in variants.items():
        fns[name] = fit_with(patches, setup if isinstance(setup, list) else [setup] if setup else [])
    times = b.interleaved(fns, args.rounds)
    n_batches = args.epochs * (len(train[0]) // 64)
    bt = times['baseline fit']['cpu_s']
    print(f"\nW1, {args.epochs} epochs ({n_batches} training batches), {args.rounds} rounds, CPU time; "
          f"floor median {statistics.median(times['floor']['cpu_s']) * 1e3:.0f} ms, baseline fit "
          f"{statistics.median(bt) * 1e3:.0f} ms = {statistics.median(floor_ratios(times, 'baseline fit')):.3f}x floor")
    print(f"  {'candidate':<20} {'exact':>5} {'vs baseline':>12} {'saved µs/batch':>15} {'vs floor':>9}")
    summary = {}
    for name in ['floor, 2 groups', 'baseline fit'] + list(variants):
        vs_base = statistics.median([c / o for c, o in zip(times[name]['cpu_s'], bt)])
        saved = statistics.median([(o - c) / n_batches * 1e6 for c, o in zip(times[name]['cpu_s'], bt)])
        vs_floor = statistics.median(floor_ratios(times, name))
        summary[name] = {'exact': exact.get(name), 'vs_baseline': vs_base, 'saved_us_per_batch': saved,
                         'vs_floor': vs_floor}
        print(f"  {name:<20} {str(exact.get(name, '-')):>5} {vs_base:12.3f} {saved:15.1f} {vs_floor:9.3f}")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'machine': b.machine(), 'rounds': args.rounds, 'epochs': args.epochs, 'n_batches': n_batches,
                       'load_average': list(os.getloadavg()), 'merged': MERGED, 'candidates': {**REFERENCES, **{k: v[0] for k, v in variants.items()}},
                       'times': times, 'summary': summary}, f, indent=1)


if __name__ == '__main__': main()
