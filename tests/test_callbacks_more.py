"Edge cases of the callbacks of issue 22: flat_cos_anneal, loss_metrics, mem, over/undersampling, tensorboard, mlflow, rnn."
import os, subprocess, sys, warnings
from functools import partial
from pathlib import Path
import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner
from fastbook_core.callback import Callback, annealing_cos
from fastbook_core.metrics import accuracy
from fastbook_core.test_utils import classif_learner, synth_learner
from fastbook_core.torch_core import set_seed
from fastbook_core.callbacks import *
import fastbook_core.callbacks.mem as mem_mod
import fastbook_core.callbacks.tensorboard as tb_mod
import fastbook_core.callbacks.mlflow as mlflow_mod


class Boom(Callback):
    "Raise `exc` at training batch `at` of the first epoch."
    def __init__(self, at: int = 2, exc=RuntimeError('boom')): self.at, self.exc = at, exc
    def on_batch_end(self, num_batch, train, **kwargs):
        if train and num_batch == self.at: raise self.exc


# ---------------------------------------------------------------- flat_cos_anneal

def test_fit_fc_all_flat_and_all_annealing():
    learn = synth_learner()
    learn.fit_fc(1, 0.05, start_pct=1.)
    np.testing.assert_allclose(learn.recorder.lrs, 0.05)
    learn.fit_fc(1, 0.05, start_pct=0.)
    n = len(learn.data.train_dl)
    np.testing.assert_allclose(learn.recorder.lrs, [0.05] + [annealing_cos(0.05, 0., k / n) for k in range(1, n)])


def test_flat_cos_anneal_per_layer_group_and_slice():
    set_seed(0)
    learn = classif_learner(layer_groups=None)
    learn.split(lambda m: [m[2]])
    seen = []
    class GroupLrs(Callback):
        def on_batch_begin(self, train, **kwargs):
            if train: seen.append(learn.opt.read_val('lr'))
    learn.fit_fc(1, slice(1e-3, 1e-2), callbacks=[GroupLrs()])
    np.testing.assert_allclose(seen[0], [1e-3, 1e-2])
    n = len(seen); b = n - int(n * 0.72)
    np.testing.assert_allclose(seen[-1], [annealing_cos(lr, 0., (b - 1) / b) for lr in (1e-3, 1e-2)])


@pytest.mark.parametrize('kwargs, msg', [({'tot_epochs': 0}, 'tot_epochs=0'), ({'start_pct': 1.5}, 'start_pct=1.5'),
                                         ({'curve': 'cos'}, "use 'cosine'")])
def test_flat_cos_anneal_refuses_bad_arguments_before_changing_the_learner(kwargs, msg):
    learn = synth_learner()
    with pytest.raises(ValueError, match=msg): FlatCosAnnealScheduler(learn, **kwargs)
    assert not hasattr(learn, 'flat_cos_anneal_scheduler')


