"Conformance with fastai v1's documentation of `metrics` (docs_src/metrics.ipynb), checked against scikit-learn."
import ast, inspect, json
from functools import partial
from pathlib import Path
import numpy as np
import pytest
import torch
from sklearn import metrics as skm
import fastbook_core.metrics as fm
from fastbook_core.metrics import *
from fastbook_core.torch_core import tensor
from fastbook_core.test_utils import classif_learner, synth_learner, synth_classif_data

SURFACE = json.loads((Path(__file__).parent.parent / 'nbs' / 'v1_surface.json').read_text())


@pytest.mark.parametrize('name', SURFACE['modules']['metrics']['names'])
def test_every_documented_name_exists(name):
    obj = fm
    for part in name.split('.'): obj = getattr(obj, part)
    assert callable(obj), name


def run_epoch(met, batches):
    "The validation events of one epoch, as the CallbackHandler plays them on a metric callback."
    met.on_train_begin()
    met.on_epoch_begin()
    for o, t in batches: met.on_batch_end(last_output=o, last_target=t)
    res = met.on_epoch_end(last_metrics=[0.])
    return None if res is None else res['last_metrics'][1]


# --- the examples of v1's documentation --------------------------------------------------------------------------------
preds = tensor([0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4], [0.9, 0.1])
ys = tensor([1], [0], [1], [0], [1])


def test_docs_examples():
    assert torch.isclose(accuracy(preds, ys), torch.tensor(0.6))
    assert torch.isclose(error_rate(preds, ys), torch.tensor(0.4))
    assert torch.isclose(accuracy_thresh(preds, tensor([0, 1], [1, 0], [0, 1], [1, 0], [0, 1]), thresh=0.65, sigmoid=False),
                         torch.tensor(0.4))
    assert torch.isclose(fbeta(tensor([0.6, 0.8, 0.2, 0.4, 0.9]).view(1, 5), tensor([1, 0, 0, 1, 1]).view(1, 5),
                               thresh=0.5, sigmoid=False), torch.tensor(2 / 3), atol=1e-4)
    p, t = tensor([0.10, .20, .30, .40, .50]), tensor([0.12, .17, .25, .44, .56])
    assert torch.isclose(explained_variance(p, t), torch.tensor(0.9374), atol=1e-4)
    assert torch.isclose(r2_score(p, t), torch.tensor(0.9351), atol=1e-4)


def test_dice_is_per_item_with_v1s_later_fix():
    # v1's docs show 0.6667 for this example: its first dice pooled the whole batch (TP=2, FP=1, FN=1). The later
    # (per-item) definition scores each item: 1, 0, 1, 1 (nothing predicted, nothing there), 0 -> 0.6.
    assert torch.isclose(dice(preds, ys), torch.tensor(0.6))
    empty = torch.zeros(2, 2, 4); empty[:, 0] = 1.        # predicts background everywhere
    assert dice(empty, torch.zeros(2, 4, dtype=torch.long)) == 1 == dice(empty, torch.zeros(2, 4, dtype=torch.long), iou=True)
    out = torch.zeros(2, 2, 4); out[0, 1, :2] = 1; out[0, 0, 2:] = 1; out[1, 0] = 1  # item 0 predicts pixels 0, 1
    targ = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]])
    assert torch.isclose(dice(out, targ), torch.tensor((2 * 1 / 4 + 1) / 2))
    assert torch.isclose(dice(out, targ, iou=True), torch.tensor((1 / 3 + 1) / 2))
    assert torch.isclose(dice(out, targ.t().contiguous().t()), dice(out, targ))  # non-contiguous targets


