"""Round trips, property-based (issue 26): for random valid set-ups, what fastbook_core writes it reads back.

A set-up is what a user passes: the Learner's arguments in every type they accept (path and model_dir as str or
Path, wd and lrs as Python or numpy numbers, lists, tuples, arrays and slices of lrs), one or two layer groups
(`split`), metrics, and callbacks with state (early stopping, save-best, lr reduction on plateau; two of one class
among them; passed to `fit`, kept in `learn.callbacks` or made by `learn.callback_fns`) in a plain fit or a
one-cycle fit. For each:

- `save` then `load(with_opt=True)` into a new Learner restores every state exactly: the weights, the optimizer's
  state and hyper-parameters, the Recorder's history, the callbacks' states, the random generators;
- a fit interrupted after some epochs and resumed from its checkpoint ends as the uninterrupted fit does;
- `export` then `load_learner` gives the same predictions;
- a set-up that cannot round-trip is refused at save or export time, before anything changes (the files and the
  Learner as they were).

Each example is tiny (4 batches of 16 items, a 2-layer MLP, at most 3 epochs) and the examples are derandomized,
so that the file runs in well under a minute and fails the same way every time.
"""
import contextlib, io, random, tempfile
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from torch import nn

from fastbook_core.basic_train import Learner, load_learner
from fastbook_core.callback import Callback
from fastbook_core.callbacks.tracker import (EarlyStoppingCallback, ReduceLROnPlateauCallback, SaveModelCallback,
                                             TerminateOnNaNCallback, TrackEpochCallback)
from fastbook_core.metrics import accuracy, error_rate
from fastbook_core.test_utils import synth_classif_data
from fastbook_core.torch_core import CheckpointError, set_seed
import fastbook_core.train  # noqa: F401  (fit_one_cycle)

pytestmark = pytest.mark.filterwarnings('ignore::UserWarning')