def test_flat_cos_anneal_counts_the_batches_of_the_resampled_loader():
    "Built when training begins: the schedule covers the over-sampled epoch exactly."
    learn = _imbalanced_learner(callback_fns=[OverSamplingCallback])
    learn.silent = True
    learn.fit_fc(2, 0.01)
    n = len(learn.recorder.lrs)
    assert n == 2 * (3 * 120 // 16)
    b = n - int(n * 0.72)
    np.testing.assert_allclose(learn.recorder.lrs[-1], annealing_cos(0.01, 0., (b - 1) / b))


# ---------------------------------------------------------------- loss_metrics and mem together

class PartsLoss(nn.Module):
    metric_names = ['mse', 'l1']
    def forward(self, out, targ):
        mse, l1 = F.mse_loss(out, targ), F.l1_loss(out, targ)
        self.metrics = {'mse': mse.item(), 'l1': l1}  # a Python number and a tensor
        return mse + l1


def test_loss_metrics_and_peak_mem_columns_side_by_side():
    learn = synth_learner(loss_func=PartsLoss(), callback_fns=[LossMetrics, PeakMemMetric])
    learn.fit(2, 0.1)
    assert learn.recorder.names == ['epoch', 'train_loss', 'valid_loss', 'mse', 'l1', 'cpu used', 'cpu peak', 'time']
    assert all(len(m) == 4 for m in learn.recorder.metrics)
    mse, l1 = learn.recorder.metrics[-1][:2]
    np.testing.assert_allclose(learn.recorder.val_losses[-1], mse + l1, rtol=1e-5)


def test_peak_mem_keeps_its_columns_when_validation_is_skipped():
    "lr_find skips validation: the memory values still land under their own columns."
    learn = classif_learner(metrics=[accuracy], callback_fns=[PeakMemMetric])
    from fastbook_core.callbacks.lr_finder import LRFinder
    learn.fit(1, 1e-3, callbacks=[LRFinder(learn, 1e-5, 1e-1, num_it=5, stop_div=False)])
    row = dict(zip(learn.recorder.names, learn.recorder.rows[-1]))
    assert row['valid_loss'] == '#na#' and row['accuracy'] == '#na#'
    assert row['cpu used'] != '#na#' and row['cpu peak'] != '#na#'


class Holds(Callback):
    "Hold 96 MB from the end of batch 1 to the end of batch 3 of the first epoch (across the samples taken between)."
    def on_batch_end(self, epoch, num_batch, train, **kwargs):
        if epoch == 0 and train and num_batch == 1: self.x = torch.ones(24 * 2**20)  # written, so resident
        if epoch == 0 and train and num_batch == 3: del self.x


def test_peak_mem_sampled_where_the_peak_cannot_be_reset(monkeypatch):
    "Without a resettable high-water mark the peak is sampled after each batch: a short-lived tensor is still seen."
    monkeypatch.setattr(mem_mod, '_reset_peak_rss', lambda: False)
    learn = classif_learner(metrics=[accuracy], callback_fns=[PeakMemMetric])
    learn.fit(1, 1e-2, callbacks=[Holds()])
    assert learn.peak_mem_metric.meters[0].exact is False
    assert learn.recorder.metrics[0][2] >= 80


def test_peak_mem_without_proc_or_psutil_names_the_fix(monkeypatch):
    monkeypatch.setattr(mem_mod, '_proc_status', lambda key: None)
    monkeypatch.setitem(sys.modules, 'psutil', None)
    learn = synth_learner()
    with pytest.raises(ImportError, match='pip install psutil'): PeakMemMetric(learn)
    assert not hasattr(learn, 'peak_mem_metric')  # refused before touching the Learner


def test_peak_mem_uses_psutil_without_proc(monkeypatch):
    psutil = pytest.importorskip('psutil')
    monkeypatch.setattr(mem_mod, '_proc_status', lambda key: None)
    learn = classif_learner(metrics=[accuracy], callback_fns=[PeakMemMetric])
    learn.fit(1, 1e-2, callbacks=[Holds()])
    assert learn.peak_mem_metric.meters[0].proc is not None
    assert learn.recorder.metrics[0][2] >= 80


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device here: the GPU columns read torch.cuda allocator '
                                                          'statistics, which need one (run this on a GPU machine)')
def test_peak_mem_on_cuda():
    set_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(320, 4, generator=g), torch.randint(0, 3, (320,), generator=g)
    data = DataBunch.create(TensorDataset(x[:256], y[:256]), TensorDataset(x[256:], y[256:]), bs=32, device='cuda')

    class GpuHungry(Callback):
        def on_batch_end(self, epoch, num_batch, train, **kwargs):
            if epoch == 0 and train and num_batch == 1:
                t = torch.ones(64 * 2**20, device='cuda')  # 256 MB
                del t
    learn = Learner(data, nn.Linear(4, 3), metrics=[accuracy], callback_fns=[PeakMemMetric], silent=True)
    learn.fit(2, 1e-2, callbacks=[GpuHungry()])
    assert learn.recorder.names[-5:] == ['cpu used', 'cpu peak', 'gpu used', 'gpu peak', 'time']
    (gused0, gpeak0), (gused1, gpeak1) = [m[-2:] for m in learn.recorder.metrics]
    assert 250 <= gpeak0 <= 300 and abs(gused0) < 8, (gused0, gpeak0)
    assert gpeak1 < 8, gpeak1
    with pytest.raises(ValueError, match='gpu=True'): PeakMemMetric(synth_learner(), gpu=True)


# ---------------------------------------------------------------- over- and under-sampling

