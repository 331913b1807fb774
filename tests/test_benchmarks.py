"""The reporting code of benchmarks/cpu_bench.py (benchmarks/report.py): ratios, tables, goal, chart; no timing."""
import importlib.util, json
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / 'benchmarks'


def _module(name):
    spec = importlib.util.spec_from_file_location(f'_bench_{name}', BENCH / f'{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


report = _module('report')


def fake(w1_fit=(1.2, 1.0, 1.1), floor=(1.0, 0.8, 1.0), rounds=3) -> dict:
    "A result as cpu_bench.py writes it, with chosen times (seconds)."
    def t(cpu): return {'cpu_s': list(cpu), 'wall_s': [2 * c for c in cpu]}
    return {'benchmark': 'benchmarks/cpu_bench.py', 'date': '2026-12-01T21:00:00+00:00', 'rounds': rounds,
            'machine': {'cpu': 'Test CPU', 'cores': 2, 'torch': '2.13.0', 'python': '3.11.7', 'torch_threads': 1,
                        'fastbook_core': '0.1.0', 'commit': 'abc1234'},
            'workloads': {'W1': {'description': 'mlp', 'times': {'floor': t(floor), 'loader': t([2 * f for f in floor]),
                                                                 'fit': t(w1_fit)}}},
            'memory': {'workload': 'W1', 'rss_mb': {'floor': {'peak_mb': 300., 'before_mb': 290.},
                                                    'fit': {'peak_mb': 310., 'before_mb': 290.}}}}


def test_ratios_are_taken_round_by_round():
    res = fake()
    # per round: 1.2/1.0, 1.0/0.8, 1.1/1.0 -> 1.2, 1.25, 1.1; the median of those, not median(fit)/median(floor)
    assert report.round_ratios(res['workloads']['W1']['times'], 'fit') == pytest.approx([1.2, 1.25, 1.1])
    assert report.ratio(res, 'W1', 'fit') == pytest.approx(1.2)
    assert report.ratio(res, 'W1', 'loader', 'wall_s') == pytest.approx(2.0)


def test_summary_rows():
    rows = {r['variant']: r for r in report.summary(fake())}
    assert rows['floor']['cpu_ratio'] == 1 and rows['floor']['cpu_ms'] == pytest.approx(1000.)
    fit = rows['fit']
    assert fit['rounds'] == 3
    assert (fit['cpu_ratio_min'], fit['cpu_ratio'], fit['cpu_ratio_max']) == pytest.approx((1.1, 1.2, 1.25))
    assert fit['cpu_ms'] == pytest.approx(1100.) and fit['wall_ms'] == pytest.approx(2200.)


def test_goal_verdicts():
    assert report.goal(fake()).endswith('not met')
    assert report.goal(fake(w1_fit=(1.05, 0.85, 1.05))).endswith(': met')
    assert report.goal(fake(w1_fit=(1.0, 0.8, 1.0))).endswith('met, stretch met too')
    res = fake(); res['workloads']['W2'] = res['workloads'].pop('W1')
    assert 'not judged' in report.goal(res)


def test_text_report_names_the_machine_and_memory():
    text = report.text_report(fake())
    assert 'Test CPU, 2 cores, torch 2.13.0, Python 3.11.7' in text and '@abc1234' in text
    assert '| W1 | fit | 1100.0 | **1.200** (1.100-1.250) | 2200.0 | 1.200 |' in text
    assert 'fit: peak 310 MB (+20 MB' in text


@pytest.mark.parametrize('damage, message', [
    (lambda r: r.pop('machine'), "no 'machine'"),
    (lambda r: r['workloads']['W1']['times'].pop('floor'), 'no times for the floor'),
    (lambda r: r['workloads']['W1']['times']['fit']['cpu_s'].pop(), 'different numbers of rounds'),
])
def test_bad_results_are_refused(damage, message):
    res = fake(); damage(res)
    with pytest.raises(ValueError, match=message): report.check_result(res)


def test_load_and_plot(tmp_path):
    p = tmp_path / 'r.json'
    p.write_text(json.dumps(fake()))
    res = report.load(p)
    ax = report.plot_ratios(res)
    assert [t.get_text() for t in ax.get_xticklabels()] == ['W1 loader', 'W1 fit']
    assert [round(b.get_height(), 3) for b in ax.patches[:2]] == [2.0, 1.2]  # the CPU-time bars


def test_committed_results_load():
    "Every result file committed under benchmarks/results/ that cpu_bench.py wrote passes the checks."
    files = [p for p in (BENCH / 'results').glob('cpu_*.json')]
    assert files, 'no committed result of benchmarks/cpu_bench.py'
    for p in files:
        res = report.load(p)
        assert res['rounds'] >= 9 and not res['quick'], f'{p.name}: a result needs >= 9 rounds, not a --quick run'
        assert {'W1', 'W2', 'W3'} <= set(res['workloads']) and 'memory' in res


def test_timing_helpers_count_every_round():
    bench = _module('cpu_bench')
    calls = []
    res = bench.interleaved({'floor': lambda: calls.append('a'), 'fit': lambda: calls.append('b')}, rounds=2)
    assert calls == ['a', 'b', 'a', 'b', 'b', 'a']  # a warm-up round, then two rounds, the second's order rotated
    assert bench.round_order(['x', 'y', 'z'], 4) == ['y', 'z', 'x']
    assert all(len(v['cpu_s']) == len(v['wall_s']) == 2 for v in res.values())
    report.check_result({'machine': {}, 'date': '', 'rounds': 2, 'workloads': {'W': {'times': res}}})
