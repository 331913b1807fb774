"""The per-batch pieces of a W1 fit, each timed alone in CPU time (µs per call), to size issue 29's candidates.

    nice -n 0 python benchmarks/experiments/handler_costs.py [--number 20000] [--repeat 7]

A CallbackHandler is built as `Learner.fit` builds it (the Recorder, accuracy as an AverageMetric) and brought to
the middle of a training epoch; each piece is then called `--number` times, `--repeat` times, and the median of the
repeats is printed (`timeit` with `time.process_time` as its clock, one torch thread).
"""
import argparse, os, statistics, sys, time, timeit
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpu_bench as b  # noqa: E402
from fastbook_core.callback import CallbackHandler  # noqa: E402
from fastbook_core.progress import master_bar, progress_bar  # noqa: E402


def true_wd_block(self):
    "The part of OptimWrapper.step before `self.opt.step()` (what it does when every wd is 0)."
    if self.true_wd:
        with torch.no_grad():
            groups = self.opt.param_groups
            for lr, wd, pg1, pg2 in zip(self._lr, self._wd, groups[::2], groups[1::2]):
                if not (lr * wd): continue


def pieces():
    train, valid = b.make_data()
    learn = b.make_learner(b.mlp(), train, valid, 64)
    learn.fit(1, 1e-3)  # the optimizer and a Recorder exist
    cbs = learn.callbacks + learn._make_callbacks()
    h = CallbackHandler(cbs, learn.metrics)
    pbar = master_bar(range(1), silent=True)
    h.on_train_begin(1, pbar=pbar, metrics=learn.metrics)
    h.on_epoch_begin()
    xb, yb = train[0][:64], train[1][:64]
    loss = torch.tensor(0.5)
    opt = learn.opt
    dl = learn.data.train_dl
    ds = dl.dataset
    idx_list = list(range(64))
    idx_t = torch.tensor(idx_list)
    sd = h.state_dict
    def sd_updates():  # what the handler writes into the state per training batch
        sd['last_input'], sd['last_target'], sd['train'] = xb, yb, True
        sd['stop_epoch'] = sd['skip_step'] = sd['skip_zero'] = sd['skip_bwd'] = False
        sd['last_output'] = xb
        sd['last_loss'], sd['smooth_loss'] = loss, loss
        sd['last_loss'] = loss
        sd['iteration'] += 1; sd['num_batch'] += 1
    def iterate(it, n=250):
        for _ in it: pass
    rng = range(250)
    def noop(**kwargs): return None
    from fastbook_core.basic_data import DeviceDataLoader
    ddl = learn.data.train_dl
    def per_batch_fetch(): iterate(ddl)
    def per_batch_indexed(): iterate(ddl._indexed(ddl.device))
    return {
        'handler.on_batch_begin (Recorder: lr, mom)': lambda: h.on_batch_begin(xb, yb),
        'handler.on_loss_begin (no callback)': lambda: h.on_loss_begin(xb),
        'handler.on_backward_begin (smooth + Recorder)': lambda: h.on_backward_begin(loss),
        'handler.on_backward_end (no callback)': h.on_backward_end,
        'handler.on_step_end (no callback)': h.on_step_end,
        'handler.on_batch_end (train: no callback)': lambda: h.on_batch_end(loss),
        "handler('loss_begin') alone (an empty event)": lambda: h('loss_begin', call_mets=False),
        'the state-dict writes of one training batch': sd_updates,
        'Recorder.on_backward_begin alone (append, bar comment)': lambda: learn.recorder.on_backward_begin(smooth_loss=loss),
        '_call_and_update of a no-op method (**state, 19 keys)': lambda: h._call_and_update(None, noop, 'x', {}),
        'SmoothenValue.add_value(float)': lambda: h.smoothener.add_value(0.5),
        'torch.tensor(float) (the smoothed loss tensor)': lambda: torch.tensor(0.25),
        'torch.scalar_tensor(float)': lambda: torch.scalar_tensor(0.25),
        'loss.detach().item()': lambda: loss.detach().item(),
        'Recorder.on_batch_begin alone': lambda: learn.recorder.on_batch_begin(train=True),
        'OptimWrapper.lr = the same value (a write, nothing changed)': lambda: setattr(opt, 'lr', opt._lr),
        'OptimWrapper.mom = the same value': lambda: setattr(opt, 'mom', opt._mom),
        'OptimWrapper.step\'s true-wd block with wd=0 (no_grad + loop)': lambda: true_wd_block(opt),
        'OptimWrapper.lr read': lambda: opt.lr,
        'TensorDataset[list of 64] (the whole-batch fetch now)': lambda: ds[idx_list],
        'index_select of x and y by a 64-index tensor': lambda: [t.index_select(0, idx_t) for t in ds.tensors],
        'a training epoch of the DataLoader (fetch now), per batch': per_batch_fetch,
        'a training epoch by DeviceDataLoader._indexed, per batch': per_batch_indexed,
        'silent progress_bar over 250 items, per item / 250': lambda: iterate(progress_bar(rng, parent=pbar)),
        'plain iteration of 250 items, per item / 250': lambda: iterate(rng),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--number', type=int, default=20000)
    p.add_argument('--repeat', type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    for name, f in pieces().items():
        if 'per batch' in name:
            ts = timeit.repeat(f, timer=time.process_time, number=5, repeat=args.repeat)
            print(f'{name:<62} {statistics.median(ts) / 5 / 250 * 1e6:8.2f} µs')
            continue
        n = args.number // 250 if 'per item' in name else args.number
        ts = timeit.repeat(f, timer=time.process_time, number=n, repeat=args.repeat)
        us = statistics.median(ts) / n * 1e6 / (250 if 'per item' in name else 1)
        print(f'{name:<62} {us:8.2f} µs')


if __name__ == '__main__': main()
