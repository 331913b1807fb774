"Progress display: widgets in a real kernel, text in terminals and logs, nothing when silent."
import io, json, os, re, sys
import pytest
import nbformat
from nbformat.v4 import new_code_cell, new_notebook
from fastbook_core.basics import *
from fastbook_core.progress import MasterBar, ProgressBar, progress_bar, progress_mode, PROGRESS_ENV
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
    assert mb.done and mb.n == 3  # the items the loop took, the one it stopped on included
    final = err.getvalue().split('\x1b[J')[-1]
    assert '3/5' in final and 'stopped early' in final


def test_break_on_last_item_is_complete(monkeypatch):
    err = FakeTTY()
    monkeypatch.setattr(sys, 'stderr', err)
    mb = MasterBar(range(3), mode='text')
    for epoch in mb:
        pb = ProgressBar(range(4), parent=mb, label='train')
        for i in pb:
            if i == 3: break                 # a scheduler ending the training on the last batch
        if epoch == 2: break                 # ... and the epoch loop on the last epoch
    assert (mb.n, mb.done, pb.n, pb.done) == (3, True, 4, True)
    final = err.getvalue().split('\x1b[J')[-1]
    assert 'stopped early' not in err.getvalue(), final
    assert 'epoch 100%' in final and '3/3' in final and 'train 100%' in final and '4/4' in final


def _final_drawing(learn_fit, monkeypatch):
    err = FakeTTY()
    monkeypatch.setattr(sys, 'stderr', err)
    learn_fit()
    return err.getvalue(), err.getvalue().split('\x1b[J')[-1]


@pytest.mark.parametrize('how', ['fit', 'fit_one_cycle'])
def test_a_full_fit_ends_complete(how, monkeypatch, capsys):
    learn = synth_learner(silent=False)
    nv = len(learn.data.valid_dl)
    text, final = _final_drawing(lambda: getattr(learn, how)(3), monkeypatch)
    assert 'stopped early' not in text, final
    assert re.fullmatch(rf'epoch 100% \|█+\| 3/3 \[[\d:]+<00:00\]\nvalid 100% \|█+\| {nv}/{nv} \[[\d:]+<00:00\]\n', final), final
    assert len(capsys.readouterr().out.splitlines()) == 4   # the table: header and three rows


def test_a_stopped_fit_says_so(monkeypatch, capsys):
    learn = synth_learner(silent=False)
    class StopAfter12(Callback):
        def on_batch_end(self, iteration, **kw): return {'stop_training': iteration >= 11}
    _, final = _final_drawing(lambda: learn.fit(3, callbacks=StopAfter12()), monkeypatch)
    # stopped in the 2nd epoch, which still validates (as in v1): two epochs taken of three
    assert final.startswith('epoch  67% ') and '2/3' in final and final.count('stopped early') == 1, final
    assert len(capsys.readouterr().out.splitlines()) == 3   # the table: header and two rows


def test_an_epoch_cut_short_is_not_counted(monkeypatch):
    err = FakeTTY()
    monkeypatch.setattr(sys, 'stderr', err)
    mb = MasterBar(range(3), mode='text')
    for epoch in mb:                          # lr_find: no validation, stops mid-epoch in the last epoch
        for i in ProgressBar(range(10), parent=mb, label='train'):
            if epoch == 2 and i == 4: break
        if epoch == 2: break
    final = err.getvalue().split('\x1b[J')[-1]
    assert final.startswith('epoch  67% ') and '2/3' in final and 'train  50% ' in final and '5/10' in final, final
    assert final.count('stopped early') == 2, final


def test_epochs_whose_batches_stop_early_still_complete_the_fit(monkeypatch, capsys):
    learn = synth_learner(silent=False)
    class TwoBatchesAnEpoch(Callback):
        def on_batch_end(self, num_batch, train, **kw): return {'stop_epoch': train and num_batch >= 1}
    text, final = _final_drawing(lambda: learn.fit(3, callbacks=TwoBatchesAnEpoch()), monkeypatch)
    assert final.startswith('epoch 100% ') and 'stopped early' not in final, final   # validation ran in full


def test_leave_false_on_a_terminal_erases_the_bar(monkeypatch):
    err = FakeTTY()
    monkeypatch.setattr(sys, 'stderr', err)
    for _ in progress_bar(range(3), label='valid', leave=False): pass
    assert 'valid' in err.getvalue() and err.getvalue().endswith('\x1b[J')   # drawn, then erased
    err2 = FakeTTY()
    monkeypatch.setattr(sys, 'stderr', err2)
    for _ in progress_bar(range(3), label='valid'): pass        # leave=True (the default) keeps it
    assert err2.getvalue().endswith('\n') and 'valid 100%' in err2.getvalue().split('\x1b[J')[-1]


def test_leave_false_in_a_log_prints_nothing(monkeypatch):
    import fastbook_core.progress as progress
    err = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', err)
    for _ in progress_bar(range(3), label='valid', leave=False): pass
    assert err.getvalue() == ''
    monkeypatch.setattr(progress.TextView, 'log_every', 0.)    # a long run logs lines as it goes, but no final one
    for _ in progress_bar(range(3), label='valid', leave=False): pass
    assert err.getvalue().startswith('valid   0%') and '100%' not in err.getvalue()  # its start, not its end
    assert '\r' not in err.getvalue()


