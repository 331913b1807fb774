"""Prototype each per-batch saving of issue 29 by monkeypatching, and measure it on W1 in CPU time.

    nice -n 0 python benchmarks/experiments/w1_candidates.py [--rounds 11] [--epochs 3] [--out FILE.json]

Nothing here changes the library: each candidate is a patch applied only while its own fit runs (a context
manager), so the baseline fit, the candidates and the floor loop run interleaved in one process, one torch
thread, after a warm-up round, each round in a rotated order. Printed per candidate: the median over the rounds of its CPU time over the
baseline fit's (the same round), the saving per training batch in µs, and its ratio to the floor.

Each candidate is also checked for exactness before it is timed: a fresh Learner from the same initial weights
and seed is fitted 2 epochs with and without the patch, and the Recorder's values (smoothed losses, lrs, moms,
validation losses, metrics) and the final weights must be bitwise equal.
"""
import argparse, contextlib, json, os, statistics, sys, time
import torch
from torch.utils.data import BatchSampler, RandomSampler

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpu_bench as b  # noqa: E402
from fastbook_core import basic_data, basic_train, callback  # noqa: E402
from fastbook_core.basic_data import DeviceDataLoader  # noqa: E402
from fastbook_core.basic_train import Recorder  # noqa: E402
from fastbook_core.callback import CallbackHandler, OptimWrapper  # noqa: E402


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
_orig_iter = DeviceDataLoader.__iter__

def iter_indexed(self):
    "F1 the batch fetch: a whole-batch TensorDataset loader on the CPU indexes its tensors with one index tensor per epoch."
    dl = self.dl
    if (self.device.type == 'cpu' and not self.on_device and basic_data._whole_batch_tensors(dl)
            and basic_data._tensors_device(dl.dataset) == self.device):
        yield from self._indexed(self.device)
        return
    yield from _orig_iter(self)