def _imbalanced(counts=(240, 60, 15), bs=16, **kwargs):
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    x = torch.randn(len(y), 2, generator=g) + y[:, None].float()
    yv = torch.arange(3).repeat(20)
    return DataBunch.create(TensorDataset(x, y), TensorDataset(torch.randn(60, 2) + yv[:, None].float(), yv), bs=bs,
                            device='cpu', **kwargs)


def _imbalanced_learner(**kwargs):
    set_seed(0)
    return Learner(_imbalanced(counts=(120, 30, 10)), nn.Linear(2, 3), metrics=[accuracy], silent=True, **kwargs)


@pytest.mark.parametrize('exc', [RuntimeError('boom'), KeyboardInterrupt()])
@pytest.mark.parametrize('cls', [OverSamplingCallback, UnderSamplingCallback])
def test_sampler_restores_the_loader_after_an_exception(cls, exc):
    learn = _imbalanced_learner()
    original = learn.data.train_dl
    cb = cls(learn)
    with pytest.raises(type(exc)): learn.fit(1, callbacks=[cb, Boom(0, exc)])
    assert learn.data.train_dl is original and cb.old_dl is None
    learn.fit(1, callbacks=[cb])  # the same instance works again, and restores again
    assert learn.data.train_dl is original


class LabelledList(Dataset):
    "A map-style dataset with a `targets` attribute (as torchvision's) and no whole-batch fetching."
    def __init__(self, x, y): self.x, self.y_, self.targets = x, y, y.tolist()
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], self.y_[i]


@pytest.mark.parametrize('kind', ['per-item loader', 'targets attribute'])
def test_oversampling_other_loaders_and_datasets(kind):
    data = _imbalanced()
    if kind == 'per-item loader': data = _imbalanced(batched_fetch=False)
    else:
        ds = data.train_ds
        data = DataBunch.create(LabelledList(*ds.tensors), data.valid_ds, bs=16, device='cpu')
    set_seed(0)
    learn = Learner(data, nn.Linear(2, 3), silent=True)
    counts = []
    class Count(Callback):
        def on_batch_begin(self, last_target, train, **kwargs):
            if train: counts.append(torch.bincount(last_target, minlength=3))
    learn.fit(1, callbacks=[OverSamplingCallback(learn), Count()])
    total = torch.stack(counts).sum(0).float()
    assert total.sum() == 3 * 240 // 16 * 16
    assert (total / total.sum() - 1 / 3).abs().max() < 0.06, total


def test_sampler_refusals_change_nothing():
    learn = _imbalanced_learner()
    original = learn.data.train_dl
    with pytest.raises(ValueError, match='give one per item'):
        learn.fit(1, callbacks=[OverSamplingCallback(learn, weights=torch.ones(3))])
    assert learn.data.train_dl is original
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    multi = Learner(DataBunch.create(TensorDataset(x, (x[:, :3] > 0).long()), bs=16, device='cpu'), nn.Linear(4, 3),
                    loss_func=nn.BCEWithLogitsLoss(), silent=True)
    with pytest.raises(ValueError, match=r'shape \(64, 3\) \(multi-label\?\)'):
        multi.fit(1, callbacks=[UnderSamplingCallback(multi)])


def test_sampler_given_weights():
    "Weights of zero for every item but one class: only that class is drawn."
    learn = _imbalanced_learner()
    y = learn.data.train_ds.tensors[1]
    seen = set()
    class Seen(Callback):
        def on_batch_begin(self, last_target, train, **kwargs):
            if train: seen.update(last_target.tolist())
    learn.fit(1, callbacks=[OverSamplingCallback(learn, weights=(y == 2).double()), Seen()])
    assert seen == {2}


def test_fit_one_cycle_sees_the_oversampled_length():
    import fastbook_core.train  # noqa: F401
    learn = _imbalanced_learner(callback_fns=[OverSamplingCallback])
    learn.fit_one_cycle(1, 1e-2)
    n = len(learn.recorder.lrs)
    assert n == 3 * 120 // 16
    assert int(np.argmax(learn.recorder.lrs)) == int(n * 0.3)  # the cycle's peak where the whole cycle puts it


# ---------------------------------------------------------------- tensorboard

def EventAccumulator(path):
    "TensorBoard's own reader of event files (the test skips where tensorboard is not installed)."
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    return EventAccumulator(path, size_guidance={'scalars': 0})


