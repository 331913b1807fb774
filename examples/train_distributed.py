"""Train the digits CNN with DistributedDataParallel.

One machine, two processes (CPU: gloo; GPUs: one process per GPU, nccl):
    torchrun --nproc_per_node=2 examples/train_distributed.py --epochs 4
Several machines: add --nnodes, --node_rank, --master_addr and --master_port (see the distributed docs page).
"""
import argparse
from pathlib import Path
from fastbook_core.basics import *
from fastbook_core.datasets import digits_data
from fastbook_core.cli import digits_cnn
import fastbook_core.distributed  # noqa: F401  (adds Learner.to_distributed)

p = argparse.ArgumentParser()
p.add_argument('--epochs', type=int, default=4)
p.add_argument('--lr', type=float, default=1e-2)
p.add_argument('--bs', type=int, default=32, help='batch size per process')
p.add_argument('--out', type=Path, default=Path('out_distributed'))
args = p.parse_args()

set_seed(42)  # the same initial weights in every process (DDP also broadcasts rank 0's)
learn = Learner(digits_data(bs=args.bs, device='cpu'), digits_cnn(), metrics=[accuracy], path=args.out, model_dir='.')
learn.to_distributed()
learn.fit_one_cycle(args.epochs, args.lr)
learn.save('digits_cnn')  # written by rank 0 only, without DDP's `module.` prefix
if rank_distrib() == 0: print(f'accuracy: {learn.recorder.metrics[-1][0]:.4f}')
