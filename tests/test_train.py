"train: the extension methods as v1's module-level functions, v1's names, and the interpretations' edge cases."
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import fastbook_core.train as train
from fastbook_core.basic_data import DataBunch, DatasetType
from fastbook_core.basic_train import Learner
from fastbook_core.callback import annealing_cos
from fastbook_core.metrics import accuracy
from fastbook_core.test_utils import classif_learner, synth_learner
from fastbook_core.train import (ClassificationInterpretation, Interpretation, MultiLabelClassificationInterpretation,
                                 fit_one_cycle, lr_find, one_cycle_scheduler)


def test_v1_train_all_and_callbacks_reachable():
    v1_all = ['BnFreeze', 'GradientClipping', 'ShowGraph', 'Interpretation', 'ClassificationInterpretation',
              'MultiLabelClassificationInterpretation', 'fit_one_cycle', 'lr_find', 'one_cycle_scheduler', 'to_fp16',
              'to_fp32', 'mixup', 'AccumulateScheduler', 'fit_fc']
    assert set(v1_all) <= set(train.__all__)
    import fastbook_core.callbacks as cbs
    for name in cbs.__all__: assert getattr(train, name) is getattr(cbs, name), name


def test_extension_methods_are_the_module_functions():
    for name in ['fit_one_cycle', 'lr_find', 'to_fp16', 'to_fp32', 'mixup', 'clip_grad', 'fit_fc', 'TTA', 'interpret',
                 'plot_lr']:
        assert getattr(Learner, name) is getattr(train, name), name
    assert Learner.find_lr is train.lr_find


def test_module_function_and_method_give_the_same_fit():
    from fastbook_core.torch_core import set_seed
    a, b = synth_learner(), synth_learner()
    set_seed(1); fit_one_cycle(a, 2, 0.1)
    set_seed(1); b.fit_one_cycle(2, 0.1)
    np.testing.assert_allclose(a.recorder.lrs, b.recorder.lrs)
    np.testing.assert_allclose(a.recorder.val_losses, b.recorder.val_losses)


def test_one_cycle_scheduler_kwargs_and_every_fit():
    learn = synth_learner(callback_fns=[one_cycle_scheduler(0.1, div_factor=10., final_div=100.)])
    for _ in range(2):  # each fit is a whole cycle
        learn.fit(1)
        n = len(learn.data.train_dl); a2 = n - int(n * 0.3)
        np.testing.assert_allclose(learn.recorder.lrs[0], 0.01)
        np.testing.assert_allclose(learn.recorder.lrs[-1], annealing_cos(0.1, 0.001, (a2 - 1) / a2))


def test_interpretation_reduces_per_label_losses_and_keeps_ds_type():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g); y = (x[:, :3] > 0).float()
    data = DataBunch.create(TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:]), bs=16, device='cpu')
    learn = Learner(data, nn.Linear(4, 3), loss_func=nn.BCEWithLogitsLoss(), silent=True)
    learn.fit(1, 0.05)
    interp = MultiLabelClassificationInterpretation.from_learner(learn, ds_type=DatasetType.Fix)
    assert interp.ds_type == DatasetType.Fix and interp.losses.shape == (64,)
    _, _, per_label = learn.get_preds(DatasetType.Fix, with_loss=True)
    torch.testing.assert_close(interp.losses, per_label.mean(1))
    assert interp.ds is not None and len(interp.ds) == 64


def test_multilabel_sigmoid_auto_and_explicit():
    learn = synth_learner()
    logits = torch.tensor([[-2., 0.5, 3.], [1., -1., 0.]])
    y = torch.tensor([[0., 1., 1.], [1., 0., 0.]])
    losses = torch.zeros(2)
    auto = MultiLabelClassificationInterpretation(learn, logits, y, losses, thresh=0.5)  # logits: a sigmoid is applied
    torch.testing.assert_close(auto.probs, logits.sigmoid())
    assert auto.pred_class.tolist() == [[False, True, True], [True, False, False]]
    probs = logits.sigmoid()
    same = MultiLabelClassificationInterpretation(learn, probs, y, losses, thresh=0.5)  # probabilities: none
    assert torch.equal(same.pred_class, auto.pred_class)
    forced = MultiLabelClassificationInterpretation(learn, probs, y, losses, sigmoid=True, thresh=0.5)
    assert forced.pred_class.all()  # a second sigmoid: every probability above 0.5, as fastai v1's default would do
    cm = auto.confusion_matrix()
    assert cm.shape == (3, 2, 2) and cm.sum() == 6 and np.trace(cm, axis1=1, axis2=2).tolist() == [2, 2, 2]


