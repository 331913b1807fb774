"""The cost of fastbook_core's training loop against a hand-written PyTorch loop, in one process.

    python benchmarks/loop_overhead.py [--rounds 7] [--threads 1] [--quick]

Each workload trains the same model on the same data with the same optimizer (Adam, no weight decay) both ways.
Rounds are interleaved (raw, fit, raw, fit...) after one warm-up round that is not counted, so drifts in the
machine's speed hit both sides alike. Each ratio is printed as min / median / max over the rounds; lower is
better, 1.00 is the hand-written loop's speed. Peak memory (RSS) is measured in fresh subprocesses.

W1  overhead-bound: an MLP 20-32-2 on 20k synthetic samples (16k train), bs 64, train + validation with loss and
    accuracy each epoch. Budgets: fit/raw <= 1.10 with the display off, <= 1.15 with the text display on.
    Also with whole-batch fetching (DataBunch's default for in-memory tensors): the goal is < 1.
W2  compute-bound: a small CNN on 28x28 inputs, bs 128. Budget: within noise of 1.0.
W3  inference: get_preds over 20k samples against a torch.inference_mode() loop. Budget <= 1.10.
LR  lr_find(num_it=100) against 100 raw training batches plus restoring the weights and optimizer.
MEM peak RSS of one W1 epoch: fit's no more than the raw loop's + 50 MB.
"""
import argparse, contextlib, copy, io, os, platform, resource, statistics, subprocess, sys, time
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastbook_core
from fastbook_core.basics import *


def make_data(n=20_000, n_in=20, n_classes=2, seed=0, shape=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *(shape or (n_in,)), generator=g)
    y = (x.flatten(1)[:, 0] > 0).long() if n_classes == 2 else torch.randint(0, n_classes, (n,), generator=g)
    cut = int(n * 0.8)
    return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])


def mlp(): return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))


def opt_func(params): return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))


def raw_epoch(model, train_ds, valid_ds, bs, opt):
    "The hand-written loop: torch DataLoaders, train, then validation with loss and accuracy."
    loss_func = nn.CrossEntropyLoss()
    model.train()
    for xb, yb in DataLoader(train_ds, batch_size=bs, shuffle=True, drop_last=True):
        loss = loss_func(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    tot_loss, tot_acc, n = 0., 0., 0
    with torch.no_grad():
        for xb, yb in DataLoader(valid_ds, batch_size=bs * 2):
            out = model(xb)
            tot_loss += loss_func(out, yb).item() * len(yb)
            tot_acc += (out.argmax(1) == yb).float().sum().item()
            n += len(yb)
    return tot_loss / n, tot_acc / n


def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t


def make_learner(model_fn, train_ds, valid_ds, bs, silent=True, batched=False):
    data = DataBunch.create(train_ds, valid_ds, bs=bs, device='cpu', batched_fetch=batched)
    return Learner(data, model_fn(), opt_func=partial(torch.optim.Adam, betas=(0.9, 0.99)), metrics=[accuracy],
                   wd=0., silent=silent)


def compare(name, variants, rounds):
    "Time `variants` (name -> callable) interleaved; print each variant's ratio to the first."
    for f in variants.values(): f()  # warm-up round, not counted
    times = {k: [] for k in variants}
    for _ in range(rounds):
        for k, f in variants.items(): times[k].append(timed(f))
    base = list(variants)[0]
    print(f'\n{name}: {base} median {statistics.median(times[base]) * 1e3:.0f} ms')
    results = {}
    for k in list(variants)[1:]:
        ratios = sorted(t / b for t, b in zip(times[k], times[base]))
        results[k] = ratios
        print(f'  {k:<60} ratio min {ratios[0]:.3f}  median {statistics.median(ratios):.3f}  max {ratios[-1]:.3f}')
    return results


def w1(rounds):
    train_ds, valid_ds = make_data()
    raw_model = mlp(); raw_opt = opt_func(raw_model.parameters())
    silent = make_learner(mlp, train_ds, valid_ds, 64)
    text = make_learner(mlp, train_ds, valid_ds, 64, silent=False)
    batched = make_learner(mlp, train_ds, valid_ds, 64, batched=True)
    sink = io.StringIO()
    def with_text():
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink): text.fit(1, 1e-3)
    return compare('W1 overhead-bound MLP 20-32-2, 16k train / 4k valid, bs 64, one epoch', {
        'raw loop (torch DataLoader)': lambda: raw_epoch(raw_model, train_ds, valid_ds, 64, raw_opt),
        'fit, display off (budget 1.10)': lambda: silent.fit(1, 1e-3),
        'fit, text display on (budget 1.15)': with_text,
        'fit, whole-batch fetching, display off': lambda: batched.fit(1, 1e-3),
    }, rounds)


