"""fastbook_core's fit on a GPU against hand-written loops, in one process (issue 19).

    python benchmarks/gpu_loop.py [--rounds 7] [--device cuda] [--quick] [--profile] [--only mlp|cnn]
    python benchmarks/gpu_loop.py --device cpu --quick          # smoke test on a machine without a GPU

Two workloads, each trained one epoch per round (training, then validation with loss and accuracy), five ways:

  floor     hand-written, the data already on the device: a random permutation on the device, each batch indexed
            there (no copy); validation sums loss and accuracy on the device and reads them once
  gather    hand-written, the data on the CPU: each batch gathered there (`x[idx]`) and copied (non_blocking)
  loader    hand-written over a torch DataLoader (per-sample collation, pin_memory on CUDA, non_blocking copies)
  fit       fastbook_core: DataBunch.create(...) and Learner.fit, metrics=[accuracy], display off
  fit_dev   the same with DataBunch.create(..., on_device=True): the data kept on the device

  MLP  overhead-bound: 20-256-256-2, 64k train / 16k valid, bs 256, Adam (fp32)
  CNN  ResNet-style, 3x32x32 inputs, 6 conv+BN blocks (32-32-64-64-128-128, residual where shapes allow),
       10 classes, 10,240 train / 2,560 valid, bs 256, Adam, mixed precision (fp16 + GradScaler on CUDA,
       bf16 autocast on the CPU; `to_fp16()` for fit)

Every variant gets the same model (same initial weights), optimizer (Adam, betas (0.9, 0.99), lr 1e-3, no weight
decay) and data. Rounds are interleaved (floor, gather, loader, fit, fit_dev, floor, ...) after one warm-up round
that is not counted; each timing is CUDA-synchronised at both ends. Printed per variant: the median time per
epoch, per training batch (the epoch's time, validation included, divided by its training batches) and the
ratio to the floor (min / median / max of the per-round ratios). Goal (issue 19): fit within 1.10x the floor for
both workloads on a GPU.

--profile runs torch.profiler (CPU and, where there is one, CUDA activities) over a few training batches of fit
and of the floor loop, and prints the top operators of each and the kernel launches per batch.
"""
import argparse, contextlib, os, platform, statistics, sys, time
from functools import partial
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import fastbook_core
from fastbook_core.basics import *
from fastbook_core.callback import Callback


# ------------------------------------------------------------------------------------------------ models and data
def mlp(): return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))


class ConvBN(nn.Module):
    "conv 3x3 + BatchNorm + ReLU, with a residual connection when the shapes allow it."
    def __init__(self, ni, nf, stride=1):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(nf)
        self.res = ni == nf and stride == 1
    def forward(self, x):
        out = F.relu(self.bn(self.conv(x)))
        return out + x if self.res else out


def cnn():
    chans = [(3, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
    return nn.Sequential(*[ConvBN(*c) for c in chans], nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))


def make_data(n, shape, n_classes, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = (x.flatten(1)[:, 0] > 0).long() if n_classes == 2 else torch.randint(0, n_classes, (n,), generator=g)
    cut = n * 4 // 5
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def adam(params): return torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.99))


# ------------------------------------------------------------------------------------------------ hand-written loops
class Raw:
    "A hand-written loop: one epoch of training then validation, with `batches` giving the data."
    def __init__(self, model, device, amp, batches):
        self.model, self.device, self.amp, self.batches = model.to(device), device, amp, batches
        self.opt = adam(self.model.parameters())
        self.dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == 'cuda')
        self.loss_func = nn.CrossEntropyLoss()

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.amp else contextlib.nullcontext()

    def train_step(self, xb, yb):
        with self.autocast(): out = self.model(xb)
        loss = self.loss_func(out.float(), yb)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)

    def epoch(self):
        self.model.train()
        for xb, yb in self.batches(train=True): self.train_step(xb, yb)
        self.model.eval()
        tot_loss = torch.zeros((), device=self.device); tot_acc = torch.zeros((), device=self.device); n = 0
        with torch.inference_mode():
            for xb, yb in self.batches(train=False):
                with self.autocast(): out = self.model(xb)
                tot_loss += self.loss_func(out.float(), yb) * len(yb)
                tot_acc += (out.argmax(1) == yb).float().sum()
                n += len(yb)
        return (tot_loss / n).item(), (tot_acc / n).item()  # the one sync of the epoch


