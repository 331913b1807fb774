"A refused operation changes nothing, every failure names itself, cleanup always completes (issue 17)."
import io, math, pickle, subprocess, sys, textwrap
import pytest
import torch
from torch import nn
import torch.nn.functional as F
from fastbook_core.basics import *
from fastbook_core.callbacks.tracker import EarlyStoppingCallback, SaveModelCallback, TerminateOnNaNCallback, TrackEpochCallback
from fastbook_core.callbacks.lr_finder import LRFinder
from fastbook_core.metrics import Precision
from fastbook_core.test_utils import classif_learner, synth_learner

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device on this machine: the CUDA paths run where one is lent')


def snapshot(learn):
    "Everything a refused load must leave untouched."
    opt = None if learn.opt is None else (learn.opt.read_val('lr'), learn.opt.wd,
                                          {k: {n: v.clone() for n, v in s.items() if torch.is_tensor(v)}
                                           for k, s in learn.opt.state_dict()['state'].items()})
    return ({k: v.clone() for k, v in learn.model.state_dict().items()}, opt, learn._resume_states,
            learn.recorder.checkpoint_state() if hasattr(learn, 'recorder') else None)

def assert_same(a, b):
    wa, oa, ra, reca = a; wb, ob, rb, recb = b
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (oa is None) == (ob is None)
    if oa is not None:
        assert oa[:2] == ob[:2]
        assert oa[2].keys() == ob[2].keys()
        for k in oa[2]: assert all(torch.equal(oa[2][k][n], ob[2][k][n]) for n in oa[2][k])
    assert ra == rb and reca == recb

@pytest.fixture
def learn():
    l = classif_learner()
    l.fit(1, 1e-2)
    (l.path / 'models').mkdir(parents=True, exist_ok=True)
    return l


# 1. Loading is all or nothing ------------------------------------------------------------------------------
def test_refused_loads_change_nothing(learn):
    other_head = classif_learner(n_classes=5); other_head.path = learn.path; other_head.save('head')
    extra = {**learn.model.state_dict(), 'extra.weight': torch.zeros(3)}
    torch.save({'model': extra}, learn.path / 'models' / 'extra.pth')
    learn.save('weights_only', with_opt=False)
    split = classif_learner(); split.path = learn.path
    split.split(lambda m: [m[:2], m[2:]]); split.fit(1, 1e-2); split.save('split')   # 4 param groups, not 2
    before = snapshot(learn)
    for name, with_opt, msg in [('head', None, 'has shape'), ('extra', None, 'unexpected keys: extra.weight'),
                                ('weights_only', True, 'holds no optimizer state'), ('split', True, 'parameter groups')]:
        with pytest.raises(CheckpointError, match=msg): learn.load(name, with_opt=with_opt)
        assert_same(before, snapshot(learn))

def test_optimizer_state_that_does_not_fit_is_skipped_with_a_warning_by_default(learn):
    split = classif_learner(); split.path = learn.path
    split.split(lambda m: [m[:2], m[2:]]); split.fit(1, 1e-2); split.save('split')
    opt_before = snapshot(learn)[1]
    with pytest.warns(UserWarning, match='optimizer state does not fit'): learn.load('split')
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), split.model.parameters()))
    assert snapshot(learn)[1][:2] == opt_before[:2]

def test_strict_false_loads_the_matching_keys(learn):
    torch.save({'model': {'0.weight': torch.ones(16, 4)}}, learn.path / 'models' / 'part.pth')
    learn.load('part', strict=False)
    assert torch.equal(learn.model[0].weight.detach(), torch.ones(16, 4))

def test_dtype_kind_mismatch_is_refused(learn):
    sd = {k: (v.long() if v.is_floating_point() else v) for k, v in learn.model.state_dict().items()}
    torch.save(sd, learn.path / 'models' / 'ints.pth')
    before = snapshot(learn)
    with pytest.raises(CheckpointError, match='torch.int64 in the file and torch.float32'): learn.load('ints')
    assert_same(before, snapshot(learn))

