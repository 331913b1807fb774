"The callback protocol's edge cases: event order, state updates, the skip/stop flags, and the fault paths."
import math
import pytest
import torch
from torch import nn
from fastbook_core.basics import *
from fastbook_core.test_utils import EventLogger, synth_learner, synth_data, classif_learner


def events(log, train=None):
    return [e[0] for e in log.events if train is None or e[1] == train or e[0] in ('train_begin', 'epoch_begin', 'epoch_end', 'train_end')]


def test_event_order_train_and_validation():
    learn = synth_learner(n_train=32, n_valid=16, bs=16)  # 2 train batches, 1 valid batch (val_bs=bs, as in v1)
    log = EventLogger()
    learn.fit(1, callbacks=log)
    train_batch = ['batch_begin', 'loss_begin', 'backward_begin', 'backward_end', 'step_end', 'batch_end']
    valid_batch = ['batch_begin', 'loss_begin', 'batch_end']
    assert [e[0] for e in log.events] == (['train_begin', 'epoch_begin'] + train_batch * 2 + valid_batch
                                          + ['epoch_end', 'train_end'])
    trains = [e[1] for e in log.events if e[0] == 'batch_begin']
    assert trains == [True, True, False]


def test_counters_follow_v1():
    learn = synth_learner(n_train=48, n_valid=16, bs=16)
    log = EventLogger()
    learn.fit(2, callbacks=log)
    ends = [(e[1], e[2], e[3], e[4]) for e in log.events if e[0] == 'batch_end']
    # (train, epoch, iteration, num_batch) seen at on_batch_end: counters move after it, for training batches only
    assert ends == [(True, 0, 0, 0), (True, 0, 1, 1), (True, 0, 2, 2), (False, 0, 3, 3),
                    (True, 1, 3, 0), (True, 1, 4, 1), (True, 1, 5, 2), (False, 1, 6, 3)]
    epoch_ends = [e[2] for e in log.events if e[0] == 'epoch_end']
    assert epoch_ends == [0, 1]


class SetState(Callback):
    def __init__(self, event, **updates): self.event, self.updates = event, updates
    def __getattribute__(self, name):
        if name == f"on_{object.__getattribute__(self, 'event')}":
            return lambda **kw: object.__getattribute__(self, 'updates')
        return object.__getattribute__(self, name)


def test_unknown_key_is_an_error():
    learn = synth_learner()
    with pytest.raises(Exception, match="stop_trainig isn't a valid key"):
        learn.fit(1, callbacks=SetState('epoch_end', stop_trainig=True))


def test_returned_values_reach_later_callbacks_and_the_loop():
    seen = {}
    class Zero(Callback):
        _order = 1
        def on_batch_begin(self, last_input, train, **kw):
            if train: return {'last_input': torch.zeros_like(last_input)}
    class Watch(Callback):
        _order = 2
        def on_batch_begin(self, last_input, train, **kw):
            if train: seen.setdefault('inputs', []).append(last_input.abs().sum().item())
        def on_loss_begin(self, last_output, train, **kw):
            if train: seen.setdefault('outputs', []).append(last_output.detach().clone())
    learn = synth_learner()
    learn.fit(1, callbacks=[Watch(), Zero()])
    assert all(v == 0 for v in seen['inputs'])
    # the model saw the zeroed input: its output is the bias alone
    assert all(torch.allclose(o, o[0].expand_as(o)) for o in seen['outputs'])


def test_loss_replaced_at_backward_begin():
    class Scale(Callback):
        def on_backward_begin(self, last_loss, **kw): return {'last_loss': last_loss * 0}
    learn = synth_learner()
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, lr=0.1, wd=0., callbacks=Scale())
    # a zero loss gives zero gradients: Adam's step is 0 and the weights stay
    for p, q in zip(learn.model.parameters(), w0): assert torch.equal(p.detach(), q)
    # the recorded (smoothed) loss is the real one, recorded before the change
    assert all(l > 0 for l in learn.recorder.losses)