def test_top_losses_smallest_and_plot_more_than_there_are():
    learn = synth_learner(n_valid=6); learn.fit(1)
    interp = Interpretation.from_learner(learn)
    vals, idxs = interp.top_losses(3, largest=False)
    assert (vals[:-1] <= vals[1:]).all() and vals[0] == interp.losses.min()
    fig = interp.plot_top_losses(1000, return_fig=True)  # more than the 6 validation items: all of them
    assert sum(ax.has_data() for ax in fig.axes) == 6


def test_plot_top_losses_refuses_before_drawing():
    learn = synth_learner(); learn.fit(1)
    n = len(plt.get_fignums())
    with pytest.raises(ValueError, match='DatasetType.Fix'): Interpretation.from_learner(learn, DatasetType.Train).plot_top_losses()
    data = DataBunch.create(TensorDataset(torch.randn(32, 2, 2, 2, 2), torch.randint(0, 2, (32,))),
                            TensorDataset(torch.randn(16, 2, 2, 2, 2), torch.randint(0, 2, (16,))), bs=8, device='cpu')
    clearn = Learner(data, nn.Sequential(nn.Flatten(), nn.Linear(16, 2)), silent=True)
    with pytest.raises(TypeError, match='show_item='): clearn.interpret().plot_top_losses(3)
    assert len(plt.get_fignums()) == n  # no figure left behind


def test_classification_interpretation_v1_arguments():
    "fastai v1's `slice_size` is accepted (and changes nothing)."
    learn = classif_learner(); learn.fit(1, 1e-2)
    interp = ClassificationInterpretation.from_learner(learn)
    assert (interp.confusion_matrix(slice_size=10) == interp.confusion_matrix()).all()
    assert interp.most_confused(slice_size=10) == interp.most_confused()
    interp.plot_confusion_matrix(slice_size=10)


def test_lr_find_module_function():
    learn = classif_learner()
    lr_find(learn, num_it=12)
    assert len(learn.recorder.lrs) <= 12


def test_interpretation_methods_patched_in_sections_are_declared_for_type_checkers():
    "The interpretations are a core class plus `@patch` sections (issue 25): each patched method is declared in its class"
    " under TYPE_CHECKING, none is also in the class body, none shares its name with another module-level function."
    import ast
    from pathlib import Path
    from test_patched_methods import _declared, _patches
    tree = ast.parse(Path(train.__file__).read_text())
    patches = _patches(tree)
    assert {(c, n) for c, n, _, _ in patches} == {('Interpretation', 'plot_top_losses'),
                                                  ('ClassificationInterpretation', 'most_confused'),
                                                  ('ClassificationInterpretation', 'plot_confusion_matrix')}
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    for cls, name, fn, kind in patches:
        declared, body = _declared(tree, cls)
        assert name in declared and name not in body, (cls, name)
        assert defs.count(fn) == 1, fn
        assert vars(getattr(train, cls))[name] is not None  # attached at runtime
    assert 'plot_top_losses' in dir(MultiLabelClassificationInterpretation)  # inherited from Interpretation
    assert not {'plot_top_losses', 'most_confused', 'plot_confusion_matrix'} & set(train.__all__)  # v1's __all__ unchanged


def test_tta_with_v1s_positional_beta_says_how_to_call_it():
    "fastai v1's vision TTA took (beta, scale, ds_type): a number first is refused with the way to pass it."
    from fastbook_core.test_utils import synth_learner
    learn = synth_learner()
    with pytest.raises(TypeError, match='pass beta= by name'): learn.TTA(0.4, 1.35)
    preds, y = learn.TTA(beta=0.4, augment=lambda x: x)  # an identity augmentation: TTA gives the plain predictions
    assert torch.allclose(preds, learn.get_preds()[0], atol=1e-6)


# ---------------------------------------------------------------- issue 26 review: moms and start_epoch in fit_one_cycle

@pytest.mark.parametrize('moms', [[0.95, 0.85], (0.95, 0.85), np.array([0.95, 0.85])])
def test_fit_one_cycle_takes_moms_as_v1_did(moms):
    "E10: a list (or an array) of two momentums is the documented tuple; the schedule is the same."
    learn = synth_learner()
    learn.fit_one_cycle(1, 0.1, moms=moms)
    assert learn.recorder.moms[0] == pytest.approx(0.95) and min(learn.recorder.moms) == pytest.approx(0.85, abs=1e-3)


def test_fit_one_cycle_one_momentum_is_constant():
    learn = synth_learner()
    learn.fit_one_cycle(1, 0.1, moms=0.9)  # v1: listify(moms, 2)
    assert learn.recorder.moms == pytest.approx([0.9] * len(learn.recorder.moms))


