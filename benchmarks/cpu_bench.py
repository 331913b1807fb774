"""fastbook_core's fit on the CPU against the fastest hand-written loop, in CPU time and wall time (issue 29).

    nice -n 0 python benchmarks/cpu_bench.py [--rounds 15] [--out benchmarks/results/cpu_YYYY-MM-DD.json] [--quick]
    python benchmarks/report.py benchmarks/results/cpu_2026-12-01.json     # the table of a committed result file

One process, one torch thread (`torch.set_num_threads(1)`), every variant timed with both `time.process_time`
(the CPU time of this process: the measure that counts, since it leaves out the time the machine was taken away by
other processes) and `time.perf_counter` (wall time, printed beside it). Rounds are interleaved after one warm-up
round that is not counted, so a drift in the machine's speed hits every variant of a round alike, and each round
rotates the order (floor, loader, fit; then loader, fit, floor; ...), so that no variant always runs first or right
after the same one; each variant's ratio to the floor is taken per round and summarised by its median.

W1  overhead-bound: MLP 20-32-2, 16k train / 4k valid, bs 64, Adam (betas 0.9, 0.99, no weight decay), 3 epochs
    of training, each followed by validation with loss and accuracy.
      floor   hand-written, indexing the tensors directly: a `randperm` and `x[idx]` per training batch, slices
              `x[i:i+bs]` for validation; no DataLoader
      loader  hand-written over torch DataLoaders (sample by sample, collated)
      fit     `DataBunch.create` + `Learner(..., metrics=[accuracy], silent=True).fit(3, 1e-3)`
W2  compute-bound: a small CNN (3 convs, 16-32-64 channels) on 1x28x28, 2560 train / 640 valid, bs 128, 1 epoch
    of training + validation, the same three variants.
W3  inference: predictions (softmax) and targets for 20k items, bs 128: floor (slices under inference_mode),
    loader (a DataLoader under inference_mode) and `Learner.get_preds`.
MEM peak RSS (ru_maxrss) of a fresh process running W1 each way, minus the same process's RSS before it ran.

The result file (JSON) holds every round's raw times, so benchmarks/report.py computes the ratios and medians from
it (the Performance page runs that code on the committed file); with the machine (CPU model, cores), the torch and
Python versions, the date, the load average before and after, and the conditions.
"""
import argparse, datetime, json, os, platform, resource, subprocess, sys, time
from functools import partial
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastbook_core
from fastbook_core.basic_data import DataBunch
from fastbook_core.basic_train import Learner
from fastbook_core.metrics import accuracy

HERE = os.path.dirname(os.path.abspath(__file__))


# ------------------------------------------------------------------------------------------------ models and data
def mlp(): return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 10))


def make_data(n=20_000, shape=(20,), n_classes=2, seed=0):
    "`(x_train, y_train), (x_valid, y_valid)`: 80% / 20% of `n` synthetic items."
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = (x.flatten(1)[:, 0] > 0).long() if n_classes == 2 else torch.randint(0, n_classes, (n,), generator=g)
    cut = n * 4 // 5
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def adam(params): return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))


def same_model(model_fn):
    "A function making copies of one model (same initial weights) for every variant."
    torch.manual_seed(0)
    init = model_fn().state_dict()
    def make():
        m = model_fn(); m.load_state_dict(init); return m
    return make