@pytest.fixture(autouse=False)
def needs_tb():
    pytest.importorskip('tensorboard')


def _open_event_files() -> list:
    if not os.path.isdir('/proc/self/fd'): pytest.skip('no /proc to list open files')
    res = []
    for fd in os.listdir('/proc/self/fd'):
        try: target = os.readlink(f'/proc/self/fd/{fd}')
        except OSError: continue
        if 'tfevents' in target: res.append(target)
    return res


def test_tensorboard_closes_its_file_after_an_exception(needs_tb, tmp_path):
    learn = classif_learner(metrics=[accuracy])
    cb = LearnerTensorboardWriter(learn, tmp_path, 'crash', loss_iters=1)
    with pytest.raises(RuntimeError, match='boom'): learn.fit(1, callbacks=[cb, Boom(3)])
    assert cb.writer is None and _open_event_files() == []
    acc = EventAccumulator(str(tmp_path / 'crash')); acc.Reload()
    assert [e.step for e in acc.Scalars('metrics/train_loss')] == [0, 1, 2]  # what was written before the error


def test_tensorboard_two_fits_two_event_files(needs_tb, tmp_path):
    learn = classif_learner()
    cb = LearnerTensorboardWriter(learn, tmp_path, 'run', every='epoch')
    learn.fit(1, callbacks=[cb]); learn.fit(1, callbacks=[cb])
    assert len(list((tmp_path / 'run').glob('events.out.tfevents.*'))) == 2


def test_tensorboard_writes_nothing_on_other_ranks(needs_tb, tmp_path, monkeypatch):
    monkeypatch.setattr(tb_mod, 'rank_distrib', lambda: 1)
    learn = classif_learner()
    learn.fit(1, callbacks=[LearnerTensorboardWriter(learn, tmp_path, 'rank1', graph=True)])
    assert not (tmp_path / 'rank1').exists()


def test_tensorboard_graph_does_not_change_training(needs_tb, tmp_path):
    "Tracing the graph reads a batch and runs the model: with BatchNorm and a shuffled loader, training is unchanged."
    def run(with_graph):
        learn = classif_learner()
        cbs = [LearnerTensorboardWriter(learn, tmp_path, f'g{with_graph}', graph=True)] if with_graph else []
        learn.fit(2, 1e-2, callbacks=cbs)
        return [p.detach().clone() for p in learn.model.state_dict().values()]
    for a, b in zip(run(True), run(False)): torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_tensorboard_bad_graph_says_how_to_go_on(needs_tb, tmp_path):
    class Untraceable(nn.Module):
        def __init__(self):
            super().__init__(); self.lin = nn.Linear(4, 3)
        def forward(self, x):
            if torch.jit.is_tracing(): raise RuntimeError('this model cannot be traced')
            return self.lin(x)
    learn = classif_learner()
    learn.model = Untraceable()
    cb = LearnerTensorboardWriter(learn, tmp_path, 'bad', graph=True)
    with pytest.raises(RuntimeError, match='cannot be traced') as e: learn.fit(1, callbacks=[cb])
    assert 'pass graph=False' in ''.join(e.value.__notes__)
    assert cb.writer is None and _open_event_files() == []
    assert learn.model.training  # put back in training mode


@pytest.mark.parametrize('kwargs, msg', [({'every': 'step'}, "use 'batch' or 'epoch'"), ({'loss_iters': 0}, 'loss_iters=0'),
                                         ({'hist_iters': -1}, 'hist_iters=-1')])
def test_tensorboard_bad_arguments(needs_tb, tmp_path, kwargs, msg):
    learn = synth_learner()
    with pytest.raises(ValueError, match=msg): LearnerTensorboardWriter(learn, tmp_path, 'x', **kwargs)
    assert not hasattr(learn, 'learner_tensorboard_writer')