@pytest.mark.parametrize('flag', ['skip_step', 'skip_bwd'])
def test_skip_step_and_skip_bwd_leave_weights(flag):
    event = 'backward_end' if flag == 'skip_step' else 'backward_begin'
    learn = synth_learner()
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, lr=0.1, wd=0., callbacks=SetState(event, **{flag: True}))
    for p, q in zip(learn.model.parameters(), w0): assert torch.equal(p.detach(), q)


def test_skip_zero_accumulates_gradients():
    grads = []
    class Watch(Callback):
        _order = 5
        def on_backward_end(self, train, **kw):
            if train: grads.append(learn.model.a.grad.clone())
    learn = synth_learner(opt_func=torch.optim.SGD)
    learn.fit(1, lr=0., callbacks=[SetState('step_end', skip_zero=True), Watch()])
    # with lr 0 the weights do not move; without zeroing, each gradient adds to the previous ones
    single = []
    learn2 = synth_learner(opt_func=torch.optim.SGD)
    class Watch2(Callback):
        def on_backward_end(self, train, **kw):
            if train: single.append(learn2.model.a.grad.clone())
    learn2.fit(1, lr=0., callbacks=[Watch2()])
    assert torch.allclose(grads[-1], torch.stack(single).sum(0), atol=1e-5)


def test_stop_epoch_still_validates_and_stop_training_ends():
    learn = synth_learner()
    class StopEpoch(Callback):
        def on_batch_end(self, num_batch, train, **kw):
            if train and num_batch == 1: return {'stop_epoch': True}
    learn.fit(2, callbacks=StopEpoch())
    assert learn.recorder.nb_batches == [2, 2]
    assert len(learn.recorder.val_losses) == 2
    class StopTraining(Callback):
        def on_epoch_end(self, epoch, **kw):
            if epoch == 0: return {'stop_training': True}
    learn.fit(5, callbacks=StopTraining())
    assert len(learn.recorder.val_losses) == 1


def test_stop_training_from_batch_end_finishes_the_epoch():
    learn = synth_learner()
    class Stop(Callback):
        def on_batch_end(self, iteration, train, **kw):
            if train and iteration == 2: return {'stop_training': True}
    learn.fit(3, callbacks=Stop())
    assert learn.recorder.nb_batches == [len(learn.data.train_dl)]


def test_skip_validate():
    learn = synth_learner()
    learn.fit(2, callbacks=SetState('train_begin', skip_validate=True))
    assert learn.recorder.val_losses == []
    assert learn.recorder.rows[0][2] == '#na#'


EVENTS = ['train_begin', 'epoch_begin', 'batch_begin', 'loss_begin', 'backward_begin', 'backward_end', 'step_end',
          'batch_end', 'epoch_end']


@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize('event', EVENTS)
def test_exception_at_each_event_runs_train_end_and_keeps_learner(event, exc):
    ended = []
    class Fail(Callback):
        def on_train_end(self, exception, **kw): ended.append(exception)
    def raise_(**kw):
        if kw.get('iteration', 0) >= 3 or event in ('train_begin', 'epoch_begin', 'epoch_end'): raise exc('boom')
    f = Fail(); setattr(f, f'on_{event}', raise_)
    learn = synth_learner()
    with pytest.raises(exc):
        learn.fit(2, callbacks=f)
    assert len(ended) == 1 and isinstance(ended[0], exc)
    if event not in ('train_begin', 'epoch_begin'):
        assert len(learn.recorder.losses) >= 1  # history kept
    learn.fit(1)  # still usable
    assert len(learn.recorder.val_losses) == 1


def test_error_names_callback_and_event():
    class Broken(Callback):
        def on_batch_end(self, **kw): raise ValueError('bad')
    learn = synth_learner()
    with pytest.raises(ValueError) as e: learn.fit(1, callbacks=Broken())
    assert '(raised in Broken when calling on_batch_end)' in e.value.__notes__