# ------------------------------------------------------------------------------------------------ hand-written loops
def floor_epochs(model, opt, train, valid, bs, epochs):
    "The floor: index the tensors directly (no DataLoader); train, then validation loss and accuracy, each epoch."
    (xt, yt), (xv, yv) = train, valid
    loss_func = nn.CrossEntropyLoss()
    res = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(len(xt) // bs):
            idx = perm[i * bs:(i + 1) * bs]
            loss = loss_func(model(xt[idx]), yt[idx])
            loss.backward(); opt.step(); opt.zero_grad()
        model.eval()
        tot_loss, tot_acc = torch.zeros(()), torch.zeros(())
        with torch.no_grad():
            for i in range(0, len(xv), bs):
                xb, yb = xv[i:i + bs], yv[i:i + bs]
                out = model(xb)
                tot_loss += loss_func(out, yb) * len(yb)
                tot_acc += (out.argmax(1) == yb).float().sum()
        res.append(((tot_loss / len(xv)).item(), (tot_acc / len(xv)).item()))
    return res


def loader_epochs(model, opt, train, valid, bs, epochs):
    "The usual hand-written loop: torch DataLoaders (per-sample fetching and collation), otherwise as the floor."
    tdl = DataLoader(TensorDataset(*train), batch_size=bs, shuffle=True, drop_last=True)
    vdl = DataLoader(TensorDataset(*valid), batch_size=bs)
    loss_func = nn.CrossEntropyLoss()
    res = []
    for _ in range(epochs):
        model.train()
        for xb, yb in tdl:
            loss = loss_func(model(xb), yb)
            loss.backward(); opt.step(); opt.zero_grad()
        model.eval()
        tot_loss, tot_acc, n = torch.zeros(()), torch.zeros(()), 0
        with torch.no_grad():
            for xb, yb in vdl:
                out = model(xb)
                tot_loss += loss_func(out, yb) * len(yb)
                tot_acc += (out.argmax(1) == yb).float().sum()
                n += len(yb)
        res.append(((tot_loss / n).item(), (tot_acc / n).item()))
    return res


def make_learner(model, train, valid, bs, **kwargs):
    data = DataBunch.create(TensorDataset(*train), TensorDataset(*valid), bs=bs, device='cpu', **kwargs)
    return Learner(data, model, opt_func=partial(torch.optim.Adam, betas=(0.9, 0.99)), wd=0., metrics=[accuracy],
                   silent=True)


# ------------------------------------------------------------------------------------------------ workloads
def training_workload(model_fn, train, valid, bs, epochs):
    "floor / loader / fit of `epochs` epochs each, on copies of one model."
    make = same_model(model_fn)
    fm, lm = make(), make()
    fo, lo = adam(fm.parameters()), adam(lm.parameters())
    learn = make_learner(make(), train, valid, bs)
    return {'floor': lambda: floor_epochs(fm, fo, train, valid, bs, epochs),
            'loader': lambda: loader_epochs(lm, lo, train, valid, bs, epochs),
            'fit': lambda: learn.fit(epochs, 1e-3)}


def w1(epochs=3):
    return training_workload(mlp, *make_data(), bs=64, epochs=epochs)


def w2(epochs=1):
    return training_workload(cnn, *make_data(n=3_200, shape=(1, 28, 28), n_classes=10), bs=128, epochs=epochs)


def w3():
    (x, y), _ = make_data(n=25_000)  # 20k items to predict
    model = same_model(mlp)(); model.eval()
    bs = 128
    ds = TensorDataset(x, y)
    learn = Learner(DataBunch.create(ds, ds, bs=bs, device='cpu'), model, silent=True)
    def floor():
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), bs): outs.append(model(x[i:i + bs]).softmax(1))
        return torch.cat(outs), y.clone()
    def loader():
        outs, ys = [], []
        with torch.inference_mode():
            for xb, yb in DataLoader(ds, batch_size=bs):
                outs.append(model(xb).softmax(1)); ys.append(yb)
        return torch.cat(outs), torch.cat(ys)
    return {'floor': floor, 'loader': loader, 'fit': lambda: learn.get_preds()}


WORKLOADS = {
    'W1': ('MLP 20-32-2, 16k train / 4k valid, bs 64, Adam, 3 epochs of training + validation loss and accuracy', w1),
    'W2': ('small CNN (16-32-64 convs) on 1x28x28, 2560 train / 640 valid, bs 128, Adam, 1 epoch + validation', w2),
    'W3': ('predictions for 20k items, bs 128 (fit = Learner.get_preds)', w3),
}
VARIANTS = {'floor': 'hand-written, tensors indexed directly (no DataLoader)',
            'loader': 'hand-written over torch DataLoaders', 'fit': 'fastbook_core (fit, or get_preds for W3)'}