def test_top_k_accuracy_on_sequences_and_non_contiguous_targets():
    g = torch.Generator().manual_seed(0)
    out, targ = torch.randn(6, 5, generator=g), torch.randint(0, 5, (6,), generator=g)
    expected = np.mean([t in o.topk(2).indices for o, t in zip(out, targ)])
    assert torch.isclose(top_k_accuracy(out, targ, k=2), torch.tensor(expected, dtype=torch.float))
    seq_out, seq_targ = torch.randn(3, 4, 5, generator=g), torch.randint(0, 5, (4, 3), generator=g).t()
    assert not seq_targ.is_contiguous()
    flat = top_k_accuracy(seq_out.reshape(-1, 5), seq_targ.reshape(-1), k=3)
    assert torch.isclose(top_k_accuracy(seq_out, seq_targ, k=3), flat)
    assert top_k_accuracy(seq_out, seq_targ, k=5) == 1
    assert torch.isclose(accuracy(seq_out, seq_targ), top_k_accuracy(seq_out, seq_targ, k=1))


def test_regression_metrics_check_sizes_as_v1():
    for f in (exp_rmspe, mse, mae, rmse, msle, r2_score, explained_variance, mean_squared_error):
        with pytest.raises(AssertionError, match='Expected output and target to have the same number of elements but got 3 and 2'):
            f(torch.ones(3), torch.ones(2))
    p, t = torch.rand(4, 1), torch.rand(4)
    assert torch.isclose(mse(p, t), torch.tensor(skm.mean_squared_error(t, p[:, 0])), atol=1e-6)
    assert torch.isclose(mae(p, t), torch.tensor(skm.mean_absolute_error(t, p[:, 0])), atol=1e-6)
    assert torch.isclose(msle(p, t), torch.tensor(skm.mean_squared_log_error(t, p[:, 0])), atol=1e-6)
    assert torch.isclose(r2_score(p, t), torch.tensor(skm.r2_score(t, p[:, 0]), dtype=torch.float), atol=1e-5)
    assert (mse, mae, msle, rmse) == (mean_squared_error, mean_absolute_error, mean_squared_logarithmic_error,
                                      root_mean_squared_error)


def test_foreground_acc():
    out = torch.zeros(2, 3, 2, 2); out[:, 2] = 1.                 # predicts class 2 everywhere
    targ = torch.tensor([[[0, 2], [2, 1]], [[0, 0], [2, 0]]])[:, None]  # (bs, 1, h, w) as v1's segmentation targets
    assert torch.isclose(foreground_acc(out, targ, void_code=0), torch.tensor(3 / 4))


# --- scores over the whole epoch, against scikit-learn ------------------------------------------------------------------
g = torch.Generator().manual_seed(1)
CLS = [(torch.randn(7, 3, generator=g), torch.randint(0, 3, (7,), generator=g)) for _ in range(3)]
OUT, TARG = torch.cat([o for o, _ in CLS]), torch.cat([t for _, t in CLS])
PRED = OUT.argmax(1)


@pytest.mark.parametrize('average', ['macro', 'micro', 'weighted', None])
def test_precision_recall_fbeta(average):
    kw = dict(average=average, zero_division=0)
    for met, sk in ((Precision, skm.precision_score), (Recall, skm.recall_score)):
        res = run_epoch(met(average=average), CLS)
        assert np.allclose(res, sk(TARG, PRED, **kw), atol=1e-6)
    res = run_epoch(FBeta(average=average, beta=2), CLS)
    assert np.allclose(res, skm.fbeta_score(TARG, PRED, beta=2, **kw), atol=1e-5)


def test_confusion_matrix_kappa_mcc():
    cm = ConfusionMatrix()
    run_epoch(cm, CLS)
    assert np.array_equal(cm.metric.numpy(), skm.confusion_matrix(TARG, PRED, labels=[0, 1, 2]))
    for w in (None, 'linear', 'quadratic'):
        assert np.isclose(run_epoch(KappaScore(weights=w), CLS), skm.cohen_kappa_score(TARG, PRED, weights=w))
    assert np.isclose(run_epoch(MatthewsCorreff(), CLS), skm.matthews_corrcoef(TARG, PRED))
    with pytest.raises(ValueError, match='"linear", or "quadratic"'): KappaScore(weights='cubic')


