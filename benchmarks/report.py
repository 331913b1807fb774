"""The reporting side of benchmarks/cpu_bench.py: from a result file's raw times to ratios, tables and a chart.

    python benchmarks/report.py benchmarks/results/cpu_2026-12-01.json

No timing happens here: everything is computed from the per-round times stored in the file, so that the
Performance page (nbs/11_performance.ipynb) and a reader can check the table against the run that wrote it.
Each variant's ratio to the floor is taken round by round (the same round's floor), then summarised by its median
(min and max beside it); the median time per variant is the median over the rounds.
"""
import json, statistics, sys

MEASURES = {'cpu_s': 'CPU time', 'wall_s': 'wall time'}
GOAL, STRETCH = 1.10, 1.03  # issue 29: W1 fit <= 1.10x the floor in CPU time (stretch 1.03x)


def check_result(res: dict) -> dict:
    "`res` if it is a result file's content, else a `ValueError` naming what is missing."
    if not isinstance(res, dict): raise ValueError(f"a benchmark result is a dict, not a {type(res).__name__}.")
    for k in ('machine', 'workloads', 'date', 'rounds'):
        if k not in res: raise ValueError(f"the result has no {k!r}: is it a file benchmarks/cpu_bench.py wrote?")
    for name, w in res['workloads'].items():
        times = w.get('times') if isinstance(w, dict) else None
        if not isinstance(times, dict) or 'floor' not in times:
            raise ValueError(f"workload {name} has no times for the floor, the variant every ratio is taken against.")
        n = {len(t[m]) for t in times.values() for m in MEASURES}
        if len(n) != 1 or 0 in n:
            raise ValueError(f"workload {name}: the variants have different numbers of rounds ({sorted(n)}), or none; "
                             "ratios are taken round by round, so every variant needs every round.")
    return res


def load(path) -> dict:
    "The checked content of result file `path`."
    with open(path) as f: return check_result(json.load(f))


def round_ratios(times: dict, variant: str, measure: str = 'cpu_s', base: str = 'floor') -> list:
    "`variant`'s time over `base`'s, round by round, in `measure` ('cpu_s' or 'wall_s')."
    return [t / b for t, b in zip(times[variant][measure], times[base][measure])]


def summary(res: dict) -> list:
    "One row per workload and variant: median times (ms), and the median, min and max of the per-round ratios."
    rows = []
    for name, w in check_result(res)['workloads'].items():
        for v, t in w['times'].items():
            row = {'workload': name, 'variant': v, 'rounds': len(t['cpu_s'])}
            for m in MEASURES:
                row[f'{m[:-2]}_ms'] = statistics.median(t[m]) * 1e3
                r = round_ratios(w['times'], v, m)
                row[f'{m[:-2]}_ratio'] = statistics.median(r)
                row[f'{m[:-2]}_ratio_min'], row[f'{m[:-2]}_ratio_max'] = min(r), max(r)
            rows.append(row)
    return rows


def ratio(res: dict, workload: str, variant: str, measure: str = 'cpu_s') -> float:
    "The median of `variant`'s per-round ratios to the floor in `workload`."
    return statistics.median(round_ratios(check_result(res)['workloads'][workload]['times'], variant, measure))


def goal(res: dict) -> str:
    "Issue 29's goal, judged on the file: W1 fit within 1.10x the floor in CPU time (stretch 1.03x)."
    if 'W1' not in res['workloads']: return 'no W1 in this file: the goal is not judged'
    r = ratio(res, 'W1', 'fit')
    verdict = 'met, stretch met too' if r <= STRETCH else 'met' if r <= GOAL else 'not met'
    return f'W1 fit / floor in CPU time: median {r:.3f} (goal <= {GOAL:.2f}, stretch <= {STRETCH:.2f}): {verdict}'


def machine_line(res: dict) -> str:
    "The machine, versions and date a result was measured with, in one line."
    m = res['machine']
    return (f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, Python {m['python']}, fastbook_core "
            f"{m.get('fastbook_core', '?')}{' @' + m['commit'] if m.get('commit') else ''}, "
            f"{m.get('torch_threads', 1)} torch thread, {res['rounds']} rounds, {res['date']}")


def markdown_table(res: dict) -> str:
    "The summary as a markdown table."
    lines = ['| workload | variant | CPU ms | CPU ratio: median (min-max) | wall ms | wall ratio: median |',
             '|---|---|---:|---:|---:|---:|']
    for r in summary(res):
        cpu = '1 (the floor)' if r['variant'] == 'floor' else \
            f"**{r['cpu_ratio']:.3f}** ({r['cpu_ratio_min']:.3f}-{r['cpu_ratio_max']:.3f})"
        wall = '1' if r['variant'] == 'floor' else f"{r['wall_ratio']:.3f}"
        lines.append(f"| {r['workload']} | {r['variant']} | {r['cpu_ms']:.1f} | {cpu} | {r['wall_ms']:.1f} | {wall} |")
    return '\n'.join(lines)


def memory_lines(res: dict) -> list:
    "Peak RSS of each variant (MB), if the file has it."
    mem = res.get('memory')
    if not mem: return []
    rss = mem['rss_mb']
    return [f"{k}: peak {v['peak_mb']:.0f} MB ({v['peak_mb'] - v['before_mb']:+.0f} MB over the process before it ran)"
            for k, v in rss.items()]


def text_report(res: dict) -> str:
    "The whole report as text: the machine, the table, memory, the goal."
    check_result(res)
    parts = [machine_line(res), '', markdown_table(res)]
    mem = memory_lines(res)
    if mem: parts += ['', f"peak memory ({res['memory']['workload']}):"] + [f'  {l}' for l in mem]
    parts += ['', goal(res)]
    return '\n'.join(parts)


def plot_ratios(res: dict, ax=None):
    "Bar chart of the median per-round ratios to the floor (CPU and wall time) for each workload and variant; the axes."
    import matplotlib.pyplot as plt
    rows = [r for r in summary(res) if r['variant'] != 'floor']
    if ax is None: _, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r['cpu_ratio'] for r in rows], 0.4, label='CPU time',
           yerr=[[r['cpu_ratio'] - r['cpu_ratio_min'] for r in rows], [r['cpu_ratio_max'] - r['cpu_ratio'] for r in rows]],
           capsize=3)
    ax.bar([x + 0.2 for x in xs], [r['wall_ratio'] for r in rows], 0.4, label='wall time', alpha=0.6)
    ax.axhline(1, color='k', lw=0.8)
    ax.axhline(GOAL, color='tab:red', lw=0.8, ls='--', label=f'goal for W1 fit: {GOAL:.2f}x')
    ax.set_xticks(list(xs), [f"{r['workload']} {r['variant']}" for r in rows])
    ax.set_yscale('log')  # ratios: 2x slower and 2x faster are the same distance from 1; W3's loader is ~10x
    ticks = [t for t in (0.5, 0.8, 1, 1.5, 2, 3, 5, 10, 20) if t <= 1.3 * max(r['cpu_ratio_max'] for r in rows)]
    ax.set_yticks(ticks, [f'{t:g}' for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(min(0.5, min(r['cpu_ratio_min'] for r in rows) * 0.9), None)
    ax.set_ylabel('time / floor (median of rounds, log scale)')
    ax.set_title('Each variant against the hand-written floor (1.0); bars: min-max of the rounds', fontsize=9)
    ax.legend(fontsize=8)
    return ax


if __name__ == '__main__':
    if len(sys.argv) != 2: raise SystemExit('usage: python benchmarks/report.py RESULT.json')
    print(text_report(load(sys.argv[1])))