# no shrinking: a failing example is reported as drawn (it is small already), so a failure costs no more time than a pass
SETTINGS = dict(deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- set-ups ------------------------------------------------------------------------------------------------
NUMBER_TYPES = (float, np.float32, np.float64)

def number(values, types=NUMBER_TYPES):
    "A value of `values` as one of `types` (a Python or a numpy number)."
    return st.builds(lambda v, t: t(v), st.sampled_from(values), st.sampled_from(types))

@st.composite
def lrs(draw, n_groups: int):
    "A learning rate in every form `fit` takes: a number, a list, tuple or array of one per group, a slice."
    one = number([1e-3, 5e-3, 1e-2])
    form = draw(st.sampled_from(['number', 'list', 'tuple', 'array', 'slice_stop', 'slice']))
    if form == 'number': return draw(one)
    if form in ('list', 'tuple', 'array'):
        vals = [draw(one) for _ in range(n_groups)]
        return {'list': list, 'tuple': tuple, 'array': np.array}[form](vals)
    if form == 'slice_stop': return slice(draw(one))
    return slice(draw(number([1e-4, 5e-4])), draw(one))

@st.composite
def wds(draw, n_groups: int):
    "A weight decay: a number (int, float, numpy), or a list or tuple of one per group."
    one = st.one_of(number([0.0, 1e-2, 1e-1]), st.sampled_from([0, np.int64(0)]))
    form = draw(st.sampled_from(['number', 'list', 'tuple']))
    if form == 'number': return draw(one)
    vals = [draw(one) for _ in range(n_groups)]
    return vals if form == 'list' else tuple(vals)

# a callback spec is (class, kwargs); monitors on metrics need those metrics
TRACKERS = {
    'early': lambda m: (EarlyStoppingCallback, dict(monitor=m, patience=1, min_delta=0.01)),
    'plateau': lambda m: (ReduceLROnPlateauCallback, dict(monitor=m, patience=0, factor=0.5, min_lr=0.)),
    'best': lambda m: (SaveModelCallback, dict(monitor=m, name=f'best_{m}')),
}

@st.composite
def callback_specs(draw, metric_names):
    "Callbacks with state, each class at most twice, the two of one class telling themselves apart by what they watch."
    monitors = ['valid_loss', *metric_names]
    specs = []
    for kind in draw(st.lists(st.sampled_from(sorted(TRACKERS)), max_size=3, unique=True)):
        watched = draw(st.lists(st.sampled_from(monitors), min_size=1, max_size=2, unique=True))
        specs += [TRACKERS[kind](m) for m in watched]
    return draw(st.permutations(specs))

@st.composite
def setups(draw):
    n_groups = draw(st.sampled_from([1, 2]))
    metrics = draw(st.sampled_from([[], [accuracy], [accuracy, error_rate]]))
    names = [m.__name__ for m in metrics]
    return dict(
        n_groups=n_groups, metrics=metrics,
        path_type=draw(st.sampled_from([str, Path])),
        model_dir=draw(st.sampled_from(['models', Path('models'), 'ck/sub', Path('ck') / 'sub'])),
        wd=draw(wds(n_groups)), lr=draw(lrs(n_groups)),
        true_wd=draw(st.booleans()), bn_wd=draw(st.booleans()), train_bn=draw(st.booleans()),
        callbacks=draw(callback_specs(names)),
        where=draw(st.sampled_from(['fit', 'learner', 'fns'])),  # fit(callbacks=), learn.callbacks, learn.callback_fns
        schedule=draw(st.sampled_from(['fit', 'one_cycle'])),
        epochs=draw(st.sampled_from([2, 3])),
    )

def make(setup: dict, root: Path, seed: int = 0) -> Learner:
    "The Learner of `setup` in `root` (a str or a Path, as drawn); `seed` sets its initial weights."
    set_seed(0)
    data = synth_classif_data(n_train=64, n_valid=32, bs=16)
    data.classes = ['a', 'b', 'c']
    set_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    learn = Learner(data, model, path=setup['path_type'](root), model_dir=setup['model_dir'], metrics=setup['metrics'],
                    wd=setup['wd'] if setup['n_groups'] == 1 or not isinstance(setup['wd'], (list, tuple)) else 0.,
                    true_wd=setup['true_wd'], bn_wd=setup['bn_wd'], train_bn=setup['train_bn'], silent=True)
    if setup['n_groups'] == 2:
        learn.split(lambda m: [m[3]])
        learn.wd = setup['wd']  # one per layer group, once there are two
    return learn

def callbacks(setup: dict, learn: Learner, checkpoints: bool = True, reverse: bool = False) -> tuple:
    "The callbacks of a fit: (what to pass to `fit`, the trackers made now, or None when `callback_fns` makes them)."
    specs = setup['callbacks'][::-1] if reverse else setup['callbacks']
    where = setup.get('where', 'fit')
    if where == 'fns':
        learn.callback_fns += [partial(cls, **kw) for cls, kw in specs]
        trackers, cbs = None, []
    else:
        trackers = [cls(learn, **kw) for cls, kw in specs]
        if where == 'learner': learn.callbacks += trackers
        cbs = trackers if where == 'fit' else []
    if checkpoints: cbs = cbs + [SaveModelCallback(learn, every='epoch', name='ck')]  # what a resume starts from
    return cbs, trackers

def run(setup: dict, learn: Learner, epochs: int, cbs: list, start_epoch: int | None = None, tot_epochs=None):
    "The fit of `setup`: plain or one-cycle; resumed at `start_epoch` the way the docs say."
    with contextlib.redirect_stdout(io.StringIO()):  # the trackers' messages
        if setup['schedule'] == 'one_cycle':
            learn.fit_one_cycle(epochs, setup['lr'], callbacks=cbs, start_epoch=start_epoch, tot_epochs=tot_epochs)
        else:
            if start_epoch: cbs = cbs + [TrackEpochCallback(learn, epoch_offset=start_epoch)]
            learn.fit(epochs, setup['lr'], callbacks=cbs)

# --- what must come back ------------------------------------------------------------------------------------
def weights(learn): return {k: v.detach().clone() for k, v in learn.model.state_dict().items()}

def weight_problems(a: dict, b: dict) -> list:
    if a.keys() != b.keys(): return [f'weights: other keys {sorted(a)} / {sorted(b)}']
    bad = [k for k in a if not torch.equal(a[k], b[k])]
    return [f'weights differ: {", ".join(bad)}'] if bad else []

def assert_same_weights(a: dict, b: dict):
    problems = weight_problems(a, b)
    assert not problems, problems

def opt_snapshot(learn):
    "The optimizer's state (moments, steps) and its hyper-parameters, per parameter group."
    if learn.opt is None: return None
    sd = learn.opt.state_dict()
    state = {k: {n: t.clone() if torch.is_tensor(t) else t for n, t in s.items()} for k, s in sd['state'].items()}
    groups = [{n: (tuple(v) if isinstance(v, (list, tuple)) else v) for n, v in g.items() if n != 'params'}
              for g in sd['param_groups']]
    return state, groups

def opt_problems(a, b) -> list:
    "What differs between two `opt_snapshot`s: the state (moments, steps), then the hyper-parameters of each group."
    if (a is None) != (b is None): return [f'optimizer: {a is None and "none" or "one"} / {b is None and "none" or "one"}']
    if a is None: return []
    (sa, ga), (sb, gb) = a, b
    if sa.keys() != sb.keys(): return [f'optimizer state of other parameters: {sorted(sa)} / {sorted(sb)}']
    res = [f'optimizer state {k}.{n} differs' for k in sa for n in set(sa[k]) | set(sb[k])
           if not (n in sa[k] and n in sb[k] and (torch.equal(sa[k][n], sb[k][n]) if torch.is_tensor(sa[k][n])
                                                   else sa[k][n] == sb[k][n]))]
    for i, (x, y) in enumerate(zip(ga, gb)):
        diff = {n: (x.get(n), y.get(n)) for n in set(x) | set(y) if x.get(n) != y.get(n)}
        if diff: res.append(f'optimizer hyper-parameters of group {i} (got, expected): {diff}')
    return res

def assert_same_opt(a, b):
    problems = opt_problems(a, b)
    assert not problems, problems

def rng_draws():
    return torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)]