def test_tensorboard_missing_package_names_the_extra(needs_tb, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == 'tensorboard' or m.startswith(('tensorboard.', 'torch.utils.tensorboard'))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'tensorboard', None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "fastbook_core\[tensorboard\]"'):
        LearnerTensorboardWriter(synth_learner(), tmp_path, 'x')


def test_tensorboard_v1_usage(needs_tb, tmp_path):
    "fastai v1's documented use: a partial in callback_fns, then fit."
    learn = synth_learner()
    learn.callback_fns.append(partial(LearnerTensorboardWriter, base_dir=tmp_path, name='run1'))
    learn.fit(2)
    acc = EventAccumulator(str(tmp_path / 'run1')); acc.Reload()
    assert {'metrics/train_loss', 'metrics/valid_loss', 'hyperparameters/lr'} <= set(acc.Tags()['scalars'])


def test_tensorboard_lr_find_has_no_validation_values(needs_tb, tmp_path):
    import fastbook_core.train  # noqa: F401
    learn = classif_learner()
    learn.callback_fns.append(partial(LearnerTensorboardWriter, base_dir=tmp_path, name='lr', loss_iters=1))
    learn.lr_find(num_it=8)
    acc = EventAccumulator(str(tmp_path / 'lr')); acc.Reload()
    assert 'metrics/valid_loss' not in acc.Tags()['scalars']
    np.testing.assert_allclose([e.value for e in acc.Scalars('hyperparameters/lr')], learn.recorder.lrs, rtol=1e-6)


# ---------------------------------------------------------------- mlflow

@pytest.fixture
def store(tmp_path, monkeypatch):
    pytest.importorskip('mlflow')
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    return (tmp_path / 'mlruns').as_uri()


def _runs(uri, exp='e'):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(exp)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


@pytest.mark.parametrize('exc, status', [(RuntimeError('boom'), 'FAILED'), (KeyboardInterrupt(), 'KILLED')])
def test_mlflow_run_status_after_an_exception(store, exc, status):
    learn = classif_learner(metrics=[accuracy])
    cb = MLFlowTracker(learn, 'e', uri=store)
    with pytest.raises(type(exc)): learn.fit(2, callbacks=[cb, Boom(2, exc)])
    client, runs = _runs(store)
    assert [r.info.status for r in runs] == [status]
    assert [a.path for a in client.list_artifacts(runs[0].info.run_id, 'model')] == ['model/model.pth']
    assert cb.client is None


def test_mlflow_subset_of_metrics_params_and_notebook(store, tmp_path):
    nb = tmp_path / 'train.ipynb'; nb.write_text('{}')
    learn = classif_learner(metrics=[accuracy])
    learn.fit(2, callbacks=[MLFlowTracker(learn, 'e', params={'bs': 99, 'arch': 'mlp'}, nb_path=nb, uri=store,
                                          metric_names=['accuracy'], log_model=False)])
    client, (run,) = _runs(store)
    assert set(run.data.metrics) == {'accuracy'}
    assert run.data.params['bs'] == '99' and run.data.params['arch'] == 'mlp' and run.data.params['epochs'] == '2'
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ['train.ipynb']


def test_mlflow_refusals_create_no_run(store, tmp_path):
    learn = classif_learner(metrics=[accuracy])
    with pytest.raises(FileNotFoundError, match='is not a file'):
        learn.fit(1, callbacks=[MLFlowTracker(learn, 'e', nb_path=tmp_path / 'nope.ipynb', uri=store)])
    with pytest.raises(ValueError, match="cannot log 'valid_loss'.*Columns: train_loss"):
        nv = synth_learner(n_valid=0)
        nv.fit(1, callbacks=[MLFlowTracker(nv, 'e', uri=store, metric_names=['valid_loss'])])
    assert _runs(store)[1] == []


def test_mlflow_tracking_uri_from_the_environment(store, monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', store)
    learn = synth_learner()
    learn.fit(1, callbacks=[MLFlowTracker(learn, 'e', uri=None)])
    _, runs = _runs(store)
    assert len(runs) == 1 and runs[0].info.status == 'FINISHED'


def test_mlflow_only_rank_0_logs(store, monkeypatch):
    monkeypatch.setattr(mlflow_mod, 'rank_distrib', lambda: 1)
    learn = synth_learner()
    learn.fit(1, callbacks=[MLFlowTracker(learn, 'e', uri=store)])
    assert _runs(store)[1] == []


def test_mlflow_model_artifact_loads_back(store, tmp_path):
    learn = classif_learner()
    learn.fit(1, callbacks=[MLFlowTracker(learn, 'e', uri=store)])
    client, (run,) = _runs(store)
    path = client.download_artifacts(run.info.run_id, 'model/model.pth', str(tmp_path))
    other = classif_learner(seed=1)
    other.load(Path(path).resolve())
    for a, b in zip(learn.model.state_dict().values(), other.model.state_dict().values()): torch.testing.assert_close(a, b)


def test_mlflow_resumed_fit_logs_into_the_same_run(store):
    "Saved after two epochs of a four-epoch cycle, resumed in a new Learner: one run, four epochs of history."
    import fastbook_core.train  # noqa: F401
    learn = classif_learner(metrics=[accuracy])
    learn.fit_one_cycle(2, 1e-2, tot_epochs=4, callbacks=[MLFlowTracker(learn, 'e', uri=store)])
    learn.save('half')  # with_opt=True: the callbacks' states too
    again = classif_learner(metrics=[accuracy]); again.path = learn.path
    again.load('half', with_opt=True)
    again.fit_one_cycle(4, 1e-2, start_epoch=2, callbacks=[MLFlowTracker(again, 'e', uri=store)])
    client, runs = _runs(store)
    assert len(runs) == 1 and runs[0].info.status == 'FINISHED'
    steps = sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, 'valid_loss'))
    assert steps == [0, 1, 2, 3]