def test_get_preds_and_validate_leave_no_line(monkeypatch, capsys):
    err = FakeTTY()
    monkeypatch.setattr(sys, 'stderr', err)
    learn = synth_learner(silent=False)
    learn.get_preds(); learn.validate()
    assert err.getvalue().endswith('\x1b[J') and capsys.readouterr().out == ''


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
from fastbook_core.progress import progress_mode, progress_bar
from fastbook_core.callbacks.show_graph import ShowGraph
learn = synth_learner(silent=False)
learn.callback_fns.append(ShowGraph)
learn.fit(3)
print(progress_mode(), learn.recorder.nb_batches)
'''
STANDALONE_NB = '''
for _ in progress_bar(range(4), label='kept'): pass
for _ in progress_bar(range(4), label='gone', leave=False): pass
'''
SLOW_NB = '''
import time
for _ in progress_bar(range(4), label='slow', leave=False): time.sleep(0.2)
'''


def _kernel_available():
    try:
        import ipykernel, nbclient  # noqa: F401
        return True
    except ImportError: return False


WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'


@pytest.mark.skipif(not _kernel_available(), reason='needs ipykernel and nbclient')
def test_widgets_in_a_real_kernel(tmp_path):
    from nbclient import NotebookClient
    seen = []
    class Client(NotebookClient):  # records what the frontend is shown while the cell runs
        def output(self, outs, msg, display_id, cell_index):
            seen.append(set(msg['content'].get('data', {})))
            return super().output(outs, msg, display_id, cell_index)
    nb = new_notebook(cells=[new_code_cell(WIDGET_NB), new_code_cell(STANDALONE_NB), new_code_cell(SLOW_NB)])
    Client(nb, timeout=180, kernel_name='python3', store_widget_state=True).execute()
    assert any(WIDGET_MIME in keys for keys in seen), seen        # live widgets while training
    # a saved notebook keeps the final state as HTML and text, which renders without a kernel
    path = tmp_path / 'saved.ipynb'
    nbformat.write(nb, path)
    nb = nbformat.read(path, as_version=4)
    outs = nb.cells[0].outputs
    assert not [o for o in outs if WIDGET_MIME in o.get('data', {}) and 'Output' not in o.data.get('text/plain', '')]
    displays = [o for o in outs if o.output_type == 'display_data' and 'text/html' in o.data]
    bars, table = displays[0], displays[1]
    values = re.findall(r'<progress value="(\d+)" max="(\d+)"', bars.data['text/html'])
    nv = str(len(synth_learner().data.valid_dl))
    assert values == [('3', '3'), (nv, nv)], values                  # epochs and the last validation, complete
    assert 'epoch 100%' in bars.data['text/plain'] and 'valid 100%' in bars.data['text/plain']
    assert 'stopped early' not in bars.data['text/plain'] and 'HBox' not in bars.data['text/plain']
    assert table.data['text/html'].count('<tr>') == 3                 # header row excluded: three epochs
    assert re.match(r'epoch\s+train_loss\s+valid_loss\s+time\n0 ', table.data['text/plain'])
    stdout = ''.join(o.get('text', '') for o in outs if o.output_type == 'stream')
    assert stdout.startswith('widget')
    # ShowGraph's plot is kept as a PNG, in a display of its own or in its Output widget's saved state
    state = nb.metadata.get('widgets', {}).get('application/vnd.jupyter.widget-state+json', {}).get('state', {})
    widget_outs = [o for m in state.values() if m['model_name'] == 'OutputModel' for o in m['state']['outputs']]
    assert any('image/png' in o.get('data', {}) for o in outs + widget_outs)
    # standalone bars: one left as static HTML, the `leave=False` one never shown (it ran under `show_after`)
    outs = nb.cells[1].outputs
    assert len(outs) == 1 and WIDGET_MIME not in outs[0].data, outs
    assert 'kept 100%' in outs[0].data['text/plain'] and '<progress value="4" max="4"' in outs[0].data['text/html']
    # a `leave=False` bar that ran long enough to be shown is emptied at the end
    assert [dict(o.data) for o in nb.cells[2].outputs] == [{'text/plain': ''}], nb.cells[2].outputs


def test_a_fit_stopped_or_failed_before_its_first_epoch_closes_its_bar():
    # a bar whose loop never ran would stay a live widget in a notebook (check_outputs refuses those)
    from fastbook_core.basic_train import Callback
    from fastbook_core.test_utils import synth_learner
    class Stop(Callback):
        def __init__(self, fail=False): self.fail = fail
        def on_train_begin(self, pbar, **kwargs):
            self.pbar = pbar
            if self.fail: raise RuntimeError('boom')
            return {'stop_training': True}
    for fail in (False, True):
        learn, cb = synth_learner(silent=False), Stop(fail)
        if fail:
            with pytest.raises(RuntimeError, match='boom'): learn.fit(2, callbacks=[cb])
        else: learn.fit(2, callbacks=[cb])
        assert cb.pbar.done and cb.pbar.n == 0