class ReadStates(Callback):
    "The callbacks' states once a resumed fit has given them back (after every other on_train_begin)."
    _order = 10 ** 9 + 1
    def __init__(self, cbs): self.cbs, self.states = cbs, None
    def on_train_begin(self, **kwargs): self.states = [cb.checkpoint_state() for cb in self.cbs]

def same_label(a, b) -> bool:
    "The same class: equal, of the same type (a numpy scalar counts as the Python value it holds)."
    py = lambda v: v.item() if isinstance(v, np.generic) else v
    return py(a) == py(b) and type(py(a)) is type(py(b))

def files_under(path) -> dict:
    return {p: p.read_bytes() for p in sorted(Path(path).rglob('*')) if p.is_file()}


# --- save, then load(with_opt=True) into a new Learner --------------------------------------------------------
@settings(max_examples=12, **SETTINGS)
@given(setups())
def test_save_then_load_restores_every_state(setup):
    with tempfile.TemporaryDirectory() as root:
        learn = make(setup, root)
        cbs, trackers = callbacks(setup, learn, checkpoints=False)
        n1 = setup['epochs'] - 1
        run(setup, learn, n1, cbs, tot_epochs=setup['epochs'])
        expected = dict(weights=weights(learn), opt=opt_snapshot(learn), history=learn.recorder.checkpoint_state(),
                        states=None if trackers is None else [cb.checkpoint_state() for cb in trackers])
        learn.save('stage')
        draws = rng_draws()

        again = make(setup, root, seed=1)
        again.load('stage', with_opt=True)
        got = rng_draws()
        problems = [] if (torch.equal(got[0], draws[0]) and np.array_equal(got[1], draws[1]) and got[2] == draws[2]) \
                   else ['random generators not restored']
        problems += weight_problems(weights(again), expected['weights'])
        problems += opt_problems(opt_snapshot(again), expected['opt'])
        history = again.recorder.checkpoint_state()
        problems += [f'Recorder.{k} not restored' for k in expected['history'] if history.get(k) != expected['history'][k]]
        # the callbacks' states go to the callbacks of the next fit, matched by what they are, whatever their order
        new, new_trackers = callbacks(setup, again, checkpoints=False, reverse=True)
        probe = ReadStates(new_trackers or [])
        try: run(setup, again, setup['epochs'], new + [probe], start_epoch=learn.recorder.epoch)
        except Exception as e: problems.append(f'the resumed fit failed: {type(e).__name__}: {e}')
        else:
            for cb, got, saved in zip(new_trackers or [], probe.states, (expected['states'] or [])[::-1]):
                # `run` marks the files of one SaveModelCallback's run; a completed fit's next fit is a new run
                got, saved = ({k: v for k, v in d.items() if k != 'run'} for d in (got, saved))
                if got != saved: problems.append(f'{type(cb).__name__}(monitor={cb.monitor!r}) got {got}, saved {saved}')
        assert not problems, problems


