"""F2: the epoch's index as torch's RandomSampler draws it, kept as a tensor: the same indices and the same random state
afterwards as basic_data._epoch_index today (global generator or the loader's own, drop_last or not), and its cost.

    nice -n 0 python benchmarks/experiments/epoch_index_check.py
"""
import os, statistics, sys, time, timeit
import torch
from torch.utils.data import TensorDataset

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]
import cpu_bench as b, w1_candidates as c  # noqa: E402
from fastbook_core import basic_data  # noqa: E402
torch.set_num_threads(1)
tr, va = b.make_data()
for gen in (None, torch.Generator().manual_seed(3)):
    for drop in (True, False):
        dl = basic_data.make_loader(TensorDataset(*tr), 64, shuffle=True, drop_last=drop, generator=gen)
        torch.manual_seed(5); st = None if gen is None else gen.get_state()
        a = c._orig_epoch_index(dl); after_a = torch.get_rng_state() if gen is None else gen.get_state()
        torch.manual_seed(5)
        if gen is not None: gen.set_state(st)
        b2 = c.epoch_index_randperm(dl); after_b = torch.get_rng_state() if gen is None else gen.get_state()
        print('generator' if gen is not None else 'global rng', 'drop_last', drop, 'same idx', torch.equal(a[0], b2[0]), a[1] == b2[1], 'same rng after', torch.equal(after_a, after_b))
dl = basic_data.make_loader(TensorDataset(*tr), 64, shuffle=True, drop_last=True)
for name, f in [('_epoch_index now', lambda: c._orig_epoch_index(dl)), ('F2', lambda: c.epoch_index_randperm(dl))]:
    ts = timeit.repeat(f, timer=time.process_time, number=100, repeat=5)
    print(f'{name:<20} {statistics.median(ts)/100*1e6:7.0f} us per epoch = {statistics.median(ts)/100*1e6/250:.1f} us per training batch')
