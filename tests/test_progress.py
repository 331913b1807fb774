"Progress display: widgets in a real kernel, text in terminals and logs, nothing when silent."
import io, json, os, re, sys
import pytest
import nbformat
from nbformat.v4 import new_code_cell, new_notebook
from fastbook_core.basics import *
from fastbook_core.progress import MasterBar, ProgressBar, progress_mode, PROGRESS_ENV
from fastbook_core.test_utils import synth_learner


def test_terminal_table_on_stdout(capsys):
    learn = synth_learner(silent=False)
    learn.fit(3)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert re.match(r'^epoch\s+train_loss\s+valid_loss\s+time$', lines[0])
    assert [l.split()[0] for l in lines[1:]] == ['0', '1', '2']
    for l in lines[1:]: assert len(l.split()) == 4 and re.match(r'\d\d:\d\d', l.split()[3])
    assert '\r' not in out and '\r' not in err  # a log file gets no carriage returns


def test_silent_prints_nothing(capsys):
    learn = synth_learner(silent=True)
    learn.fit(2); learn.get_preds(); learn.validate()
    out, err = capsys.readouterr()
    assert out == '' and err == ''


def test_library_default_and_env_switch(capsys, monkeypatch):
    monkeypatch.setattr(defaults, 'silent', True)
    synth_learner(silent=False).fit(1)
    assert capsys.readouterr() == ('', '')
    monkeypatch.setattr(defaults, 'silent', False)
    monkeypatch.setenv(PROGRESS_ENV, 'none')
    synth_learner(silent=False).fit(1)
    assert capsys.readouterr() == ('', '')


class FakeTTY(io.StringIO):
    def isatty(self): return True


def test_terminal_bars_overwrite_and_finish(monkeypatch, capsys):
    err = FakeTTY()
    monkeypatch.setattr(sys, 'stderr', err)
    mb = MasterBar(range(2), mode='text')
    for _ in mb:
        for _ in ProgressBar(range(7), parent=mb, label='train'): pass
    text = err.getvalue()
    assert '\r' in text
    final = text.split('\x1b[J')[-1]
    assert 'epoch 100%' in final and '2/2' in final and 'train 100%' in final and '7/7' in final


def test_early_stop_shows_final_state(monkeypatch):
    err = FakeTTY()
    monkeypatch.setattr(sys, 'stderr', err)
    mb = MasterBar(range(5), mode='text')
    for i in mb:
        if i == 2: break
    assert mb.done and mb.n == 2
    assert '2/5' in err.getvalue().split('\x1b[J')[-1] and 'stopped early' in err.getvalue()


def test_plain_ipython_is_not_a_notebook():
    from fastbook_core.progress import in_notebook
    assert not in_notebook()
    assert progress_mode() == 'text'


def test_nested_get_preds_inside_fit_keeps_parent(capsys):
    learn = synth_learner(silent=False)
    class Nested(Callback):
        def on_epoch_end(self, **kw): learn.get_preds()
    learn.fit(2, callbacks=Nested())
    out, _ = capsys.readouterr()
    assert len(out.splitlines()) == 3  # header and two rows, nothing from the nested bars


WIDGET_NB = '''
import os
os.environ.pop('FASTBOOK_PROGRESS', None)
from fastbook_core.test_utils import synth_learner
from fastbook_core.progress import progress_mode
from fastbook_core.callbacks.show_graph import ShowGraph
learn = synth_learner(silent=False)
learn.callback_fns.append(ShowGraph)
learn.fit(3)
print(progress_mode(), learn.recorder.nb_batches)
'''


def _kernel_available():
    try:
        import ipykernel, nbclient  # noqa: F401
        return True
    except ImportError: return False


@pytest.mark.skipif(not _kernel_available(), reason='needs ipykernel and nbclient')
def test_widgets_in_a_real_kernel():
    from nbclient import NotebookClient
    nb = new_notebook(cells=[new_code_cell(WIDGET_NB)])
    NotebookClient(nb, timeout=180, kernel_name='python3', store_widget_state=True).execute()
    outs = nb.cells[0].outputs
    views = [o for o in outs if o.output_type == 'display_data' and 'application/vnd.jupyter.widget-view+json' in o.data]
    assert views, [o.output_type for o in outs]
    assert 'epoch' in views[0].data['text/plain']                   # a meaningful text/plain, not HBox(children=...)
    tables = [o for o in outs if o.output_type == 'display_data' and 'text/html' in o.data]
    assert tables and tables[-1].data['text/html'].count('<tr>') == 3   # header row excluded: three epochs
    stdout = ''.join(o.get('text', '') for o in outs if o.output_type == 'stream')
    assert stdout.startswith('widget')
    state = nb.metadata['widgets']['application/vnd.jupyter.widget-state+json']['state']
    bars = [m['state'] for m in state.values() if m['model_name'] == 'IntProgressModel']
    assert len(bars) == 2
    assert all(b['value'] == b['max'] for b in bars), bars          # both bars finished at their totals
    assert sorted(b['max'] for b in bars)[1] == 3                     # the epoch bar
    graphs = [m['state'] for m in state.values() if m['model_name'] == 'OutputModel']
    assert len(graphs) == 1                                            # ShowGraph's live plot, redrawn in place
    assert any('image/png' in o.get('data', {}) for o in graphs[0]['outputs'])