# --- an interrupted fit, resumed, ends as the uninterrupted one -----------------------------------------------
class PowerCutError(Exception): "The machine went down: the fit stops where it is."

class PowerCut(Callback):
    def __init__(self, at: int): self.at = at
    def on_epoch_begin(self, epoch, **kwargs):
        if epoch == self.at: raise PowerCutError(f'power cut at epoch {epoch}')

@settings(max_examples=12, **SETTINGS)
@given(setups(), st.data())
def test_a_resumed_fit_ends_as_the_uninterrupted_one(setup, data):
    cut = data.draw(st.integers(1, setup['epochs'] - 1), label='cut')
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        whole = make(setup, a)
        whole_cbs, whole_trackers = callbacks(setup, whole)
        run(setup, whole, setup['epochs'], whole_cbs)

        part = make(setup, b)
        interrupted = True
        try: run(setup, part, setup['epochs'], callbacks(setup, part)[0] + [PowerCut(cut)])
        except PowerCutError: pass
        else: interrupted = False  # it stopped early before the cut, and so did the whole fit
        if not interrupted:
            assert_same_weights(weights(part), weights(whole))
            return

        resumed = make(setup, b, seed=1)
        resumed.load(f'ck_{cut - 1}', with_opt=True)
        reverse = data.draw(st.booleans(), label='trackers in the other order on resume')  # states follow their callback
        resumed_cbs, resumed_trackers = callbacks(setup, resumed, reverse=reverse)
        run(setup, resumed, setup['epochs'], resumed_cbs, start_epoch=cut)
        problems = []
        # the resumed fit goes on with the loaded history of the epochs before `cut` (review 5.26 #1)
        if resumed.recorder.val_losses != whole.recorder.val_losses:
            problems.append(f'valid losses {resumed.recorder.val_losses} / {whole.recorder.val_losses}')
        if resumed.recorder.lrs != whole.recorder.lrs: problems.append('other lrs')
        pairs = [] if whole_trackers is None else zip(resumed_trackers[::-1] if reverse else resumed_trackers, whole_trackers)
        for x, y in pairs:
            if isinstance(x, SaveModelCallback): continue  # its `run` is a random mark
            if x.checkpoint_state() != y.checkpoint_state():
                problems.append(f'{type(x).__name__}: {x.checkpoint_state()} / {y.checkpoint_state()}')
        problems += weight_problems(weights(resumed), weights(whole))
        problems += opt_problems(opt_snapshot(resumed), opt_snapshot(whole))
        assert not problems, problems


# --- export, then load_learner -------------------------------------------------------------------------------
@st.composite
def export_setups(draw):
    setup = draw(setups())
    setup['classes'] = draw(st.sampled_from([['a', 'b', 'c'], [0, 1, 2], [10, 20, 30], None]))
    setup['callback_fns'] = draw(st.sampled_from([
        [], [partial(EarlyStoppingCallback, patience=2)], [partial(EarlyStoppingCallback, patience=np.int64(2))],
        [partial(ReduceLROnPlateauCallback, factor=np.float32(0.5))],
        [partial(EarlyStoppingCallback, monitor='valid_loss', patience=3)]]))  # a str argument, as v1's code has
    setup['learner_callbacks'] = draw(st.booleans())  # a TerminateOnNaNCallback in learn.callbacks
    setup['model_dir'] = draw(st.sampled_from([setup['model_dir'], 'ABSOLUTE', '../outside']))
    setup['destroy'] = draw(st.booleans())
    return setup

