"What fastai's users complained about, reproduced and answered."
import io, json, os, subprocess, sys, textwrap, warnings
from pathlib import Path
import pytest
import torch
from torch import nn
from fastbook_core.basics import *
from fastbook_core.callbacks.tracker import (EarlyStoppingCallback, SaveModelCallback, ReduceLROnPlateauCallback,
                                             TerminateOnNaNCallback)
from fastbook_core.callbacks.csv_logger import CSVLogger
from fastbook_core.callbacks.fp16 import MixedPrecision
from fastbook_core.test_utils import synth_learner, classif_learner


# lr_find keeps its snapshot in memory
def test_lr_find_on_an_unwritable_path():
    learn = classif_learner()
    learn.path = Path('/dev/null/not-a-folder')  # nothing can be created under it, even as root
    learn.lr_find(num_it=30)
    assert len(learn.recorder.lrs) > 5


def test_lr_find_writes_nothing_and_two_do_not_collide(tmp_path):
    a, b = classif_learner(seed=1), classif_learner(seed=2)
    a.path = b.path = tmp_path
    wa = [p.detach().clone() for p in a.model.parameters()]
    wb = [p.detach().clone() for p in b.model.parameters()]
    a.lr_find(num_it=30); b.lr_find(num_it=30); a.lr_find(num_it=30)  # a second lr_find works too
    assert list(tmp_path.iterdir()) == []
    for p, q in zip(a.model.parameters(), wa): assert torch.equal(p.detach(), q)
    for p, q in zip(b.model.parameters(), wb): assert torch.equal(p.detach(), q)


def test_lr_find_leaves_training_exactly_as_without_it():
    a = classif_learner()  # seeds the random generators: each run starts from the same state
    a.fit(1, 1e-2); a.lr_find(num_it=40); a.fit(1, 1e-2)
    b = classif_learner()
    b.fit(1, 1e-2); b.fit(1, 1e-2)
    for p, q in zip(a.model.parameters(), b.model.parameters()): assert torch.equal(p, q)
    sa, sb = a.opt.state_dict(), b.opt.state_dict()
    for k in sa['state']:
        for kk in sa['state'][k]: assert torch.equal(torch.as_tensor(sa['state'][k][kk]), torch.as_tensor(sb['state'][k][kk]))


def test_plot_suggestion_with_too_few_points(capsys):
    learn = synth_learner()
    learn.lr_find(num_it=3, stop_div=False)
    learn.recorder.plot(suggestion=True)
    assert 'Cannot suggest a learning rate' in capsys.readouterr().out
    assert not hasattr(learn.recorder, 'min_grad_lr')


MEM = textwrap.dedent('''
    import resource, sys, torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from fastbook_core.basics import *
    torch.set_num_threads(1)
    n, n_in, n_out, bs = 2000, 4000, 1000, 200          # outputs: 10 batches, 8 MB; inputs: 32 MB
    x = torch.randn(n, n_in); y = torch.zeros(n, dtype=torch.long)
    data = DataBunch.create(TensorDataset(x[:bs], y[:bs]), TensorDataset(x, y), bs=bs, val_bs=bs, device='cpu')
    learn = Learner(data, nn.Linear(n_in, n_out), silent=True)
    learn.get_preds(n_batch=1)                           # warm up the allocator
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    preds, targs = learn.get_preds()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024, preds.numel() * 4 / 2**20)
''')