def epoch_index_randperm(dl):
    "F2 the index draw of an epoch: a RandomSampler's permutation drawn as torch's sampler draws it, kept as a tensor."
    bsamp = dl.sampler
    s = getattr(bsamp, 'sampler', None)
    if type(bsamp) is not BatchSampler or type(s) is not RandomSampler or s.replacement or s._num_samples is not None:
        return _orig_epoch_index(dl)
    torch.empty((), dtype=torch.int64).random_(generator=dl.generator)  # torch's iterator draws its workers' seed first
    n, g = len(s.data_source), s.generator
    if g is None:  # what RandomSampler.__iter__ does without a generator of its own
        g = torch.Generator(); g.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
    idx = torch.randperm(n, generator=g)
    torch.randperm(n, generator=g)  # when exhausted, torch's sampler draws one more permutation (and keeps 0 items of it)
    bs = bsamp.batch_size
    sizes = [bs] * (n // bs) + ([n % bs] if n % bs and not bsamp.drop_last else [])
    return idx[:sum(sizes)], sizes

_orig_epoch_index = basic_data._epoch_index


def on_backward_begin_scalar(self, loss):
    "S1 the smoothed loss: `torch.scalar_tensor` instead of `torch.tensor` for the CPU's Python float (same float32)."
    val = loss.detach()
    if val.is_cpu:
        self.smoothener.add_value(val.item())
        smooth = torch.scalar_tensor(self.smoothener.smooth)
    else: self.smoothener.add_value(val.float()); smooth = self.smoothener.smooth
    sd = self.state_dict
    sd['last_loss'], sd['smooth_loss'] = loss, smooth
    if self._dispatch['backward_begin'][1]: self('backward_begin', call_mets=False)
    return sd['last_loss'], sd['skip_bwd']


def on_loss_begin_lean(self, out):
    "D1 event dispatch: the handler's per-batch event methods skip `self(event)` when no callback defines the event."
    self.state_dict['last_output'] = out
    if self._dispatch['loss_begin'][1]: self('loss_begin', call_mets=False)
    return self.state_dict['last_output']

def on_backward_end_lean(self) -> bool:
    if self._dispatch['backward_end'][1]: self('backward_end', call_mets=False)
    return self.state_dict['skip_step']

def on_step_end_lean(self) -> bool:
    if self._dispatch['step_end'][1]: self('step_end', call_mets=False)
    return self.state_dict['skip_zero']


def call_inline(self, event: str, call_mets: bool = True, **kwargs):
    "D2 `__call__` without a method call per callback: `_call_and_update` inlined (same errors and notes)."
    with_mets, cbs_only = self._dispatch[event]
    sd = self.state_dict
    for cb, meth in (with_mets if call_mets else cbs_only):
        try: new = meth(**sd, **kwargs) if kwargs else meth(**sd)
        except Exception as e:
            callback.add_note(e, f"(raised in {cb.__class__.__name__} when calling on_{event})")
            raise
        if new:
            for k, v in new.items():
                if k not in sd: raise Exception(f"{k} isn't a valid key in the state of the callbacks (returned by "
                                                f"{cb.__class__.__name__}.on_{event}).")
                sd[k] = v


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


def step_no_wd(self):
    "H2 OptimWrapper.step: no `torch.no_grad()` block and loop over groups when no layer group has weight decay."
    if self.true_wd and any(lr * wd for lr, wd in zip(self._lr, self._wd)):
        with torch.no_grad():
            groups = self.opt.param_groups
            for lr, wd, pg1, pg2 in zip(self._lr, self._wd, groups[::2], groups[1::2]):
                if not (lr * wd): continue
                for pg in ((pg1, pg2) if self.bn_wd else (pg1,)):
                    ps = [p for p in pg['params'] if p.grad is not None]
                    if ps: torch._foreach_mul_(ps, 1 - lr * wd)
    self.opt.step()


def foreach_groups(learn):
    "A1 Adam's step over both parameter groups of a layer group with foreach kernels (one C++ loop per group)."
    for pg in learn.opt.opt.param_groups: pg['foreach'] = True


CANDIDATES = {
    # name: (description, patches while fitting, change to the Learner once)
    'F1 fetch': ('whole-batch fetch on the CPU by index_select with one index tensor per epoch (DeviceDataLoader.__iter__)',
                 [(DeviceDataLoader, '__iter__', iter_indexed)], None),
    'F2 epoch index': ('with F1: the epoch\'s permutation kept as a tensor, not a list of ints (basic_data._epoch_index)',
                       [(DeviceDataLoader, '__iter__', iter_indexed), (basic_data, '_epoch_index', epoch_index_randperm)],
                       None),
    'S1 smooth': ('smoothed loss as torch.scalar_tensor (CallbackHandler.on_backward_begin)',
                  [(CallbackHandler, 'on_backward_begin', on_backward_begin_scalar)], None),
    'D1 empty events': ('skip self(event) when no callback defines loss_begin/backward_end/step_end',
                        [(CallbackHandler, 'on_loss_begin', on_loss_begin_lean),
                         (CallbackHandler, 'on_backward_end', on_backward_end_lean),
                         (CallbackHandler, 'on_step_end', on_step_end_lean)], None),
    'D2 inline call': ('CallbackHandler.__call__ with _call_and_update inlined',
                       [(CallbackHandler, '__call__', call_inline)], None),
    'R1 recorder': ('Recorder.on_batch_begin reads opt._lr[-1], opt._mom[-1]',
                    [(Recorder, 'on_batch_begin', rec_on_batch_begin)], None),
    'H2 step, no wd': ('OptimWrapper.step skips the true-wd block when every lr * wd is 0',
                       [(OptimWrapper, 'step', step_no_wd)], None),
    'P1 progress': ('fit and validate iterate the loader directly under a silent MasterBar (basic_train.progress_bar)',
                    [(basic_train, 'progress_bar', progress_direct)], None),
    'A1 adam foreach': ("the optimizer's groups with foreach=True (not in the issue's list: the two-group cost)",
                        [], foreach_groups),
}
REFERENCES = {'floor, 2 groups': "the floor with Adam's parameters split as OptimWrapper splits them (weights; biases)",
              'baseline fit': 'fit as it is today'}
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
                       'load_average': list(os.getloadavg()), 'candidates': {**REFERENCES, **{k: v[0] for k, v in variants.items()}},
                       'times': times, 'summary': summary}, f, indent=1)


if __name__ == '__main__': main()