def test_load_learner_with_a_model_that_does_not_fit_is_refused(learn):
    learn.export()
    with pytest.raises(CheckpointError, match='does not fit this model'):
        load_learner(learn.path, model=nn.Sequential(nn.Linear(4, 3)), loss_func=nn.CrossEntropyLoss())


# 2. Every refused file is a CheckpointError naming the file -------------------------------------------------------
@pytest.mark.parametrize('content, msg', [
    (torch.ones(3), 'holds a Tensor, not a checkpoint'),
    ([torch.ones(3)], 'holds a list, not a checkpoint'),
])
def test_files_that_are_not_checkpoints(learn, content, msg):
    p = learn.path / 'models' / 'odd.pth'
    torch.save(content, p)
    with pytest.raises(CheckpointError, match=msg) as e: learn.load('odd')
    assert 'odd.pth' in str(e.value)

def test_plain_pickle_and_legacy_formats(learn):
    p = learn.path / 'models' / 'pickled.pth'
    p.write_bytes(pickle.dumps({'model': {k: v.numpy() for k, v in learn.model.state_dict().items()}}))
    with pytest.raises(CheckpointError, match='pickled.pth'): learn.load('pickled')
    legacy = learn.path / 'models' / 'legacy.pth'
    torch.save({'model': learn.model.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    learn.load('legacy')   # torch's legacy format of plain tensors is still read safely
    torch.save({'model': learn.model.state_dict(), 'x': Precision()}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match='legacy.pth'): learn.load('legacy')

def test_exports_missing_parts_or_of_other_formats(learn):
    learn.export()
    state = torch.load(learn.path / 'export.pkl', weights_only=True)
    for part in ('state_dict', 'objects', 'hypers'):
        torch.save({k: v for k, v in state.items() if k != part}, learn.path / 'broken.pkl')
        with pytest.raises(CheckpointError, match=f'incomplete export: it lacks {part}'): load_learner(learn.path, 'broken.pkl')
    torch.save({'format': 'something else'}, learn.path / 'other.pkl')
    with pytest.raises(CheckpointError, match='not written by `Learner.export`'): load_learner(learn.path, 'other.pkl')
    (learn.path / 'plain.pkl').write_bytes(pickle.dumps({'model': learn.model}))
    with pytest.raises(CheckpointError, match='plain.pkl'): load_learner(learn.path, 'plain.pkl')
    torch.save(torch.ones(2), learn.path / 'tensor.pkl')
    with pytest.raises(CheckpointError, match='holds a Tensor'): load_learner(learn.path, 'tensor.pkl')

def test_missing_files_are_file_not_found(learn):
    with pytest.raises(FileNotFoundError): learn.load('nothing')
    with pytest.raises(FileNotFoundError): load_learner(learn.path, 'nothing.pkl')
    with pytest.raises(CheckpointError): learn.load('nothing')


# 3. Faults keep their identity ------------------------------------------------------------------------------------
class Picky(Exception):
    "An exception whose constructor needs another argument: re-creating it with type(e)(msg) would fail."
    def __init__(self, code, where): super().__init__(f'{code} at {where}'); self.code = code

def test_exceptions_from_loss_metric_and_model_keep_their_type():
    def bad_loss(out, targ): raise Picky(3, 'loss')
    def bad_metric(out, targ): raise Picky(4, 'metric')
    class BadModel(nn.Module):
        def __init__(self): super().__init__(); self.l = nn.Linear(1, 1)
        def forward(self, x): raise Picky(5, 'model')
    for learn, code in [(synth_learner(loss_func=bad_loss), 3), (synth_learner(metrics=[bad_metric]), 4),
                        (synth_learner(model=BadModel()), 5)]:
        with pytest.raises(Picky) as e: learn.fit(1)
        assert e.value.code == code

def test_metric_error_names_the_callback_and_event():
    def bad_metric(out, targ): raise ValueError('metric exploded')
    learn = synth_learner(metrics=[bad_metric])
    with pytest.raises(ValueError, match='metric exploded') as e: learn.fit(1)
    assert any('AverageMetric' in n and 'on_batch_end' in n for n in e.value.__notes__)

def test_out_of_memory_stays_oom_without_shape_hints():
    class OOM(nn.Module):
        def __init__(self): super().__init__(); self.l = nn.Linear(1, 1)
        def forward(self, x): raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB; size mismatch')
    learn = synth_learner(model=OOM())
    with pytest.raises(torch.OutOfMemoryError) as e: learn.fit(1)
    assert not any('shape' in n for n in getattr(e.value, '__notes__', []))

def test_shape_errors_get_a_note_and_keep_their_type():
    learn = synth_learner(model=nn.Linear(3, 1))
    with pytest.raises(RuntimeError) as e: learn.fit(1)
    assert type(e.value) is RuntimeError and any('input shape (16, 1)' in n for n in e.value.__notes__)


# 4. Cleanup always completes ----------------------------------------------------------------------------------
class FailsAtEnd(Callback):
    def on_train_end(self, **kwargs): raise OSError('disk full')

def test_every_on_train_end_runs_and_lr_finder_restores_the_weights():
    learn = synth_learner()
    w0 = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(OSError, match='disk full'):
        learn.fit(2, 1e-7, callbacks=[FailsAtEnd(), LRFinder(learn, num_it=10, end_lr=10)])
    assert all(torch.equal(v, w0[k]) for k, v in learn.model.state_dict().items())

def test_the_first_exception_is_the_one_raised():
    class Boom(Callback):
        def on_batch_end(self, **kwargs): raise KeyError('first')
    learn = synth_learner()
    with pytest.raises(KeyError, match='first') as e: learn.fit(1, callbacks=[Boom(), FailsAtEnd()])
    assert any('disk full' in n for n in e.value.__notes__)

def test_keyboard_interrupt_reaches_on_train_end_and_the_learner_trains_on():
    class CtrlC(Callback):
        def on_batch_end(self, iteration, **kwargs):
            if iteration == 2: raise KeyboardInterrupt
        def on_train_end(self, exception, **kwargs): self.seen = exception
    learn = synth_learner(); cb = CtrlC()
    with pytest.raises(KeyboardInterrupt): learn.fit(1, callbacks=[cb])
    assert isinstance(cb.seen, KeyboardInterrupt)
    learn.fit(1)

def test_gradients_of_an_interrupted_step_do_not_leak_into_the_next_fit():
    class FailAfterBackward(Callback):
        def on_backward_end(self, **kwargs): raise RuntimeError('interrupted between backward and step')
    learn = synth_learner()
    with pytest.raises(RuntimeError): learn.fit(1, callbacks=[FailAfterBackward()])
    assert learn.model.a.grad is not None          # the interrupted step left its gradients
    seen = []
    class Look(Callback):
        def on_batch_begin(self, train, **kwargs):
            if train and not seen: seen.append(learn.model.a.grad)
    learn.fit(1, callbacks=[Look()])
    assert seen == [None]


# 5. Bad arguments are refused before training, naming the argument -------------------------------------------------
def test_bad_arguments_are_refused_before_training():
    learn = synth_learner(); learn.fit(1)
    losses = list(learn.recorder.losses)
    cases = [(lambda: learn.fit(1, callbacks=[EarlyStoppingCallback]), 'EarlyStoppingCallback'),
             (lambda: learn.fit(1, callbacks=[[Callback()]]), 'a list inside the list'),
             (lambda: learn.fit(1, wd=float('nan')), 'wd=nan'), (lambda: learn.fit(1, wd=float('inf')), 'wd=inf'),
             (lambda: learn.fit(1, wd=-1e-2), 'finite number >= 0'), (lambda: learn.fit(1, wd=[0.1, 0.1]), '2 values for 1 layer groups'),
             (lambda: learn.fit_one_cycle(1, div_factor=0), 'div_factor=0'),
             (lambda: learn.fit_one_cycle(1, final_div=-5), 'final_div=-5'),
             (lambda: learn.fit(0), 'epochs >= 1')]
    for f, msg in cases:
        with pytest.raises((TypeError, ValueError), match=msg): f()
        assert learn.recorder.losses == losses   # nothing changed: the last fit's history is still there
    learn.callbacks.append(SaveModelCallback)
    with pytest.raises(TypeError, match='learn.callbacks holds'): learn.fit(1)
    assert learn.recorder.losses == losses

def test_bad_learner_arguments():
    data = synth_learner().data
    for kw, msg in [(dict(metrics=[Precision]), 'is a class: pass an instance'), (dict(metrics=['acc']), 'not callable'),
                    (dict(callbacks=[TerminateOnNaNCallback]), 'pass an instance'), (dict(wd=-1), 'finite number >= 0'),
                    (dict(callback_fns=[TerminateOnNaNCallback()]), 'put instances in `callbacks`'),
                    (dict(loss_func='mse'), 'not callable')]:
        with pytest.raises((TypeError, ValueError), match=msg): Learner(data, nn.Linear(1, 1), **kw)

def test_callback_fns_that_do_not_make_callbacks():
    learn = synth_learner(callback_fns=[lambda learn: 'not a callback'])
    with pytest.raises(TypeError, match="returned 'not a callback', not a Callback"): learn.fit(1)

def test_losses_that_are_not_scalar_tensors():
    with pytest.raises(ValueError, match="reduction='mean'"): synth_learner(loss_func=nn.MSELoss(reduction='none')).fit(1)
    with pytest.raises(TypeError, match='returned a float'):
        synth_learner(loss_func=lambda out, targ: float(((out - targ) ** 2).mean())).fit(1)


# 6. Seeds are honoured --------------------------------------------------------------------------------------------
def test_generator_makes_the_shuffling_reproducible():
    from torch.utils.data import TensorDataset
    ds = TensorDataset(torch.arange(100.)[:, None], torch.arange(100.)[:, None])
    def order(seed):
        torch.manual_seed(1234)   # the global generator is the same each time: only `generator` differs
        data = DataBunch.create(ds, bs=10, device='cpu', generator=torch.Generator().manual_seed(seed))
        return [int(x[0]) for x, _ in data.train_dl][:5]
    assert order(0) == order(0) and order(0) != order(1)


# 7. NaN never reaches the weights ---------------------------------------------------------------------------------
def test_terminate_on_nan_stops_before_the_step(capsys):
    class NaNAt(Callback):
        def on_loss_begin(self, last_output, iteration, train, **kwargs):
            if train and iteration == 3: return {'last_output': last_output * float('nan')}
    learn = synth_learner()
    learn.fit(1, 0.1, callbacks=[NaNAt(), TerminateOnNaNCallback()])
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert 'Epoch/Batch (0/3): Invalid loss' in capsys.readouterr().out
    assert len(learn.recorder.losses) == 4 and learn.recorder.val_losses == []


# 8. CUDA (skipped here, run where a GPU is lent) ------------------------------------------------------------------
@cuda
def test_cuda_resume_with_opt():
    learn = classif_learner(); learn.data.device = torch.device('cuda')
    for dl in learn.data.dls: dl.device = learn.data.device
    learn.model.cuda(); learn.fit(1, 1e-2); learn.save('gpu')
    fresh = classif_learner(); fresh.data.device = torch.device('cuda'); fresh.model.cuda()
    fresh.load('gpu', with_opt=True)
    fresh.fit(1, 1e-2)

@cuda
def test_cuda_get_preds_are_on_the_cpu_and_fp16_scales():
    learn = classif_learner(); learn.data.device = torch.device('cuda')
    for dl in learn.data.dls: dl.device = learn.data.device
    learn.model.cuda(); learn.to_fp16(); learn.fit(2, 1e-2)
    assert learn.mixed_precision.dtype == torch.float16 and learn.mixed_precision.loss_scale > 1
    preds, targs = learn.get_preds()
    assert preds.device.type == 'cpu' and targs.device.type == 'cpu'

@cuda
def test_export_from_cuda_loads_in_a_cpu_only_process(tmp_path):
    learn = classif_learner(); learn.model.cuda(); learn.path = tmp_path; learn.export()
    code = textwrap.dedent(f'''
        import torch; assert not torch.cuda.is_available()
        from fastbook_core.basics import load_learner
        l = load_learner({str(tmp_path)!r}); print(l.predict(torch.zeros(4))[0])''')
    r = subprocess.run([sys.executable, '-c', code], env={'CUDA_VISIBLE_DEVICES': '', 'PATH': ''}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# Found by the adversarial review ----------------------------------------------------------------------------------
def _export_with(learn, tmp_path, name, **objs):
    "An export of `learn` whose pickled objects are replaced by `objs` (what a crafted file could hold)."
    learn.export(tmp_path / 'good.pkl')
    state = torch.load(tmp_path / 'good.pkl', weights_only=True)
    blob = io.BytesIO(); torch.save({**torch.load(io.BytesIO(state['objects']), weights_only=False), **objs}, blob)
    state['objects'] = blob.getvalue()
    torch.save(state, tmp_path / name)

def test_a_safe_export_imports_no_module_to_decide():
    import sys
    from fastbook_core.checkpoint import _trusted
    mod = 'torch.utils.model_dump.__main__'   # importing it would run a program and exit
    assert mod not in sys.modules
    assert _trusted(f'{mod}.Sneaky') is None and _trusted('torch.nn.modules.nothing_here.X') is None
    assert mod not in sys.modules
    assert _trusted('torch.nn.modules.linear.Linear') is nn.Linear

def test_exported_callbacks_cannot_choose_files(learn, tmp_path):
    from functools import partial as P
    from fastbook_core.callbacks.csv_logger import CSVLogger
    _export_with(learn, tmp_path, 'evil.pkl', callback_fns=[P(CSVLogger, filename=str(tmp_path / 'overwritten'))])
    with pytest.raises(CheckpointError, match='only `trust_code=True` accepts those'): load_learner(tmp_path, 'evil.pkl')
    state = torch.load(tmp_path / 'good.pkl', weights_only=True)
    state['hypers']['model_dir'] = '/etc'
    torch.save(state, tmp_path / 'dir.pkl')
    with pytest.raises(CheckpointError, match='not a folder inside'): load_learner(tmp_path, 'dir.pkl')

def test_an_optimizer_state_of_another_kind_is_refused_before_anything_changes(learn):
    sgd = classif_learner(opt_func=partial(torch.optim.SGD, momentum=0.9)); sgd.path = learn.path; sgd.fit(1); sgd.save('sgd')
    before = snapshot(learn)
    with pytest.raises(CheckpointError, match='another optimizer'): learn.load('sgd', with_opt=True)
    assert_same(before, snapshot(learn))
    with pytest.warns(UserWarning, match='another optimizer'): learn.load('sgd')   # weights only, by default

@pytest.mark.parametrize('key, value, msg', [('rng', {'torch': torch.ones(3)}, 'damaged random states'),
                                             ('recorder', 'junk', 'damaged Recorder history'),
                                             ('callbacks', {'early_stopping_callback': [1, 2]}, 'damaged callback states')])
def test_damaged_parts_of_a_checkpoint_are_refused_before_anything_changes(learn, key, value, msg):
    learn.save('ok')
    state = torch.load(learn.path / 'models' / 'ok.pth', weights_only=True)
    state[key] = value
    torch.save(state, learn.path / 'models' / 'bad.pth')
    before, rng = snapshot(learn), torch.get_rng_state()
    with pytest.raises(CheckpointError, match=msg): learn.load('bad', with_opt=True)
    assert_same(before, snapshot(learn))
    assert torch.equal(rng, torch.get_rng_state())

def test_a_device_this_machine_lacks_is_not_a_damaged_file(learn):
    learn.save('ok')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='no CUDA device'): learn.load('ok', device='cuda')
    with pytest.raises(ValueError, match='meta'): learn.load('ok', device='meta')

def test_a_fit_refused_by_a_callback_or_the_loss_changes_nothing():
    learn = classif_learner(); learn.fit(1, 1e-2)
    losses, lrs = list(learn.recorder.losses), learn.opt.read_val('lr')
    stats = {k: b.clone() for k, b in learn.model.named_buffers()}
    class Refuse(Callback):
        def on_train_begin(self, **kwargs): raise ValueError('refused at on_train_begin')
    with pytest.raises(ValueError, match='refused at on_train_begin'):
        learn.fit(1, 0.5, callbacks=[Refuse()])
    learn.loss_func = partial(F.cross_entropy, reduction='none')
    with pytest.raises(ValueError, match="reduction='mean'"): learn.fit(1, 0.5)
    assert learn.recorder.losses == losses and learn.opt.read_val('lr') == lrs
    assert all(torch.equal(b, stats[k]) for k, b in learn.model.named_buffers())   # the BatchNorm statistics too

def test_save_model_callback_never_loads_a_stale_file(tmp_path):
    learn = synth_learner(); smc = SaveModelCallback(learn)
    learn.fit(2, 0.5, callbacks=[smc])            # writes bestmodel.pth
    learn.fit(2, 0.05)                            # better weights, not saved
    w = [p.detach().clone() for p in learn.model.parameters()]
    class FailEarly(Callback):                    # a fit that fails before smc's own on_train_begin
        _order = -100
        def on_train_begin(self, **kwargs): raise ValueError('refused')
    with pytest.raises(ValueError, match='refused'):
        learn.fit(1, callbacks=[FailEarly(), smc])
    assert all(torch.equal(a, b.detach()) for a, b in zip(w, learn.model.parameters()))

def test_resume_keeps_the_shuffling_generator_lr_reductions_and_loss_scale(tmp_path):
    from fastbook_core.callbacks.tracker import ReduceLROnPlateauCallback
    from fastbook_core.test_utils import synth_data, RegModel
    def make():
        set_seed(0)
        data = synth_data(generator=torch.Generator().manual_seed(3))
        l = Learner(data, RegModel(), path=tmp_path, silent=True)
        return l.to_fp16(dtype=torch.float16, loss_scale=2. ** 10, max_noskip=3)
    def cbs(l): return [ReduceLROnPlateauCallback(l, patience=0, min_delta=10., min_lr=0.), SaveModelCallback(l, every='epoch', name='ck')]
    whole = make(); whole.fit(4, 0.05, callbacks=cbs(whole))
    resumed = make(); resumed.load('ck_1', with_opt=True)
    resumed.fit(4, 0.05, callbacks=cbs(resumed) + [TrackEpochCallback(resumed, epoch_offset=2)])
    assert resumed.recorder.lrs == whole.recorder.lrs  # the loaded history, then the resumed epochs
    assert resumed.mixed_precision.loss_scale == whole.mixed_precision.loss_scale
    assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(resumed.model.parameters(), whole.model.parameters()))

def test_exceptions_that_refuse_notes_keep_their_identity():
    from dataclasses import dataclass
    @dataclass(frozen=True)
    class Frozen(Exception): code: int
    class Raise(Callback):
        def on_batch_end(self, **kwargs): raise Frozen(7)
    with pytest.raises(Frozen): synth_learner().fit(1, callbacks=[Raise()])

def test_ctrl_c_in_one_on_train_end_does_not_skip_the_others():
    class CtrlCAtEnd(Callback):
        _order = -20
        def on_train_end(self, **kwargs): raise KeyboardInterrupt
    learn = synth_learner()
    w0 = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(KeyboardInterrupt): learn.fit(2, 1e-7, callbacks=[CtrlCAtEnd(), LRFinder(learn, num_it=10, end_lr=10)])
    assert all(torch.equal(v, w0[k]) for k, v in learn.model.state_dict().items())