def w2(rounds):
    train_ds, valid_ds = make_data(n=3_200, n_classes=10, shape=(1, 28, 28))
    raw_model = cnn(); raw_opt = opt_func(raw_model.parameters())
    learn = make_learner(cnn, train_ds, valid_ds, 128)
    return compare('W2 compute-bound CNN on 1x28x28, 2560 train / 640 valid, bs 128, one epoch', {
        'raw loop (torch DataLoader)': lambda: raw_epoch(raw_model, train_ds, valid_ds, 128, raw_opt),
        'fit, display off (budget ~1.0)': lambda: learn.fit(1, 1e-3),
    }, rounds)


def w3(rounds):
    ds, _ = make_data(n=25_000)  # 20k items to predict
    model = mlp(); model.eval()
    learn = Learner(DataBunch.create(ds, ds, bs=64, val_bs=128, device='cpu'), model, silent=True)
    per_item = Learner(DataBunch.create(ds, ds, bs=64, val_bs=128, device='cpu', batched_fetch=False), model, silent=True)
    def raw():
        outs, ys = [], []
        with torch.inference_mode():
            for xb, yb in DataLoader(ds, batch_size=128):
                outs.append(model(xb).softmax(1)); ys.append(yb)
        return torch.cat(outs), torch.cat(ys)
    return compare('W3 inference: predictions for 20k items, bs 128', {
        'raw torch.inference_mode() loop': raw,
        'get_preds, per-item fetching like the raw loop (budget 1.10)': lambda: per_item.get_preds(),
        'get_preds, whole-batch fetching (the default)': lambda: learn.get_preds(),
    }, rounds)


def lr(rounds):
    train_ds, valid_ds = make_data()
    raw_model = mlp(); raw_opt = opt_func(raw_model.parameters())
    learn = make_learner(mlp, train_ds, valid_ds, 64)
    def raw_100():
        snap = copy.deepcopy(raw_model.state_dict()), copy.deepcopy(raw_opt.state_dict())
        loss_func = nn.CrossEntropyLoss()
        for i, (xb, yb) in enumerate(DataLoader(train_ds, batch_size=64, shuffle=True, drop_last=True)):
            if i == 100: break
            loss_func(raw_model(xb), yb).backward(); raw_opt.step(); raw_opt.zero_grad()
        raw_model.load_state_dict(snap[0]); raw_opt.load_state_dict(snap[1])
    from fastbook_core.callbacks.misc import StopAfterNBatches
    fit_learn = make_learner(mlp, train_ds, valid_ds, 64)
    def fit_100():
        snap = copy.deepcopy(fit_learn.model.state_dict())
        fit_learn.fit(1, 1e-3, callbacks=StopAfterNBatches(100))
        fit_learn.model.load_state_dict(snap)
    return compare('LR lr_find(num_it=100) on W1', {
        '100 raw batches + restore': raw_100,
        'lr_find(num_it=100)': lambda: learn.lr_find(num_it=100, stop_div=False),
        'fit for 100 batches + restore (the loop alone)': fit_100,
    }, rounds)


MEM_CHILD = '''
import resource, sys, torch
sys.path.insert(0, {here!r})
from loop_overhead import *
torch.set_num_threads(1)
train_ds, valid_ds = make_data()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if sys.argv[1] == 'raw':
    m = mlp(); raw_epoch(m, train_ds, valid_ds, 64, opt_func(m.parameters()))
else:
    make_learner(mlp, train_ds, valid_ds, 64).fit(1, 1e-3)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
'''


def mem():
    here = os.path.dirname(os.path.abspath(__file__))
    code = MEM_CHILD.format(here=here)
    peak = {k: float(subprocess.run([sys.executable, '-c', code, k], capture_output=True, text=True, check=True).stdout)
            for k in ('raw', 'fit')}
    print(f"\nMEM peak RSS of a process running one W1 epoch: raw {peak['raw']:.0f} MB, fit {peak['fit']:.0f} MB, "
          f"difference {peak['fit'] - peak['raw']:+.0f} MB (budget +50 MB)")
    return peak


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--quick', action='store_true', help='3 rounds, for a smoke test')
    args = p.parse_args()
    rounds = 3 if args.quick else args.rounds
    torch.set_num_threads(args.threads)
    print(f'fastbook_core {fastbook_core.__version__}, torch {torch.__version__}, Python {platform.python_version()}, '
          f'{platform.machine()} {os.cpu_count()} cores, {args.threads} torch thread(s), {rounds} rounds')
    w1(rounds); w2(rounds); w3(rounds); lr(rounds); mem()


if __name__ == '__main__': main()
