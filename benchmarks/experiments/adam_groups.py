"""The optimizer step of W1's MLP with one parameter group (the floor) or two (OptimWrapper's split), per torch
implementation (for-loop, foreach, fused), in CPU time per step, and whether each gives bitwise the weights of the
for-loop step after 200 steps.

    nice -n 0 python benchmarks/experiments/adam_groups.py [--steps 2000] [--repeat 7]
"""
import argparse, os, statistics, sys, time
import torch
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpu_bench as b  # noqa: E402


def setup(groups: int, **kw):
    m = b.same_model(b.mlp)()
    ps = list(m.parameters())
    pgs = [{'params': ps}] if groups == 1 else [{'params': ps[::2]}, {'params': ps[1::2]}]  # weights, biases
    opt = torch.optim.Adam(pgs, lr=1e-3, betas=(0.9, 0.99), **kw)
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(p.shape, generator=g) for p in ps]
    for p, gr in zip(ps, grads): p.grad = gr.clone()
    return m, opt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=2000)
    p.add_argument('--repeat', type=int, default=7)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ref, _ = setup(1)
    ref_opt = _
    for _ in range(200): ref_opt.step()
    for groups in (1, 2):
        for name, kw in (('for-loop', {'foreach': False}), ('foreach', {'foreach': True}), ('fused', {'fused': True})):
            m, opt = setup(groups, **kw)
            for _ in range(200): opt.step()
            exact = all(torch.equal(a, c) for a, c in zip(m.parameters(), ref.parameters()))
            ts = []
            for _ in range(args.repeat):
                t = time.process_time()
                for _ in range(args.steps): opt.step()
                ts.append((time.process_time() - t) / args.steps * 1e6)
            print(f'{groups} group(s), {name:<9} {statistics.median(ts):7.1f} µs/step   bitwise as 1 group for-loop: {exact}')


if __name__ == '__main__': main()