@pytest.mark.parametrize('moms', [(0.95, 0.9, 0.85), [], 'high', None])
def test_fit_one_cycle_other_moms_name_the_form(moms):
    learn = synth_learner()
    with pytest.raises(ValueError, match=r"moms=.*give two momentums, \(at the ends, at the peak\) such as \(0.95, 0.85\)"):
        learn.fit_one_cycle(1, 0.1, moms=moms)
    assert getattr(learn, 'recorder', None) is None or not learn.recorder.losses  # refused before training


def test_fit_one_cycle_start_epoch_past_cyc_len_says_cyc_len_counts_the_skipped_epochs():
    "E5: the error says that cyc_len counts the epochs skipped, and gives the call that runs the rest of the cycle."
    learn = synth_learner()
    with pytest.raises(ValueError, match=r"`cyc_len` counts the epochs skipped.*fit_one_cycle\(4, start_epoch=2\)"):
        learn.fit_one_cycle(2, 0.1, start_epoch=2, tot_epochs=4)
    with pytest.raises(ValueError, match=r"fit_one_cycle\(3, start_epoch=5\) leaves no epoch to run"):
        learn.fit_one_cycle(3, 0.1, start_epoch=5)


@pytest.mark.parametrize('kw, msg', [({'start_epoch': -1}, r'start_epoch=-1: give a whole number of epochs, >= 0'),
                                     ({'start_epoch': 1.5}, r'start_epoch=1.5: give a whole number of epochs'),
                                     ({'start_epoch': True}, r'start_epoch=True: give a whole number'),
                                     ({'tot_epochs': 0}, r'tot_epochs=0: give a whole number of epochs, >= 1'),
                                     ({'tot_epochs': 2.5}, r'tot_epochs=2.5: give a whole number')])
def test_fit_one_cycle_start_epoch_and_tot_epochs_must_be_whole_numbers(kw, msg):
    "E5b: a negative or fractional start is named, not 'leaves none of the epochs' or 'slice indices must be integers'."
    learn = synth_learner()
    with pytest.raises(ValueError, match=msg): learn.fit_one_cycle(3, 0.1, **kw)


def test_fit_one_cycle_numpy_start_epoch_resumes():
    learn = synth_learner()
    learn.fit_one_cycle(np.int64(3), 0.1, start_epoch=np.int64(2), tot_epochs=np.int64(3))
    assert [r[0] for r in learn.recorder.rows] == ['2']


# ---------------------------------------------------------------- issue 26 review B5: lr_find between a fit and a save

def test_lr_find_leaves_the_last_fit_for_save(tmp_path):
    "The sweep's Recorder is learn.recorder (v1), but the last fit's callbacks, their states and hyper-parameters stay."
    from fastbook_core.callbacks.tracker import EarlyStoppingCallback
    learn = synth_learner(); learn.path = tmp_path
    own = EarlyStoppingCallback(learn, monitor='train_loss', patience=5)
    learn.callbacks.append(own)  # the Learner's own: the sweep runs it too
    es = EarlyStoppingCallback(learn, patience=5)
    learn.fit(3, 0.1, callbacks=[es])
    rec, cbs, own_state, hypers = learn.recorder, list(learn._fit_callbacks), own.checkpoint_state(), learn.opt.get_state()
    learn.lr_find(num_it=20)
    assert learn.recorder is not rec and len(learn.recorder.lrs) <= 20  # what learn.recorder.plot() draws
    assert learn.recorder._before_lr_find is rec  # for save: the stage's history
    assert learn._fit_callbacks == cbs and own.checkpoint_state() == own_state
    assert {k: learn.opt.get_state()[k] for k in ('lr', 'mom', 'wd')} == {k: hypers[k] for k in ('lr', 'mom', 'wd')}
    st = torch.load(learn.save('s', return_path=True), weights_only=True)
    assert st['callbacks'] == {'EarlyStoppingCallback[monitor=valid_loss]': es.checkpoint_state(),
                               'EarlyStoppingCallback[monitor=train_loss]': own_state}


def test_lr_find_before_any_fit_marks_no_recorder():
    learn = synth_learner()
    learn.lr_find(num_it=10)
    assert learn.recorder._before_lr_find is None and learn._fit_callbacks == []


def test_train_s_functions_are_the_learner_methods_in_a_fresh_process():
    """v1's module functions and the Learner's methods are one function. Checked in a fresh interpreter: in a notebook
    kernel that ran other notebooks first, the notebook's own definitions patch Learner after the module did."""
    import subprocess, sys
    code = ('import fastbook_core.train as t; from fastbook_core.basic_train import Learner; '
            'assert all(getattr(t, m) is getattr(Learner, m) for m in ("fit_one_cycle", "lr_find", "to_fp16", "mixup"))')
    subprocess.run([sys.executable, '-c', code], check=True)
