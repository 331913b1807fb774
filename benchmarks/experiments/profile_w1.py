"""Where a warm W1 fit spends its time beyond the model's work: cProfile and torch.profiler (issue 29).

    python benchmarks/experiments/profile_w1.py [--epochs 3] [--top 30]

One torch thread. The Learner is warmed by one fit, then profiled over another; the floor loop is profiled the
same way, so the two can be compared function by function (cProfile) and operator by operator (torch.profiler).
"""
import argparse, cProfile, io, os, pstats, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpu_bench as b  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--top', type=int, default=30)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    fns = b.w1(args.epochs)
    for f in fns.values(): f()  # warm
    for name in ('fit', 'floor'):
        pr = cProfile.Profile()
        pr.enable(); fns[name](); pr.disable()
        s = io.StringIO()
        st = pstats.Stats(pr, stream=s).sort_stats('tottime')
        st.print_stats(args.top)
        print(f'=== cProfile, {name}, sorted by own time ===')
        print(s.getvalue())
    from torch.profiler import ProfilerActivity, profile
    for name in ('fit', 'floor'):
        with profile(activities=[ProfilerActivity.CPU]) as prof: fns[name]()
        print(f'=== torch.profiler, {name}: operators by self CPU time ===')
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25, max_name_column_width=50))


if __name__ == '__main__': main()