def test_mlflow_missing_package_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == 'mlflow' or m.startswith('mlflow.')]: monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'mlflow', None)
    learn = synth_learner()
    with pytest.raises(ImportError, match=r'pip install "fastbook_core\[mlflow\]"'): MLFlowTracker(learn, 'e')
    assert not hasattr(learn, 'ml_flow_tracker')


# ---------------------------------------------------------------- rnn

class Seq(nn.Module):
    "An LSTM returning the fastai v1 triple; counts its resets."
    def __init__(self, triple=True):
        super().__init__(); self.rnn, self.head, self.resets, self.triple = nn.LSTM(1, 8, batch_first=True), nn.Linear(8, 1), 0, triple
    def reset(self): self.resets += 1
    def forward(self, x):
        raw, _ = self.rnn(x)
        return (self.head(raw[:, -1]), [raw], [raw]) if self.triple else (self.head(raw[:, -1]), raw)


def _seq_learner(seq_len=6, **kwargs):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, seq_len, 1, generator=g)
    y = x.sum(1)
    set_seed(0)
    return Learner(DataBunch.create(TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:]), bs=16, device='cpu'),
                   Seq(**kwargs), loss_func=F.mse_loss, silent=True)


def test_rnn_trainer_resets_each_epoch_and_defaults_add_nothing():
    learn = _seq_learner()
    seen = []
    class Loss(Callback):
        _order = 10
        def on_backward_begin(self, last_loss, last_output, last_target, **kwargs):
            seen.append((last_loss.item(), F.mse_loss(last_output, last_target).item()))
    learn.fit(3, 1e-2, callbacks=[RNNTrainer(learn), Loss()])  # v1's defaults: alpha=0, beta=0
    assert learn.model.resets == 3
    np.testing.assert_allclose(*zip(*seen), rtol=1e-6)


def test_rnn_trainer_tar_needs_two_time_steps():
    learn = _seq_learner(seq_len=1)
    learn.fit(1, 1e-2, callbacks=[RNNTrainer(learn, alpha=0., beta=1.)])  # no TAR on one step, and no error
    assert np.isfinite(learn.recorder.val_losses[-1])


def test_rnn_trainer_refuses_other_outputs():
    learn = _seq_learner(triple=False)
    with pytest.raises(TypeError, match='returned a tuple of 2'): learn.fit(1, callbacks=[RNNTrainer(learn, 2., 1.)])


# ---------------------------------------------------------------- the package

def test_callbacks_package_imports_first_and_alone():
    "A callback module imported first in a fresh process loads the package (every module, in its fixed order) without a cycle, and never train."
    code = ('import sys, fastbook_core.callbacks.rnn as m, fastbook_core.callbacks as cbs\n'
            'assert "fastbook_core.train" not in sys.modules and "fastbook_core.basics" not in sys.modules\n'
            'assert all(f"fastbook_core.callbacks.{n}" in sys.modules for n in ("mlflow", "tensorboard", "mem", "oversampling"))\n'
            'assert "mlflow" not in sys.modules and "tensorboard" not in sys.modules\n')
    subprocess.run([sys.executable, '-c', code], check=True)