def test_regression_callbacks():
    batches = [(torch.rand(5, 1, generator=g), torch.rand(5, 1, generator=g)) for _ in range(3)]
    p, t = torch.cat([b[0] for b in batches]).flatten(), torch.cat([b[1] for b in batches]).flatten()
    assert np.isclose(run_epoch(RMSE(), batches), skm.root_mean_squared_error(t, p), atol=1e-6)
    assert np.isclose(run_epoch(R2Score(), batches), skm.r2_score(t, p), atol=1e-5)
    assert np.isclose(run_epoch(ExplainedVariance(), batches), explained_variance(p, t), atol=1e-6)
    assert np.isclose(run_epoch(ExpRMSPE(), batches), exp_rmspe(p, t), atol=1e-6)


def test_auroc_roc_curve():
    s, l = torch.rand(40, generator=g), torch.randint(0, 2, (40,), generator=g)
    fpr, tpr = roc_curve(s, l)
    sk_fpr, sk_tpr, _ = skm.roc_curve(l, s, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)
    assert np.isclose(auc_roc_score(s, l), skm.roc_auc_score(l, s))
    logits = torch.stack([torch.zeros(40), s], 1)
    assert np.isclose(run_epoch(AUROC(), [(logits[:20], l[:20]), (logits[20:], l[20:])]),
                      skm.roc_auc_score(l, torch.softmax(logits, 1)[:, 1]))


@pytest.mark.parametrize('average', ['micro', 'macro', 'weighted', 'none'])
def test_multilabel_fbeta(average):
    out, targ = torch.randn(20, 4, generator=g), torch.randint(0, 2, (20, 4), generator=g)
    res = run_epoch(MultiLabelFbeta(beta=2, thresh=0.3, average=average), [(out[:10], targ[:10]), (out[10:], targ[10:])])
    sk = skm.fbeta_score(targ, (out.sigmoid() > 0.3).long(), beta=2, average=None if average == 'none' else average,
                         zero_division=0)
    assert np.allclose(res, sk, atol=1e-5)


def test_perplexity():
    out, targ = torch.randn(2, 5, 7, generator=g), torch.randint(0, 7, (2, 5), generator=g)
    ce = torch.nn.functional.cross_entropy(out.reshape(-1, 7), targ.reshape(-1))
    assert torch.isclose(torch.as_tensor(run_epoch(Perplexity(), [(out, targ)])), ce.exp())


def test_a_callback_metric_that_saw_no_batch_keeps_its_column():
    for met in (Precision(), KappaScore(), MatthewsCorreff(), RMSE(), AUROC(), Perplexity(), MultiLabelFbeta()):
        met.on_train_begin(); met.on_epoch_begin()
        assert met.on_epoch_end(last_metrics=[0.])['last_metrics'] == [0., None], met


# --- in a real fit -------------------------------------------------------------------------------------------------------
def test_metrics_in_a_fit_name_their_columns():
    learn = classif_learner(metrics=[accuracy, partial(top_k_accuracy, k=2), Precision(average='macro'), KappaScore(),
                                     MatthewsCorreff(), FBeta(average='weighted')])
    learn.fit(1)
    assert learn.recorder.names[3:-1] == ['accuracy', 'top_k_accuracy', 'precision', 'kappa_score', 'matthews_correff', 'f_beta']
    preds, targs = learn.get_preds()
    kappa = skm.cohen_kappa_score(targs, preds.argmax(1))
    assert np.isclose(learn.recorder.metrics[-1][3], kappa)
    assert np.isclose(learn.recorder.metrics[-1][0], (preds.argmax(1) == targs).float().mean())