def floor_batches(train, valid, bs, device):
    "The data on the device: a permutation drawn there, each batch indexed there."
    (xt, yt), (xv, yv) = [(x.to(device), y.to(device)) for x, y in (train, valid)]
    def batches(train: bool):
        if train:
            perm = torch.randperm(len(xt), device=device)
            for i in range(len(xt) // bs):
                idx = perm[i * bs:(i + 1) * bs]
                yield xt[idx], yt[idx]
        else:
            for i in range(0, len(xv), bs): yield xv[i:i + bs], yv[i:i + bs]
    return batches


def gather_batches(train, valid, bs, device):
    "The data on the CPU: each batch gathered there and copied."
    (xt, yt), (xv, yv) = train, valid
    def batches(train: bool):
        if train:
            perm = torch.randperm(len(xt))
            for i in range(len(xt) // bs):
                idx = perm[i * bs:(i + 1) * bs]
                yield xt[idx].to(device, non_blocking=True), yt[idx].to(device, non_blocking=True)
        else:
            for i in range(0, len(xv), bs):
                yield xv[i:i + bs].to(device, non_blocking=True), yv[i:i + bs].to(device, non_blocking=True)
    return batches


def loader_batches(train, valid, bs, device):
    "torch DataLoaders (sample by sample, collated), pinned on CUDA, copied non_blocking."
    pin = device.type == 'cuda'
    tdl = DataLoader(TensorDataset(*train), batch_size=bs, shuffle=True, drop_last=True, pin_memory=pin)
    vdl = DataLoader(TensorDataset(*valid), batch_size=bs, pin_memory=pin)
    def batches(train: bool):
        for xb, yb in (tdl if train else vdl): yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
    return batches


# ------------------------------------------------------------------------------------------------ fastbook_core
def make_learner(model, train, valid, bs, device, amp, on_device=False):
    data = DataBunch.create(TensorDataset(*train), TensorDataset(*valid), bs=bs, device=device, on_device=on_device)
    learn = Learner(data, model, opt_func=partial(torch.optim.Adam, betas=(0.9, 0.99)), wd=0., metrics=[accuracy],
                    silent=True)
    if amp: learn.to_fp16()
    return learn


# ------------------------------------------------------------------------------------------------ timing
def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def timed(f, device):
    sync(device); t = time.perf_counter(); f(); sync(device)
    return time.perf_counter() - t


WORKLOADS = {
    # name: (title, model, (items, bs), (items, bs) with --quick, input shape, classes, amp)
    'mlp': ('MLP 20-256-256-2 (overhead-bound), fp32', mlp, (80_000, 256), (8_000, 256), (20,), 2, False),
    # --quick is a smoke test, mostly on CPUs, where bf16 autocast runs about 15 times slower than float32
    'cnn': ('ResNet-style CNN, 6 conv+BN blocks, 3x32x32, mixed precision', cnn, (12_800, 256), (40, 16), (3, 32, 32),
            10, True),
}


def variants(name, device, quick):
    title, model_fn, full, small, shape, n_classes, amp = WORKLOADS[name]
    n, bs = small if quick else full
    train, valid = make_data(n, shape, n_classes)
    torch.manual_seed(0)
    init = model_fn().state_dict()
    def model():
        m = model_fn(); m.load_state_dict(init); return m
    res = {}
    for key, make in (('floor', floor_batches), ('gather', gather_batches), ('loader', loader_batches)):
        res[key] = Raw(model(), device, amp, make(train, valid, bs, device)).epoch
    fit = make_learner(model(), train, valid, bs, device, amp)
    fit_dev = make_learner(model(), train, valid, bs, device, amp, on_device=True)
    res['fit'] = lambda: fit.fit(1, 1e-3)
    res['fit_dev'] = lambda: fit_dev.fit(1, 1e-3)
    n_batches = len(train[0]) // bs
    prec = '' if not amp else ' (fp16 + GradScaler)' if device.type == 'cuda' else ' (bf16 autocast)'
    desc = (f'{title}{prec}: {len(train[0]):,} train / {len(valid[0]):,} valid, bs {bs}, {n_batches} training + '
            f'{-(-len(valid[0]) // bs)} validation batches per epoch')
    return desc, res, n_batches, (fit, res['floor'].__self__)


LABELS = {'floor': 'floor: hand-written, data on the device', 'gather': 'hand-written, gather on CPU + copy',
          'loader': 'hand-written, torch DataLoader', 'fit': 'fastbook_core fit (default)',
          'fit_dev': 'fastbook_core fit, on_device=True'}


def compare(name, device, rounds, quick):
    desc, fns, n_batches, _ = variants(name, device, quick)
    for f in fns.values(): timed(f, device)  # warm-up round (cuDNN, allocator, lazy state), not counted
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items(): times[k].append(timed(f, device))
    print(f'\n{name.upper()}  {desc}')
    print(f'  {"variant":<42} {"ms/epoch":>9} {"ms/batch":>9}   ratio to floor: min / median / max')
    res = {}
    for k, ts in times.items():
        med = statistics.median(ts)
        ratios = sorted(t / b for t, b in zip(ts, times['floor']))
        res[k] = statistics.median(ratios)
        rs = '' if k == 'floor' else f'{ratios[0]:.3f} / {statistics.median(ratios):.3f} / {ratios[-1]:.3f}'
        print(f'  {LABELS[k]:<42} {med * 1e3:9.1f} {med * 1e3 / n_batches:9.3f}   {rs}')
    ok = all(res[k] <= 1.10 for k in ('fit', 'fit_dev'))
    verdict = ('met' if ok else 'not met') if device.type == 'cuda' else 'a GPU goal: not judged on the CPU'
    print(f'  goal: fit within 1.10x the floor -> {verdict} (fit {res["fit"]:.2f}x, on_device {res["fit_dev"]:.2f}x)')
    return res


# ------------------------------------------------------------------------------------------------ profiling
class _Step(Callback):
    "Step the profiler after each training batch; stop the fit once it has seen `n` batches."
    def __init__(self, prof, n): self.prof, self.n, self.i = prof, n, 0
    def on_batch_end(self, train, **kwargs):
        if not train: return
        self.prof.step(); self.i += 1
        if self.i >= self.n: return {'stop_epoch': True, 'stop_training': True, 'skip_validate': True}


def profile(name, device, quick, warmup=3, active=10):
    from torch.profiler import ProfilerActivity, profile as tprofile, schedule
    _, fns, n_batches, (learn, raw) = variants(name, device, quick)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    sort = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    n = 1 + warmup + active
    learn.fit(1, 1e-3); raw.epoch()  # warm-up outside the profiler
    for label, run in (('fit', None), ('floor (hand-written, data on the device)', raw)):
        with tprofile(activities=acts, schedule=schedule(wait=1, warmup=warmup, active=active)) as prof:
            if run is None: learn.fit(-(-n // n_batches), 1e-3, callbacks=[_Step(prof, n)])  # epochs enough for n batches
            else:
                raw.model.train()
                for i, (xb, yb) in enumerate(b for _ in range(-(-n // n_batches)) for b in raw.batches(train=True)):
                    raw.train_step(xb, yb); prof.step()
                    if i + 1 >= n: break
            sync(device)
        ka = prof.key_averages()
        launches = sum(e.count for e in ka if e.key in ('cudaLaunchKernel', 'cuLaunchKernel', 'cudaLaunchKernelExC'))
        cpu_total = sum(e.self_cpu_time_total for e in ka) / active
        print(f'\n--- {name.upper()} {label}: {active} training batches profiled; per batch: '
              f'{cpu_total / 1e3:.2f} ms of CPU time in ops, {launches / active:.0f} kernel launches')
        print(ka.table(sort_by=sort, row_limit=20, max_name_column_width=60))
        if device.type == 'cuda':
            print(ka.table(sort_by='self_cpu_time_total', row_limit=15, max_name_column_width=60))


# ------------------------------------------------------------------------------------------------ main
def describe(device) -> str:
    head = (f'fastbook_core {fastbook_core.__version__}, torch {torch.__version__}, Python {platform.python_version()}, '
            f'{platform.machine()} {os.cpu_count()} cores')
    if device.type == 'cuda':
        p = torch.cuda.get_device_properties(device)
        return (f'{head}\ndevice: {torch.cuda.get_device_name(device)} ({p.total_memory / 2**30:.0f} GiB), '
                f'CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}')
    return f'{head}\ndevice: CPU, {torch.get_num_threads()} torch thread(s) (a smoke test: the numbers that matter are a GPU\'s)'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--rounds', type=int, default=7)
    p.add_argument('--quick', action='store_true', help='small data and 3 rounds: a smoke test')
    p.add_argument('--profile', action='store_true', help='profile fit and the floor loop instead of timing them')
    p.add_argument('--only', choices=list(WORKLOADS), help='one workload only')
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: torch sees no CUDA device here (use --device cpu for a smoke test)')
    if device.type == 'cpu': torch.set_num_threads(1)
    rounds = 3 if args.quick else args.rounds
    names = [args.only] if args.only else list(WORKLOADS)
    print(describe(device))
    if args.profile:
        for name in names: profile(name, device, args.quick)
        return
    print(f'{rounds} rounds after a warm-up round; one epoch per variant per round, interleaved')
    for name in names: compare(name, device, rounds, args.quick)


if __name__ == '__main__': main()