@settings(max_examples=20, **SETTINGS)
@given(export_setups())
def test_export_then_load_learner_predicts_the_same_or_export_refuses_first(setup):
    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as elsewhere:
        if setup['model_dir'] == 'ABSOLUTE': setup = {**setup, 'model_dir': Path(elsewhere)}
        fn_classes = {f.func for f in setup['callback_fns']}  # one tracker per class and monitor: keys that tell them apart
        setup = {**setup, 'callbacks': [(c, kw) for c, kw in setup['callbacks'] if c not in fn_classes]}
        learn = make(setup, root)
        learn.data.classes = setup['classes']
        learn.callback_fns += setup['callback_fns']
        if setup['learner_callbacks']: learn.callbacks.append(TerminateOnNaNCallback())
        run(setup, learn, 1, callbacks(setup, learn, checkpoints=False)[0])
        path, x = Path(learn.path), learn.data.valid_ds.tensors[0][:6]
        preds = [learn.predict(o) for o in x]
        cb_types = [type(cb) for cb in learn.callbacks]
        hypers = dict(wd=np.asarray(learn.wd, dtype=float).tolist(), true_wd=learn.true_wd, bn_wd=learn.bn_wd,
                      train_bn=learn.train_bn)
        before, w = files_under(root), weights(learn)
        try: learn.export(destroy=setup['destroy'])
        except (TypeError, ValueError, CheckpointError) as e:  # refused: then before anything changed
            assert isinstance(learn, Learner), f'destroyed, and the export was refused: {e}'
            assert_same_weights(weights(learn), w)
            assert files_under(root) == before
            return
        inf = load_learner(path)  # written: then it must load, without trust_code
        assert inf.data.classes == setup['classes']
        outside = Path(setup['model_dir']).is_absolute() or '..' in Path(setup['model_dir']).parts
        assert Path(inf.model_dir) == Path('models' if outside else setup['model_dir'])  # one outside: left out, warned
        for o, p in zip(x, preds):
            q = inf.predict(o)
            assert same_label(q[0], p[0]), (q[0], p[0])
            torch.testing.assert_close(q[2], p[2])
        assert dict(wd=np.asarray(inf.wd, dtype=float).tolist(), true_wd=inf.true_wd, bn_wd=inf.bn_wd,
                    train_bn=inf.train_bn) == hypers
        assert [type(cb) for cb in inf.callbacks] == cb_types


# --- what cannot round-trip is refused before anything changes -----------------------------------------------
class _Saves(Callback):
    "Stands for a callback that writes checkpoints during the fit: the key check then comes before the first batch."
    saves_checkpoints = True

@settings(max_examples=8, **SETTINGS)
@given(st.sampled_from(sorted(TRACKERS)), st.sampled_from(['valid_loss', 'accuracy']), st.booleans())
def test_two_callbacks_that_cannot_be_told_apart_are_refused_when_the_fit_begins(kind, monitor, existing):
    "Refused before the first batch (a tracker's state is empty until its first epoch, so a save would refuse them an epoch late)."
    setup = dict(n_groups=1, metrics=[accuracy], path_type=Path, model_dir='models', wd=0.01, lr=1e-2, true_wd=True,
                 bn_wd=True, train_bn=True, callbacks=[TRACKERS[kind](monitor)] * 2, schedule='fit', epochs=1, where='fit')
    with tempfile.TemporaryDirectory() as root:
        learn = make(setup, root)
        if existing:  # a Learner that trained and saved a stage before
            run(setup, learn, 1, [])
            learn.save('stage')
        cbs, _ = callbacks(setup, learn, checkpoints=False)
        cls = type(cbs[0])
        before, w, opt = files_under(root), weights(learn), opt_snapshot(learn)
        n_losses = len(learn.recorder.losses) if existing else None
        with pytest.raises(ValueError, match=rf"under the key '{cls.__name__}\[monitor={monitor}"): run(setup, learn, 1, cbs + [_Saves()])
        assert files_under(root) == before
        assert_same_weights(weights(learn), w)
        assert_same_opt(opt_snapshot(learn), opt)
        if existing: assert len(learn.recorder.losses) == n_losses  # the last fit's history is still there
