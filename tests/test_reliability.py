"Reliability: atomic checkpoints under SIGKILL, exact resume across processes, NaN, and malformed arguments."
import os, random, signal, subprocess, sys, time, textwrap
import pytest
import torch
from torch import nn
from hypothesis import given, settings, HealthCheck, strategies as st
from fastbook_core.basics import *
from fastbook_core.basic_train import CheckpointError
from fastbook_core.callbacks.tracker import TerminateOnNaNCallback
from fastbook_core.test_utils import synth_learner, synth_data, classif_learner

SAVER = textwrap.dedent('''
    import sys, torch
    from torch import nn
    from fastbook_core.basics import *
    from fastbook_core.test_utils import synth_data
    model = nn.Sequential(nn.Linear(1, 1500), nn.Linear(1500, 1500), nn.Linear(1500, 1))  # 2.3M params, 9 MB
    learn = Learner(synth_data(), model, path=sys.argv[1], silent=True)
    i = 0
    while True:
        with torch.no_grad():
            for p in learn.model.parameters(): p.fill_(i)
        learn.save('ck', with_opt=False)
        print(i, flush=True)
        i += 1
''')


def _check_consistent(path):
    state = torch.load(path, weights_only=True)['model']
    vals = {float(v.flatten()[0]) for v in state.values()}
    assert len(vals) == 1, 'a checkpoint mixes two saves'
    assert all(bool((v == next(iter(vals))).all()) for v in state.values())
    return vals.pop()


def test_sigkill_during_saves_never_corrupts(tmp_path):
    rng = random.Random(0)
    last = -1
    for trial in range(5):
        p = subprocess.Popen([sys.executable, '-c', SAVER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        try:
            first = p.stdout.readline()  # one complete save
            assert first.strip().isdigit(), first
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            p.send_signal(signal.SIGKILL); p.wait()
        val = _check_consistent(tmp_path / 'models' / 'ck.pth')
        assert val >= 0
    leftovers = list((tmp_path / 'models').glob('.ck.pth.*.tmp'))
    # a later save (here, by another Learner) removes whatever a killed writer left behind
    learn = Learner(synth_data(), nn.Sequential(nn.Linear(1, 1500), nn.Linear(1500, 1500), nn.Linear(1500, 1)),
                    path=tmp_path, silent=True)
    learn.save('ck')
    assert not list((tmp_path / 'models').glob('.ck.pth.*.tmp')), leftovers
    learn.load('ck')


RESUME = textwrap.dedent('''
    import sys, torch
    from fastbook_core.basics import *
    from fastbook_core.test_utils import classif_learner
    mode, path = sys.argv[1], sys.argv[2]
    learn = classif_learner(seed=0)
    learn.path = Path(path)
    if mode == 'full': learn.fit(2, 1e-2); learn.save('full')
    elif mode == 'first': learn.fit(1, 1e-2); learn.save('half')
    elif mode == 'second': learn.load('half', with_opt=True); learn.fit(1, 1e-2); learn.save('resumed')
    elif mode == 'cycle_full': learn.fit_one_cycle(4, 1e-2); learn.save('cfull')
    elif mode == 'cycle_first': learn.fit_one_cycle(2, 1e-2, tot_epochs=4); learn.save('chalf')
    elif mode == 'cycle_second':
        learn.load('chalf', with_opt=True); learn.fit_one_cycle(4, 1e-2, start_epoch=2); learn.save('cresumed')
''')


def _run(*args):
    r = subprocess.run([sys.executable, '-c', RESUME, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def _weights(path): return torch.load(path, weights_only=True)['model']


@pytest.mark.parametrize('kind', ['', 'cycle_'])
def test_resume_in_a_new_process_equals_uninterrupted(tmp_path, kind):
    _run(f'{kind}full', str(tmp_path))
    _run(f'{kind}first', str(tmp_path))
    _run(f'{kind}second', str(tmp_path))
    full = _weights(tmp_path / 'models' / ('cfull.pth' if kind else 'full.pth'))
    resumed = _weights(tmp_path / 'models' / ('cresumed.pth' if kind else 'resumed.pth'))
    for k in full: assert torch.equal(full[k], resumed[k]), k


def test_resume_restores_history_and_rng(tmp_path):
    learn = classif_learner()
    learn.fit(2)
    learn.save('ck')
    expected = torch.rand(3)
    other = classif_learner(seed=5)
    other.path = learn.path
    other.load('ck', with_opt=True)
    assert other.recorder.val_losses == pytest.approx(learn.recorder.val_losses)
    assert other.recorder.names == learn.recorder.names
    state = torch.load(learn.path / 'models' / 'ck.pth', weights_only=True)
    assert (state['epoch'], state['iteration']) == (2, 2 * len(learn.data.train_dl))
    assert other.recorder.epoch == 2
    assert torch.equal(torch.rand(3), expected)


def test_nan_loss_stops_at_once(capsys):
    learn = synth_learner()
    class PoisonAt(Callback):
        def on_loss_begin(self, last_output, iteration, train, **kw):
            if train and iteration == 3: return {'last_output': last_output * float('nan')}
    cb = TerminateOnNaNCallback()
    learn.fit(3, callbacks=[PoisonAt(), cb])
    assert cb.stop and len(learn.recorder.losses) == 4 and learn.recorder.val_losses == []
    assert 'Invalid loss' in capsys.readouterr().out


# Malformed arguments: a clear error (ValueError or TypeError), never a hang or a Learner that no longer trains.
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=3), st.lists(st.floats(-1, 1), max_size=3), st.just(slice(None)),
                 st.builds(slice, st.floats(-1, 1), st.floats(-1, 1)))
fast = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fast
@given(bs=junk, val_bs=junk, num_workers=st.one_of(st.integers(-2, 0), st.text(max_size=2)))
def test_databunch_create_bad_args(bs, val_bs, num_workers):
    from torch.utils.data import TensorDataset
    ds = TensorDataset(torch.randn(40, 2), torch.randn(40, 1))
    try: DataBunch.create(ds, ds, bs=bs, val_bs=val_bs, num_workers=num_workers)
    except (ValueError, TypeError) as e: assert str(e)


LEARN = synth_learner()


@fast
@given(epochs=junk, lr=junk, wd=st.one_of(st.none(), st.floats(0, 0.1)))
def test_fit_bad_args_leave_learner_usable(epochs, lr, wd):
    try: LEARN.fit(epochs, lr=lr, wd=wd)
    except (ValueError, TypeError) as e: assert str(e)
    LEARN.fit(1, lr=1e-3)
    assert torch.isfinite(torch.tensor(LEARN.recorder.val_losses)).all()


@fast
@given(lr=junk)
def test_lr_range_bad_args(lr):
    try: res = LEARN.lr_range(lr)
    except (ValueError, TypeError) as e: assert str(e); return
    assert all(v >= 0 for v in (list(res) if hasattr(res, '__len__') else [res]))


@fast
@given(ds_type=st.one_of(st.sampled_from(list(DatasetType)), st.integers(-2, 9)), n_batch=junk)
def test_get_preds_bad_args(ds_type, n_batch):
    try: preds = LEARN.get_preds(ds_type, n_batch=n_batch)
    except (ValueError, TypeError) as e: assert str(e); return
    assert preds[0].shape[0] == preds[1].shape[0]


@fast
@given(data=st.one_of(st.none(), st.integers(), st.text(max_size=3)), model=st.one_of(st.none(), st.integers()))
def test_learner_bad_args(data, model):
    with pytest.raises(TypeError): Learner(data, model if model is not None else nn.Linear(1, 1))
    with pytest.raises(TypeError): Learner(synth_data(), model)