@pytest.mark.parametrize('epochs', [0, -1, 1.5, '2', True])
def test_bad_epochs(epochs):
    learn = synth_learner()
    learn.fit(1)
    rec = learn.recorder
    with pytest.raises(ValueError, match='epochs'): learn.fit(epochs)
    assert learn.recorder is rec and len(rec.val_losses) == 1  # refused before a new Recorder replaced the history


def test_metric_not_callable():
    learn = synth_learner()
    with pytest.raises(TypeError, match="Metric 'accuracy' is not callable"): learn.metrics = ['accuracy']
    with pytest.raises(TypeError, match='not callable'): Learner(synth_data(), nn.Linear(1, 1), metrics=[3])


def test_input_shape_mismatch_names_both_shapes():
    learn = synth_learner(model=nn.Linear(5, 1))
    with pytest.raises(RuntimeError) as e: learn.fit(1)
    msg = str(e.value) + ' '.join(getattr(e.value, '__notes__', []))  # torch's message, and our note naming the shape
    assert 'input shape (16, 1)' in msg and '5' in msg
    assert not hasattr(learn, 'recorder') and learn.opt is None   # refused before its first loss: nothing changed


def test_target_shape_mismatch_names_shapes():
    learn = classif_learner()
    learn.loss_func = nn.MSELoss()
    with pytest.raises(RuntimeError, match=r'output of shape \(16, 3\) with the target of shape \(16,\)'):
        learn.fit(1)


def test_no_validation_set_trains_without_validation():
    learn = synth_learner(n_valid=0)
    learn.fit(2)
    assert learn.recorder.names == ['epoch', 'train_loss', 'time']
    assert learn.recorder.val_losses == []
    with pytest.raises(ValueError, match='no validation set'): learn.validate()


def test_empty_training_set():
    from torch.utils.data import TensorDataset
    with pytest.raises(ValueError, match='training set is empty'):
        DataBunch.create(TensorDataset(torch.zeros(0, 1), torch.zeros(0, 1)))


def test_callback_fns_and_single_callback():
    from functools import partial
    from fastbook_core.callbacks.one_cycle import OneCycleScheduler
    learn = synth_learner(callback_fns=[partial(OneCycleScheduler, lr_max=0.05)])
    learn.fit(2)
    assert math.isclose(learn.recorder.lrs[0], 0.05 / 25)
    assert isinstance(learn.one_cycle_scheduler, OneCycleScheduler)


def test_smooth_loss_is_debiased_ema():
    learn = synth_learner()
    raw = []
    class Raw(Callback):
        def on_backward_begin(self, last_loss, **kw): raw.append(last_loss.item())
    learn.fit(1, callbacks=Raw())
    mov, beta = 0., 0.98
    for i, r in enumerate(raw, 1):
        mov = beta * mov + (1 - beta) * r
        assert math.isclose(learn.recorder.losses[i - 1], mov / (1 - beta ** i), rel_tol=1e-6)


def test_average_metric_weights_by_batch_size():
    from torch.utils.data import TensorDataset
    x = torch.arange(10.)[:, None]; y = torch.zeros(10, dtype=torch.long)
    data = DataBunch.create(TensorDataset(x, y), TensorDataset(x, y), bs=4, val_bs=4, device='cpu')
    def first_item_small(out, targ): return (out[:, 0] < 4).float().mean()  # true for items 0..3
    learn = Learner(data, nn.Identity(), loss_func=lambda o, t: (o * 0).sum().requires_grad_(), silent=True)
    res = learn.validate(metrics=[first_item_small])
    assert math.isclose(res[1], 0.4, rel_tol=1e-6)  # 4 of 10 items, not the mean of batch values (1, 0, 0)


def test_a_metric_returning_one_value_per_item_names_the_metric_and_the_shape():
    "v1 failed inside torch.stack at the epoch's end; the error names the metric, the shape and the fix."
    from fastbook_core.test_utils import synth_learner
    def per_item(out, targ): return (out - targ).abs().squeeze()
    learn = synth_learner(metrics=[per_item])
    with pytest.raises(ValueError, match=r"Metric per_item returned a value of shape \(\d+,\).*\.mean\(\)"):
        learn.fit(1)
    learn.metrics = [lambda out, targ: float((out - targ).abs().mean())]  # a Python number is one value
    learn.fit(1)
    assert isinstance(learn.recorder.metrics[-1][0], torch.Tensor)