def test_get_preds_memory_is_bounded_by_outputs():
    # a fixed mmap threshold makes glibc return freed blocks at once, so the peak RSS follows live memory
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '131072'}
    r = subprocess.run([sys.executable, '-c', MEM], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    grew_mb, outputs_mb = map(float, r.stdout.split())
    batch_mb = outputs_mb / 10
    # the outputs, their one concatenation (or activation), and a few batches (measured: 13.8 MB for 7.6 MB of
    # outputs); keeping the inputs (32 MB) would break this
    assert grew_mb <= 2 * outputs_mb + 4 * batch_mb + 2, (grew_mb, outputs_mb)


@pytest.mark.parametrize('cb', [EarlyStoppingCallback, SaveModelCallback, ReduceLROnPlateauCallback])
def test_tracker_with_unrecorded_monitor_lists_names(cb):
    learn = classif_learner(metrics=[accuracy])
    # as in fastai v1: a warning naming what is recorded, and the fit goes on without the tracker's decisions
    with pytest.warns(UserWarning, match=r"monitors 'acc', which is not recorded\. Recorded: train_loss, valid_loss, accuracy"):
        learn.fit(1, callbacks=[cb(learn, monitor='acc')])
    assert len(learn.recorder.val_losses) == 1  # the fit went on


@pytest.mark.parametrize('cb', [EarlyStoppingCallback, SaveModelCallback, ReduceLROnPlateauCallback])
def test_tracker_without_validation_set_says_so(cb):
    learn = synth_learner(n_valid=0)
    with pytest.warns(UserWarning, match='needs a validation set'): learn.fit(1, callbacks=[cb(learn)])
    learn.fit(1, callbacks=[cb(learn, monitor='train_loss')])


def test_csv_logger_without_validation():
    learn = synth_learner(n_valid=0)
    learn.fit(2, callbacks=[CSVLogger(learn)])
    assert list(learn.csv_logger.read_logged_file().columns) == ['epoch', 'train_loss', 'time']


def test_tta_with_loss_and_after_load_learner():
    learn = classif_learner(); learn.fit(1)
    final, y, losses = learn.TTA(augment=lambda x: x * 1.05, with_loss=True)
    assert losses.shape == y.shape and torch.isfinite(losses).all()
    learn.export()
    inf = load_learner(learn.path, test=learn.data.valid_ds)
    p, t = inf.TTA(DatasetType.Test, augment=lambda x: x)
    assert torch.allclose(p, learn.get_preds()[0], atol=1e-6)


class FakeTTY(io.StringIO):
    def isatty(self): return True


def test_validation_has_its_own_bar(monkeypatch):
    labels = []
    import fastbook_core.progress as prog
    orig = prog.TextView.refresh
    def spy(self, final=False):
        child = getattr(self.master, 'child', None)
        if child is not None: labels.append((child.label, child.total))
        return orig(self, final)
    monkeypatch.setattr(prog.TextView, 'refresh', spy)
    monkeypatch.setattr(sys, 'stderr', FakeTTY())
    learn = synth_learner(silent=False)
    learn.fit(1)
    assert ('valid', len(learn.data.valid_dl)) in labels and ('train', len(learn.data.train_dl)) in labels
    assert 'valid 100%' in sys.stderr.getvalue()


def test_fp16_overflow_skips_step_and_lowers_scale():
    learn = synth_learner()
    mp = MixedPrecision(learn, dtype=torch.float16, loss_scale=2. ** 8)
    snapshots = []
    class InfLoss(Callback):
        _order = 998  # after the others, before the scaler
        def on_backward_begin(self, last_loss, iteration, train, **kw):
            snapshots.append([p.detach().clone() for p in learn.model.parameters()])
            if train and iteration == 2: return {'last_loss': last_loss * float('inf')}
    learn.fit(1, lr=1e-2, callbacks=[InfLoss(), mp])
    assert mp.loss_scale == 2. ** 7
    for p, q in zip(snapshots[2], snapshots[3]): assert torch.equal(p, q)   # the overflowing step was skipped
    assert not all(torch.equal(p, q) for p, q in zip(snapshots[3], snapshots[4]))  # the next one stepped


def test_bf16_nan_is_reported_and_stops(capsys):
    learn = synth_learner().to_fp16()
    class NaNOut(Callback):
        def on_loss_begin(self, last_output, iteration, **kw):
            if iteration >= 1: return {'last_output': last_output * float('nan')}
    cb = TerminateOnNaNCallback()
    learn.fit(2, callbacks=[NaNOut(), cb])
    assert cb.stop and len(learn.recorder.losses) == 2
    assert 'Invalid loss' in capsys.readouterr().out


def test_export_of_lambda_callback_or_loss_fails_at_export():
    learn = classif_learner()
    learn.loss_func = lambda o, t: nn.functional.cross_entropy(o, t)
    with pytest.raises(TypeError, match=r'the loss function \(<function .*<lambda>'): learn.export()
    def make():
        class Local(Callback): pass
        return Local
    learn = classif_learner(callback_fns=[make()])
    with pytest.raises(TypeError, match='the callback function'): learn.export()