def test_regression_callbacks_in_a_fit():
    learn = synth_learner(metrics=[RMSE(), R2Score(), rmse])
    learn.fit(1)
    preds, targs = learn.get_preds()
    rmse_set, r2, rmse_batches = learn.recorder.metrics[-1]
    assert np.isclose(rmse_set, skm.root_mean_squared_error(targs, preds), atol=1e-5)
    assert np.isclose(r2, skm.r2_score(targs, preds), atol=1e-4)


# --- distributed reduction, through torch_core's public helper ------------------------------------------------------------
def test_metrics_import_no_private_names_across_modules():
    tree = ast.parse(inspect.getsource(fm))
    private = [a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or '').startswith('fastbook_core')
               for a in n.names if a.name.startswith('_')]
    assert private == []
    assert 'distrib_sum' in inspect.getsource(fm.ConfusionMatrix._all_reduce)


def test_confusion_matrix_sums_over_processes(monkeypatch):
    calls = []
    def fake_sum(t):  # two processes that saw the same batches
        calls.append(t.clone())
        return t * 2
    monkeypatch.setattr(fm, 'sharded', lambda: True)  # inside a distributed fit: each process holds a share
    monkeypatch.setattr(fm, 'distrib_sum', fake_sum)
    cm = ConfusionMatrix()
    run_epoch(cm, CLS)
    assert np.array_equal(cm.metric.numpy(), 2 * skm.confusion_matrix(TARG, PRED, labels=[0, 1, 2]))
    assert np.isclose(run_epoch(Precision(average='macro'), CLS), skm.precision_score(TARG, PRED, average='macro'))
    # a process that saw no batch takes part with zeros of the agreed size
    def other_saw_3_classes(t):
        return t + torch.tensor([3., 1.], dtype=t.dtype) if t.ndim == 1 else t
    monkeypatch.setattr(fm, 'distrib_sum', other_saw_3_classes)
    empty = ConfusionMatrix(); empty.on_train_begin(); empty.on_epoch_begin(); empty.on_epoch_end()
    assert empty.metric.shape == (3, 3) and empty.metric.sum() == 0


def _accuracy_general(input, targs):
    "accuracy's general path (v1's reshapes), which the 2-d/1-d fast path must equal bit for bit."
    n = targs.shape[0]
    return (input.argmax(dim=-1).reshape(n, -1) == targs.reshape(n, -1)).float().mean()


@pytest.mark.parametrize('bs', [1, 3, 64, 127, 1000])
def test_accuracy_fast_path_is_bitwise_the_general_one(bs):
    g = torch.Generator().manual_seed(bs)
    for n_classes in (2, 10):
        out, targ = torch.randn(bs, n_classes, generator=g), torch.randint(0, n_classes, (bs,), generator=g)
        for o, t in ((out, targ), (out.t().contiguous().t(), targ), (out[:, :n_classes], targ.clone())):
            res = accuracy(o, t)
            assert res.dtype == torch.float32 and res.shape == ()
            assert torch.equal(res, _accuracy_general(o, t))
    # shapes the fast path leaves alone: sequences, (bs, 1) targets, a batch count that differs
    seq_out, seq_t = torch.randn(4, 5, 3, generator=g), torch.randint(0, 3, (4, 5), generator=g)
    assert torch.equal(accuracy(seq_out, seq_t), _accuracy_general(seq_out, seq_t))
    col = torch.randint(0, 2, (6, 1), generator=g); o6 = torch.randn(6, 2, generator=g)
    assert torch.equal(accuracy(o6, col), _accuracy_general(o6, col))
    o4, t2 = torch.tensor([[1., 0.], [0., 1.], [0., 1.], [0., 1.]]), torch.tensor([0, 1])  # 4 outputs, 2 targets
    acc = accuracy(o4, t2)  # v1's reshape: each target against two predictions, [[0, 1], [1, 1]] vs [[0], [1]]
    assert torch.equal(acc, torch.tensor(0.75)) and torch.equal(acc, _accuracy_general(o4, t2))