# ------------------------------------------------------------------------------------------------ timing
def measure(f) -> tuple:
    "(CPU seconds, wall seconds) of one call of `f`."
    c, w = time.process_time(), time.perf_counter()
    f()
    return time.process_time() - c, time.perf_counter() - w


def round_order(names: list, r: int) -> list:
    "The order of round `r`: `names` rotated by `r`, so that no variant always runs first, or right after another."
    k = r % len(names)
    return names[k:] + names[:k]


def interleaved(fns: dict, rounds: int) -> dict:
    "Time `fns` (name -> callable) in interleaved rounds after one uncounted warm-up round: name -> {cpu_s, wall_s}."
    for f in fns.values(): f()
    res = {k: {'cpu_s': [], 'wall_s': []} for k in fns}
    for r in range(rounds):
        for k in round_order(list(fns), r):
            c, w = measure(fns[k])
            res[k]['cpu_s'].append(c); res[k]['wall_s'].append(w)
    return res


MEM_CHILD = '''
import json, resource, sys, torch
sys.path.insert(0, {here!r})
import cpu_bench as b
torch.set_num_threads(1)
fns = b.w1()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fns[sys.argv[1]]()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{'peak_mb': after / 1024, 'before_mb': before / 1024}}))
'''


def peak_memory() -> dict:
    "Peak RSS (MB) of a fresh process running W1 each way, and the same process's peak before it ran."
    code = MEM_CHILD.format(here=HERE)
    out = {}
    for k in VARIANTS:
        r = subprocess.run([sys.executable, '-c', code, k], capture_output=True, text=True, check=True)
        out[k] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


# ------------------------------------------------------------------------------------------------ the machine
def cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try: return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=HERE, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError): return None


def machine() -> dict:
    return {'cpu': cpu_model(), 'cores': os.cpu_count(), 'arch': platform.machine(), 'os': platform.platform(),
            'torch': torch.__version__, 'python': platform.python_version(), 'fastbook_core': fastbook_core.__version__,
            'commit': git_commit(), 'torch_threads': torch.get_num_threads(), 'nice': os.nice(0)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=15, help='timed rounds per workload (after a warm-up round)')
    p.add_argument('--out', help='the JSON file to write (default benchmarks/results/cpu_<date>.json)')
    p.add_argument('--only', choices=list(WORKLOADS), action='append', help='these workloads only (repeatable)')
    p.add_argument('--no-mem', action='store_true', help='skip the peak-memory subprocesses')
    p.add_argument('--quick', action='store_true', help='3 rounds, W1 of one epoch: a smoke test, not a result')
    p.add_argument('--conditions', default='', help='a sentence on the machine\'s state, stored in the file')
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rounds = 3 if args.quick else args.rounds
    today = datetime.date.today().isoformat()
    out = args.out or os.path.join(HERE, 'results', f'cpu_{today}{"_quick" if args.quick else ""}.json')
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = {'benchmark': 'benchmarks/cpu_bench.py', 'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds'), 'machine': machine(), 'rounds': rounds, 'quick': args.quick,
        'variants': VARIANTS, 'workloads': {}}
    for name in args.only or list(WORKLOADS):
        desc, make = WORKLOADS[name]
        fns = make(1) if (args.quick and name == 'W1') else make()
        print(f'{name}: {desc} ...', flush=True)
        result['workloads'][name] = {'description': desc, 'times': interleaved(fns, rounds)}
    if not args.no_mem: result['memory'] = {'workload': 'W1', 'rss_mb': peak_memory()}
    load_after = os.getloadavg()
    result['conditions'] = {
        'note': args.conditions, 'load_average_before': list(load_before), 'load_average_after': list(load_after),
        'seconds': round(time.perf_counter() - started, 1),
        'method': 'one process, torch.set_num_threads(1), interleaved rounds (the order rotated each round) after one '
                  'warm-up round, CPU time by '
                  'time.process_time and wall time by time.perf_counter; ratios per round, then their median'}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f: json.dump(result, f, indent=1)
    sys.path.insert(0, HERE)
    import report
    print(report.text_report(result))
    print(f'written: {out}')


if __name__ == '__main__': main()
