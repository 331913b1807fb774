# After: mlflow/mlflow, mlflow/fastai.py (MLflow 1.x `mlflow.fastai.autolog()` for fastai v1, Databricks):
# a LearnerCallback made inside a patched Learner.fit that logs layers_info/model_summary (callbacks.hooks),
# self.opt_func.func.__name__, self.opt.true_wd / bn_wd, self.train_bn (through LearnerCallback's attribute
# delegation to the learner), smooth_loss + last_metrics per epoch; the patched fit builds
# [cb(self) for cb in self.callback_fns] + (self.callbacks or []), appends its callback to kwargs['callbacks']
# (or args[3]), and logs the parameters of an EarlyStoppingCallback (monitor, min_delta, patience, mode) and of a
# OneCycleScheduler (lr_max, div_factor, pct_start, final_div, tot_epochs, start_epoch, moms) it finds.
# Its example used cnn_learner, which splits and freezes the model; the driver does the same on a plain Learner.
# Adapted: imports (fastai -> fastbook_core); mlflow's logging calls are a stand-in dict; its safe_patch is a
# plain wrapper of Learner.fit; seeded synthetic data; a short driver. Re-written, not copied.
from functools import partial
from fastbook_core.basic_train import LearnerCallback, Learner
from fastbook_core.callbacks.hooks import model_summary, layers_info
from fastbook_core.callbacks import EarlyStoppingCallback, OneCycleScheduler
# the driver's own imports (the program itself needs none of these from fastai)
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner
from fastbook_core.metrics import accuracy, error_rate
import fastbook_core.train  # fit_one_cycle

params, metrics_by_epoch, artifacts = {}, {}, {}
def log_param(k, v): params[k] = v
def log_params(d): params.update(d)


class MetricsLogger:
    def record_metrics(self, metrics, step): metrics_by_epoch[step] = metrics


def getFastaiCallback(metrics_logger, learner):
    class MLflowFastaiCallback(LearnerCallback):
        def __init__(self, learner):
            super().__init__(learner)
            self.learner = learner
            self.opt = self.learn.opt
            self.metrics_names = ["train_loss", "valid_loss"] + [o.__name__ for o in learner.metrics]

        def on_epoch_end(self, **kwargs):
            if kwargs["smooth_loss"] is None or kwargs["last_metrics"] is None:
                return
            epoch = kwargs["epoch"]
            metrics = [kwargs["smooth_loss"]] + kwargs["last_metrics"]
            metrics = map(float, metrics)
            metrics = dict(zip(self.metrics_names, metrics))
            metrics_logger.record_metrics(metrics, epoch)

        def on_train_begin(self, **kwargs):
            info = layers_info(self.learner)
            log_param("num_layers", len(info))
            log_param("opt_func", self.opt_func.func.__name__)
            if hasattr(self.opt, "true_wd"): log_param("true_wd", self.opt.true_wd)
            if hasattr(self.opt, "bn_wd"): log_param("bn_wd", self.opt.bn_wd)
            if hasattr(self.opt, "train_bn"): log_param("train_bn", self.train_bn)
            artifacts['model_summary.txt'] = str(model_summary(self.learner))

    return MLflowFastaiCallback(learner)


def _find_callback_of_type(callback_type, callbacks):
    for callback in callbacks:
        if isinstance(callback, callback_type):
            return callback
    return None


def _log_early_stop_callback_params(callback):
    if callback:
        try:
            log_params({"early_stop_monitor": callback.monitor, "early_stop_min_delta": callback.min_delta,
                        "early_stop_patience": callback.patience, "early_stop_mode": callback.mode})
        except Exception:
            return


def _log_one_cycle_callback_params(callback):
    if callback:
        try:
            log_params({"lr_max": callback.lr_max, "div_factor": callback.div_factor, "pct_start": callback.pct_start,
                        "final_div": callback.final_div, "tot_epochs": callback.tot_epochs,
                        "start_epoch": callback.start_epoch, "moms": callback.moms})
        except Exception:
            return


def _run_and_log_function(self, original, args, kwargs, callback_arg_index):
    callbacks = [cb(self) for cb in self.callback_fns] + (self.callbacks or [])
    mlflowFastaiCallback = getFastaiCallback(MetricsLogger(), self)
    if len(args) > callback_arg_index:
        tmp_list = list(args)
        callbacks += list(args[callback_arg_index])
        tmp_list[callback_arg_index] += [mlflowFastaiCallback]
        args = tuple(tmp_list)
    elif kwargs.get("callbacks"):
        callbacks += list(kwargs["callbacks"])
        kwargs["callbacks"] += [mlflowFastaiCallback]
    else:
        kwargs["callbacks"] = [mlflowFastaiCallback]
    _log_early_stop_callback_params(_find_callback_of_type(EarlyStoppingCallback, callbacks))
    _log_one_cycle_callback_params(_find_callback_of_type(OneCycleScheduler, callbacks))
    return original(self, *args, **kwargs)


original_fit = Learner.fit
def fit(self, *args, **kwargs): return _run_and_log_function(self, original_fit, args, kwargs, 3)
Learner.fit = fit   # what mlflow's safe_patch(FLAVOR_NAME, Learner, "fit", fit) amounts to

torch.manual_seed(0)
x = torch.randn(200, 6); y = (x[:, 1] - x[:, 2] > 0).long()
data = DataBunch.create(TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:]), bs=20)
learn = Learner(data, nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2)), metrics=[accuracy],
                callback_fns=[partial(EarlyStoppingCallback, monitor='valid_loss', min_delta=0.01, patience=3)])
learn.split(lambda m: (m[2],))
learn.freeze()   # what cnn_learner (mlflow's own example) does; v1's freeze creates learn.opt
learn.fit_one_cycle(3, 1e-2)
learn.fit(1, 1e-3)
print(params); print(metrics_by_epoch)
assert params['opt_func'] == 'Adam' and params['num_layers'] >= 3
assert params['early_stop_patience'] == 3 and params['lr_max'] == 1e-2 and 'tot_epochs' in params
assert set(metrics_by_epoch[0]) == {'train_loss', 'valid_loss', 'accuracy'}