@pytest.mark.parametrize('opt_func, numbers, options', [
    (torch.optim.Adam, ['eps'], ['amsgrad', 'maximize', 'capturable', 'differentiable']),
    (torch.optim.SGD, ['dampening'], ['nesterov', 'maximize']),
    (torch.optim.RMSprop, ['eps'], ['centered', 'maximize'])])
def test_set_stat_lists_only_numeric_hyper_parameters(opt_func, numbers, options):
    "An unknown name is refused with the hyper-parameters one can set: numbers, never the boolean options."
    opt = OptimWrapper.create(opt_func, 1e-3, [nn.Linear(3, 2)])
    with pytest.raises(KeyError) as e: opt.set_stat('epsilon', 1.)
    listed = str(e.value).split('use one of ')[1].rstrip(".'\"").split(', ')
    assert listed == ['lr', 'mom', 'beta', 'wd', *numbers]
    assert not set(options) & set(listed)
    opt.set_stat(numbers[0], 0.5)  # what is listed can be set
    assert opt.get_stat(numbers[0]) == 0.5


def test_callbacks_do_not_save_checkpoints_unless_they_say_so():
    "`Callback.saves_checkpoints` defaults to False; the callbacks that write during a fit set it."
    from fastbook_core.callbacks.tracker import SaveModelCallback, EarlyStoppingCallback
    from fastbook_core.callbacks.backup import BackupAndRestore
    assert Callback.saves_checkpoints is False and Callback().saves_checkpoints is False
    assert EarlyStoppingCallback.saves_checkpoints is False
    assert SaveModelCallback.saves_checkpoints is True and BackupAndRestore.saves_checkpoints is True
    assert 'saves_checkpoints' not in Callback().get_state()  # a class attribute, not exported state


# ---- issue 29: the handler's per-batch shortcuts change nothing a callback can see
class _Late(Callback):
    "Defines the events that a plain fit leaves empty (loss_begin, backward_end, step_end, batch_end)."
    def __init__(self): self.seen = []
    def on_loss_begin(self, train, **kwargs): self.seen.append(('loss_begin', train))
    def on_backward_end(self, **kwargs): self.seen.append(('backward_end',)); return {'skip_step': True}
    def on_step_end(self, **kwargs): self.seen.append(('step_end',)); return {'skip_zero': True}
    def on_batch_end(self, train, **kwargs): self.seen.append(('batch_end', train)); return {'stop_epoch': not train}


class _CbDataset(torch.utils.data.Dataset, _Late):
    "A dataset that is a callback: set_dl adds it to the handler, so the events that were empty are not any more."
    def __init__(self): _Late.__init__(self)
    def __len__(self): return 2
    def __getitem__(self, i): return torch.ones(1), torch.zeros(1)


def test_events_nobody_listens_to_are_skipped_but_a_late_listener_is_called():
    h = CallbackHandler([])
    h.on_train_begin(1, None, [])
    h.on_batch_begin(torch.ones(1), torch.ones(1))
    assert h.on_loss_begin('out') == 'out'
    assert (h.on_backward_end(), h.on_step_end(), h.on_batch_end(torch.tensor(0.))) == (False, False, False)
    ds = _CbDataset()
    h.set_dl(torch.utils.data.DataLoader(ds))  # the dispatch table is rebuilt: the dataset's events now run
    for train in (True, False):
        h.on_batch_begin(torch.ones(1), torch.ones(1), train=train)
        h.on_loss_begin('out')
        if train: assert (h.on_backward_end(), h.on_step_end()) == (True, True)
        assert h.on_batch_end(torch.tensor(0.)) is (not train)
    assert ds.seen == [('loss_begin', True), ('backward_end',), ('step_end',), ('batch_end', True),
                       ('loss_begin', False), ('batch_end', False)]
    assert h.state_dict['iteration'] == 2  # the two training batches, before and after the dataset joined


def test_inlined_call_keeps_the_notes_and_the_key_check():
    class Boom(Callback):
        def on_loss_begin(self, **kwargs): raise RuntimeError('boom')
    class Typo(Callback):
        def on_step_end(self, **kwargs): return {'skip_zeros': True}
    h = CallbackHandler([Boom(), Typo()]); h.on_train_begin(1, None, []); h.on_batch_begin(torch.ones(1), torch.ones(1))
    with pytest.raises(RuntimeError, match='boom') as e: h.on_loss_begin('out')
    assert '(raised in Boom when calling on_loss_begin)' in e.value.__notes__
    with pytest.raises(Exception, match=r"skip_zeros isn't a valid key .*Typo\.on_step_end"): h.on_step_end()


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_smooth_loss_is_a_0d_tensor_of_the_default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        h = CallbackHandler(); h.on_train_begin(1, None, []); h.on_batch_begin(torch.ones(1), torch.ones(1))
        for v in (0.3, 0.7): h.on_backward_begin(torch.tensor(v, requires_grad=True) * 1)
        s = h.state_dict['smooth_loss']
        assert s.dtype == dtype and s.shape == () and not s.requires_grad and s.device.type == 'cpu'
        assert torch.equal(s, torch.tensor(h.smoothener.smooth))  # what v1's torch.tensor would give
    finally: torch.set_default_dtype(old)


def test_true_wd_with_no_weight_decay_is_the_optimizers_step():
    torch.manual_seed(0)
    m1 = nn.Linear(3, 2); m2 = nn.Linear(3, 2); m2.load_state_dict(m1.state_dict())
    ow = OptimWrapper.create(torch.optim.Adam, 1e-2, [m1], wd=0., true_wd=True)
    plain = OptimWrapper.create(torch.optim.Adam, 1e-2, [m2], wd=0., true_wd=False)
    for _ in range(3):
        for m, o in ((m1, ow), (m2, plain)):
            m(torch.ones(4, 3)).pow(2).mean().backward(); o.step(); o.zero_grad()
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    ow.wd = 0.1  # and a decay set later is applied again
    before = m1.weight.detach().clone()
    m1(torch.ones(4, 3)).pow(2).mean().backward(); ow.step()
    m2(torch.ones(4, 3)).pow(2).mean().backward(); plain.step()
    assert not torch.equal(m1.weight, m2.weight) and not torch.equal(m1.weight, before)


def test_average_metric_values_with_and_without_grad():
    met = AverageMetric(lambda o, t: (o * 1).mean())  # with grad (outside no_grad), 0-d
    met.on_epoch_begin()
    o = torch.tensor([1., 3.], requires_grad=True)
    met.on_batch_end(o, torch.zeros(2))
    assert not met.val.requires_grad
    met1 = AverageMetric(lambda o, t: o.mean().reshape(1))  # a 1-element 1-d value
    met2 = AverageMetric(lambda o, t: float(o.mean()))      # a Python number
    for m in (met1, met2):
        m.on_epoch_begin(); m.on_batch_end(torch.tensor([1., 3.]), torch.zeros(2))
        assert m.val.shape == () and torch.equal(m.val, met.val.detach())


def test_zero_grad_clears_every_group_and_respects_an_optimizers_own():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    ow = OptimWrapper.create(torch.optim.Adam, 1e-3, [model[:2], model[2:]], wd=0.)
    assert len(ow.opt.param_groups) == 4
    model(torch.randn(5, 3)).sum().backward()
    model[2].bias.grad = None  # a parameter without a gradient stays so
    ow.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    class KeepZeros(torch.optim.SGD):  # its own zero_grad (zeros in place, never None) is the one that runs
        def zero_grad(self, set_to_none=True): super().zero_grad(set_to_none=False)
    kz = OptimWrapper.create(KeepZeros, 0.1, [model])
    model(torch.randn(5, 3)).sum().backward()
    kz.zero_grad()
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
