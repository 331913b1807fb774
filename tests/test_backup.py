"BackupAndRestore: exact resumes after exceptions, SIGKILL (at batches and inside a backup's write) and SIGTERM; refusals."
import hashlib, json, os, signal, subprocess, sys, threading
from functools import partial
from pathlib import Path
import warnings
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basics import *
import fastbook_core.train  # noqa: F401
from fastbook_core.basic_train import to_floats
from fastbook_core.torch_core import CheckpointError
from fastbook_core.test_utils import synth_classif_data
from fastbook_core.callbacks.tracker import EarlyStoppingCallback, SaveModelCallback
from fastbook_core.callbacks.backup import BackupAndRestore, TrainingPreempted
from fastbook_core.callbacks.general_sched import TrainingPhase
from fastbook_core.callback import annealing_cos, annealing_linear
from fastbook_core.layers import CrossEntropyFlat

WORKER = Path(__file__).parent / '_backup_worker.py'


def make(path, silent=True, **kwargs):
    set_seed(0)
    data = synth_classif_data(n_train=160, n_valid=48, bs=16, **kwargs)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    return Learner(data, model, metrics=[accuracy], path=path, silent=silent)


class Boom(Callback):
    "Raise at the end of training batch `at` (an iteration number)."
    def __init__(self, at): self.at = at
    def on_batch_end(self, iteration, train, **kwargs):
        if train and iteration == self.at: raise RuntimeError('boom')


def result(learn):
    r = learn.recorder
    return ({k: v.clone() for k, v in learn.model.state_dict().items()},
            {'losses': to_floats(r.losses), 'lrs': to_floats(r.lrs), 'moms': to_floats(r.moms),
             'val_losses': to_floats(r.val_losses), 'metrics': [to_floats(m) for m in r.metrics],
             'nb_batches': list(r.nb_batches), 'rows': [row[:-1] for row in r.rows]})  # the table, but its times


def assert_same(a, b):
    (wa, ra), (wb, rb) = a, b
    assert wa.keys() == wb.keys()
    for k in wa: assert torch.equal(wa[k], wb[k]), k
    for k in ra: assert ra[k] == rb[k], k


def reference(tmp_path, fit):
    learn = make(tmp_path / 'ref')
    fit(learn, [])
    return result(learn)


one_cycle = lambda learn, cbs: learn.fit_one_cycle(3, 1e-2, callbacks=cbs)
plain = lambda learn, cbs: learn.fit(3, 1e-2, callbacks=cbs)


@pytest.mark.parametrize('fit', [one_cycle, plain], ids=['fit_one_cycle', 'fit'])
@pytest.mark.parametrize('save_freq,at', [('epoch', 13), (4, 13), (3, 25), (5, 9), (10, 29)])
def test_resume_after_an_exception_is_exact(tmp_path, fit, save_freq, at):
    ref = reference(tmp_path, fit)
    learn = make(tmp_path)
    with pytest.raises(RuntimeError, match='boom'): fit(learn, [BackupAndRestore(learn, save_freq=save_freq), Boom(at)])
    assert (tmp_path / 'backup' / 'backup.pth').is_file()  # a fit that raises keeps its backup
    learn = make(tmp_path)
    fit(learn, [BackupAndRestore(learn, save_freq=save_freq)])
    assert_same(result(learn), ref)
    assert not (tmp_path / 'backup').exists()  # a fit that ends well deletes it


def test_resume_with_callback_fns_trackers_and_a_shuffle_generator(tmp_path):
    def fit(learn, cbs): learn.fit_one_cycle(3, 1e-2, callbacks=cbs + [SaveModelCallback(learn, name='best')])
    gen = lambda: torch.Generator().manual_seed(5)
    ref = make(tmp_path / 'ref', generator=gen()); fit(ref, []); ref = result(ref)
    learn = make(tmp_path, generator=gen())
    learn.callback_fns.append(partial(BackupAndRestore, save_freq=3))
    with pytest.raises(RuntimeError): fit(learn, [Boom(17)])
    learn = make(tmp_path, generator=gen())
    learn.callback_fns.append(partial(BackupAndRestore, save_freq=3))
    fit(learn, [])
    assert_same(result(learn), ref)


class Count(Callback):
    "Count the training batches of a fit."
    def __init__(self): self.n = 0
    def on_batch_end(self, train, **kwargs): self.n += bool(train)


@pytest.mark.parametrize('save_freq', ['epoch', 4, 5])
def test_delete_checkpoint_false_keeps_a_finished_backup_and_a_rerun_trains_nothing(tmp_path, save_freq):
    "Whatever save_freq is, the backup kept says the fit finished; the same fit again ends as it ended, training nothing."
    learn = make(tmp_path)
    learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=save_freq, delete_checkpoint=False)])
    done = result(learn)
    f = tmp_path / 'backup' / 'backup.pth'
    st = torch.load(f, weights_only=True)
    assert (st['epoch'], st['batch'], st['iteration'], st['finished']) == (3, 0, 30, True)
    learn, count = make(tmp_path), Count()
    learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=save_freq, delete_checkpoint=False), count])
    assert count.n == 0 and f.is_file()
    assert_same(result(learn), done)
    learn = make(tmp_path)  # a fit that deletes its backup when it ends: it ends at once, then deletes it
    learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=save_freq)])
    assert_same(result(learn), done) and not f.exists()


def test_delete_checkpoint_false_with_an_early_stop_is_not_trained_past(tmp_path):
    cbs = lambda l: [EarlyStoppingCallback(l, min_delta=0.5, patience=0), BackupAndRestore(l, delete_checkpoint=False, save_freq=3)]
    learn = make(tmp_path)
    learn.fit(6, 1e-3, callbacks=cbs(learn))
    done, n = result(learn), len(learn.recorder.losses)
    assert n < 60  # it stopped early
    assert torch.load(tmp_path / 'backup' / 'backup.pth', weights_only=True)['finished'] is True
    learn, count = make(tmp_path), Count()
    learn.fit(6, 1e-3, callbacks=cbs(learn) + [count])
    assert count.n == 0 and len(learn.recorder.losses) == n
    assert_same(result(learn), done)


def test_a_finished_backup_with_track_epoch_callback_trains_nothing(tmp_path):
    "TrackEpochCallback's file says the fit is past its last epoch: the finished backup, not the file, says where it is."
    from fastbook_core.callbacks.tracker import TrackEpochCallback
    cbs = lambda l: [TrackEpochCallback(l), BackupAndRestore(l, delete_checkpoint=False)]
    learn = make(tmp_path)
    learn.fit_one_cycle(3, 1e-2, callbacks=cbs(learn))
    done = result(learn)
    learn, count = make(tmp_path), Count()
    learn.fit_one_cycle(3, 1e-2, callbacks=cbs(learn) + [count])
    assert count.n == 0
    assert_same(result(learn), done)


def _interrupted(tmp_path, save_freq=4):
    learn = make(tmp_path)
    with pytest.raises(RuntimeError): learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=save_freq), Boom(13)])
    f = tmp_path / 'backup' / 'backup.pth'
    return f, hashlib.sha1(f.read_bytes()).hexdigest()


@pytest.mark.parametrize('change,expect', [
    (lambda l: l.fit_one_cycle(4, 1e-2, callbacks=[BackupAndRestore(l, save_freq=4)]), 'epochs: 3 in the backup, 4 in this fit'),
    (lambda l: l.fit_one_cycle(3, 1e-3, callbacks=[BackupAndRestore(l, save_freq=4)]), 'lr_max: 0.01 in the backup, 0.001'),
    (lambda l: l.fit_one_cycle(3, 1e-2, pct_start=0.5, callbacks=[BackupAndRestore(l, save_freq=4)]), 'pct_start'),
    (lambda l: l.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(l, save_freq=4), EarlyStoppingCallback(l, patience=9)]),
     "EarlyStoppingCallback[monitor=valid_loss]: '(none)' in the backup"),
    (lambda l: l.split([l.model[2]]).fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(l, save_freq=4)]), 'layer_groups'),
    (lambda l: l.fit(3, 1e-2, callbacks=[BackupAndRestore(l, save_freq=4)]), 'OneCycleScheduler'),
])
def test_another_setup_is_refused_and_the_backup_left_alone(tmp_path, change, expect):
    f, digest = _interrupted(tmp_path)
    learn = make(tmp_path)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(CheckpointError) as e: change(learn)
    msg = str(e.value)
    assert expect in msg and 'another set-up' in msg and 'It is the backup that does not fit' in msg
    assert f"shutil.rmtree('{f.parent}')" in msg
    assert hashlib.sha1(f.read_bytes()).hexdigest() == digest
    assert all(torch.equal(v, before[k]) for k, v in learn.model.state_dict().items())  # nothing was loaded


def test_another_model_is_refused(tmp_path):
    f, digest = _interrupted(tmp_path)
    learn = make(tmp_path)
    learn = Learner(learn.data, nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), path=tmp_path, silent=True)
    with pytest.raises(CheckpointError, match='model.parameters: 163 in the backup, 67 in this fit'): learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=4)])
    assert hashlib.sha1(f.read_bytes()).hexdigest() == digest


def _other_valid(tmp_path, change):
    "The Learner of `make`, with its training set and another validation set: `change(x, y)` of its own, or none."
    learn = make(tmp_path)
    valid = None if change is None else TensorDataset(*change(*learn.data.valid_ds.tensors))
    data = DataBunch.create(learn.data.train_ds, valid, bs=16, device='cpu', classes=learn.data.classes)
    return Learner(data, learn.model, metrics=[accuracy], path=tmp_path, silent=True)


def test_the_same_validation_set_rebuilt_resumes(tmp_path):
    "A validation set rebuilt with the same items (a new DataBunch, as after a restart) is the same set-up."
    _interrupted(tmp_path)
    learn = _other_valid(tmp_path, lambda x, y: (x.clone(), y.clone()))
    with pytest.warns(UserWarning, match='Resumed from the backup'):
        learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=4)])
    assert len(learn.recorder.val_losses) == 3


def _other(tmp_path, model=None, seed=0):
    learn = make(tmp_path)
    data = synth_classif_data(n_train=160, n_valid=48, bs=16, seed=seed)
    return Learner(data, model or learn.model, metrics=[accuracy], path=tmp_path, silent=True)


@pytest.mark.parametrize('other,expect,n', [
    (lambda p: _other(p, nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 3))),
     'model.modules', 1),  # the same parameters and buffers, another activation
    (lambda p: _other(p, nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))),
     'model.modules', 1),  # another dropout
    (lambda p: _other(p, seed=1), 'data.first_and_last_items', 2),  # other items of the same length and shapes (validation too)
    (lambda p: _other_valid(p, lambda x, y: (x + 3, y)), 'validation.first_and_last_items', 1),  # the same size, shifted
    (lambda p: _other_valid(p, lambda x, y: (x[:40], y[:40])), 'validation.items: 48 in the backup, 40 in this fit', 2),
    (lambda p: _other_valid(p, None), "validation: {'items': 48", 1),  # no validation set at all
])
def test_same_shapes_but_another_model_or_data_is_refused(tmp_path, other, expect, n):
    f, digest = _interrupted(tmp_path)
    learn = other(tmp_path)
    with pytest.raises(CheckpointError) as e: learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=4)])
    assert expect in str(e.value) and 'another set-up' in str(e.value)
    assert len([l for l in str(e.value).split('\n') if ' in the backup, ' in l]) == n, str(e.value)  # only that differs
    assert hashlib.sha1(f.read_bytes()).hexdigest() == digest


def test_a_damaged_backup_is_refused(tmp_path):
    f, _ = _interrupted(tmp_path)
    f.write_bytes(f.read_bytes()[:200])
    learn = make(tmp_path)
    with pytest.raises(CheckpointError, match='incomplete or corrupt'):
        learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=4)])


@pytest.mark.parametrize('kw,msg', [(dict(save_freq=0), 'save_freq=0'), (dict(save_freq='batch'), "save_freq='batch'"),
                                    (dict(save_freq=True), 'save_freq=True'), (dict(backup_dir=' '), 'backup_dir'),
                                    (dict(delete_checkpoint='no'), "delete_checkpoint='no'")])
def test_bad_arguments(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg): BackupAndRestore(make(tmp_path), **kw)


def test_sigterm_handler_is_put_back(tmp_path):
    old = signal.getsignal(signal.SIGTERM)
    learn = make(tmp_path)
    learn.fit(1, callbacks=[BackupAndRestore(learn)])
    assert signal.getsignal(signal.SIGTERM) is old
    with pytest.raises(RuntimeError): learn.fit(1, callbacks=[BackupAndRestore(learn), Boom(3)])
    assert signal.getsignal(signal.SIGTERM) is old


def test_sigterm_in_process_backs_up_at_the_batch_end_and_stops(tmp_path):
    class Term(Callback):
        def on_backward_end(self, iteration, **kwargs):
            if iteration == 6: os.kill(os.getpid(), signal.SIGTERM)
    learn = make(tmp_path)
    with pytest.raises(TrainingPreempted) as e: learn.fit(3, callbacks=[BackupAndRestore(learn), Term()])
    assert e.value.code == 143 and 'epoch 0, batch 7' in str(e.value)
    assert torch.load(tmp_path / 'backup' / 'backup.pth', weights_only=True)['batch'] == 7
    assert len(learn.recorder.losses) == 7


def test_fit_in_a_thread_installs_no_handler(tmp_path):
    old, seen, errors = signal.getsignal(signal.SIGTERM), [], []
    class Look(Callback):
        def on_batch_end(self, **kwargs): seen.append(signal.getsignal(signal.SIGTERM))
    def run():
        try:
            learn = make(tmp_path)
            learn.fit(1, callbacks=[BackupAndRestore(learn, save_freq=2), Look()])
        except Exception as e: errors.append(e)
    t = threading.Thread(target=run); t.start(); t.join()
    assert not errors and seen and all(h is old for h in seen)


# --- real processes, killed --------------------------------------------------------------------------------------
def work(out, **cfg):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'FASTBOOK_PROGRESS': 'text'}
    return subprocess.run([sys.executable, str(WORKER), str(out), json.dumps({'silent': True, **cfg})],
                          capture_output=True, text=True, timeout=600, env=env)


def until_done(out, max_runs=6, **cfg):
    "Run the worker again until it finishes; the return codes of every run."
    codes = []
    for _ in range(max_runs):
        r = work(out, **cfg)
        codes.append(r.returncode)
        if r.returncode == 0: return codes, r
    raise AssertionError(f"did not finish: {codes}\n{r.stderr[-3000:]}")


def load_result(out): return torch.load(out / 'result.pt', weights_only=True)


def assert_same_result(a, b):
    for k in a['weights']: assert torch.equal(a['weights'][k], b['weights'][k]), k
    for k in a:
        if k != 'weights': assert a[k] == b[k], k


@pytest.fixture(scope='module')
def ref_items(tmp_path_factory):
    out = tmp_path_factory.mktemp('ref_items')
    r = work(out, backup=False, data='items')
    assert r.returncode == 0, r.stderr[-3000:]
    return load_result(out)


@pytest.fixture(scope='module')
def ref_tensor(tmp_path_factory):
    out = tmp_path_factory.mktemp('ref_tensor')
    r = work(out, backup=False, generator=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return load_result(out)


def test_sigkill_at_several_batches(tmp_path, ref_items):
    codes, _ = until_done(tmp_path, save_freq=4, data='items', kill_at=[6, 19, 21, 27])
    assert codes == [-signal.SIGKILL] * 4 + [0]
    assert_same_result(load_result(tmp_path), ref_items)
    assert not (tmp_path / 'backup').exists()


def test_sigkill_with_epoch_backups_and_a_tracker(tmp_path, tmp_path_factory):
    ref = tmp_path_factory.mktemp('ref_tracker')
    assert work(ref, backup=False, tracker=True).returncode == 0
    codes, _ = until_done(tmp_path, kill_at=[3, 14, 25], tracker=True)
    assert codes == [-signal.SIGKILL] * 3 + [0]
    assert_same_result(load_result(tmp_path), load_result(ref))


def test_sigkill_between_track_epoch_and_the_backup_with_epoch_backups(tmp_path, tmp_path_factory):
    """TrackEpochCallback writes its file at an epoch's end before the backup is written: a kill between the two (after
    epoch 0, before any backup; after epoch 1) and one mid-epoch resume exactly, no epoch skipped nor redone twice."""
    ref = tmp_path_factory.mktemp('ref_track_epoch')
    assert work(ref, backup=False, track_epoch=True).returncode == 0
    codes, _ = until_done(tmp_path, track_epoch=True, kill_at_epoch_end=[0, 1], kill_at=[14])
    assert codes == [-signal.SIGKILL] * 3 + [0]
    assert_same_result(load_result(tmp_path), load_result(ref))
    assert (tmp_path / 'models' / 'epoch').read_text() == '2'


def test_sigkill_between_track_epoch_and_the_backup_within_epochs(tmp_path, tmp_path_factory):
    "With backups every 4 batches the last backup of epoch 0 is at batch 8 (epoch 0, which is no start epoch to skip)."
    ref = tmp_path_factory.mktemp('ref_track_epoch4')
    assert work(ref, backup=False, track_epoch=True).returncode == 0
    codes, _ = until_done(tmp_path, save_freq=4, track_epoch=True, kill_at_epoch_end=[0, 1], kill_at=[22])
    assert codes == [-signal.SIGKILL] * 3 + [0]
    assert_same_result(load_result(tmp_path), load_result(ref))


def test_sigkill_mid_phase_of_a_general_scheduler(tmp_path, tmp_path_factory):
    "Three phases (7, 9, 14 batches) over epochs of 10: killed inside each phase, and right where the first ends."
    ref = tmp_path_factory.mktemp('ref_general')
    assert work(ref, backup=False, schedule='general').returncode == 0
    codes, _ = until_done(tmp_path, save_freq=3, schedule='general', kill_at=[5, 7, 12, 20, 26])
    assert codes == [-signal.SIGKILL] * 5 + [0]
    got, want = load_result(tmp_path), load_result(ref)
    assert len(want['lrs']) == 30 and want['nb_batches'] == [10, 10, 10]  # the fit is as long as the schedule
    assert_same_result(got, want)


def test_sigkill_inside_a_backup_write(tmp_path, ref_tensor):
    codes, _ = until_done(tmp_path, save_freq=5, generator=True, kill_in_write=[2, 5])
    assert codes == [-signal.SIGKILL] * 2 + [0]
    assert_same_result(load_result(tmp_path), ref_tensor)


def test_kill_inside_a_write_leaves_the_last_backup_whole(tmp_path):
    r = work(tmp_path, save_freq=5, generator=True, kill_in_write=[3])
    assert r.returncode == -signal.SIGKILL
    folder = tmp_path / 'backup'
    temps = list(folder.glob('.backup.pth.*.tmp'))
    assert len(temps) == 1 and temps[0].stat().st_size > 0  # the third backup was written, not renamed
    st = torch.load(folder / 'backup.pth', weights_only=True)
    assert (st['epoch'], st['batch'], st['iteration']) == (0, 10, 10)  # the second one, whole


def test_sigterm_mid_epoch(tmp_path, ref_items):
    r = work(tmp_path, data='items', term_at=14)  # save_freq='epoch'; the 10 batches of an epoch: in the second
    assert r.returncode == 128 + signal.SIGTERM, r.stderr[-2000:]
    assert 'SIGTERM: the backup' in r.stderr and 'epoch 1, batch 5' in r.stderr
    st = torch.load(tmp_path / 'backup' / 'backup.pth', weights_only=True)
    assert (st['epoch'], st['batch'], st['iteration']) == (1, 5, 15)  # the batch under way was finished, not redone
    codes, _ = until_done(tmp_path, data='items', term_at=14)
    assert codes == [0]
    assert_same_result(load_result(tmp_path), ref_items)


# --- torchrun ----------------------------------------------------------------------------------------------------
DDP_WORKER = Path(__file__).parent / '_backup_ddp_worker.py'


def _descendants(pid: int) -> list:
    "The processes below `pid` (children first), read from /proc."
    kids = {}
    for d in Path('/proc').iterdir():
        if d.name.isdigit():
            try: ppid = int((d / 'stat').read_text().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError): continue
            kids.setdefault(ppid, []).append(int(d.name))
    res, todo = [], list(kids.get(pid, []))
    while todo:
        c = todo.pop(0); res.append(c); todo += kids.get(c, [])
    return res


def torchrun(mode, out, *args, limit=300):
    """torchrun with 2 CPU workers: its output goes to files (no pipe to fill), and at `limit` seconds it is killed
    with every process below it (a timeout that killed torchrun alone would leave its workers running, holding
    their ports: torchrun starts each in a session of its own)."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    # the c10d rendezvous: each restart meets afresh (with the static one, a restarted gloo group can hang connecting)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nnodes=1', '--nproc_per_node=2', *args, '--rdzv-backend=c10d',
           f'--rdzv-endpoint=127.0.0.1:{port}', str(DDP_WORKER), mode, str(out), '14']
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('MASTER_', 'TORCHELASTIC_', 'PET_')) and k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')}
    # torch's c10d rendezvous shares one TCPStore (the agent's) across restarts, and the workers' process group keys in
    # it carry no attempt number: a restarted worker can read the address its killed predecessor left there and wait
    # forever to connect to it (gloo's connectFullMesh). pytorch/pytorch#135712; the fix it gives: a store per attempt.
    env.update(OMP_NUM_THREADS='1', GLOO_SOCKET_IFNAME='lo', TORCH_DISABLE_SHARE_RDZV_TCP_STORE='1')
    out.mkdir(parents=True, exist_ok=True)
    with open(out / 'torchrun.out', 'w+') as o, open(out / 'torchrun.err', 'w+') as e:
        p = subprocess.Popen(cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env)
        try: rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            for pid in [*_descendants(p.pid), p.pid]:  # the workers are in sessions of their own: killpg misses them
                try: os.kill(pid, signal.SIGKILL)
                except ProcessLookupError: pass
            p.wait()
            rc = None
        o.seek(0); e.seek(0)
        return subprocess.CompletedProcess(cmd, rc, o.read(), e.read())


def _has_torchrun() -> bool:
    import importlib.util
    import torch.distributed as dist
    return dist.is_available() and dist.is_gloo_available() and importlib.util.find_spec('torch.distributed.run') is not None


# Runs by default: each torchrun has a hard limit of 300 s (so 600 s at most), workers killed with it. It used to hang
# inside pytest in gloo's connectFullMesh after the restart: the restarted workers read their killed predecessors'
# addresses from the rendezvous store that torch shares across restarts (see `torchrun`).
@pytest.mark.skipif(not _has_torchrun(), reason='torch.distributed (gloo) or torchrun is missing')
def test_torchrun_restarts_after_a_worker_is_killed(tmp_path):
    r = torchrun('ref', tmp_path / 'ref')
    assert r.returncode == 0, f"torchrun: {'killed after 300 s' if r.returncode is None else r.returncode}\n{r.stderr[-3000:]}"
    r = torchrun('backup', tmp_path / 'killed', '--max-restarts=2')
    assert r.returncode == 0, f"torchrun: {'killed after 300 s' if r.returncode is None else r.returncode}\n{r.stderr[-3000:]}"
    assert (tmp_path / 'killed' / 'killed').read_text() == '0'  # rank 1 was killed in the first attempt, mid-epoch
    assert 'exitcode: -9' in r.stderr  # torchrun saw the SIGKILL and restarted the group
    for rank in range(2):
        ref, got = (torch.load(tmp_path / d / f'result{rank}.pt', weights_only=True) for d in ('ref', 'killed'))
        assert got['restarts'] == '1'
        for k in ref['weights']: assert torch.equal(got['weights'][k], ref['weights'][k]), (rank, k)
        assert got['val_losses'] == ref['val_losses']
        if rank == 0: assert got['losses'] == ref['losses']  # the history a backup keeps is rank 0's
    assert not (tmp_path / 'killed' / 'lib' / 'backup').exists()


def test_a_damaged_backup_or_another_weight_decay_rule_is_refused_saying_how_to_discard_it(tmp_path):
    "A backup that cannot be read, or one written with another true_wd/bn_wd/train_bn/loss, is refused, left as it is."
    from fastbook_core.basics import Callback, CheckpointError
    from fastbook_core.callbacks.backup import BackupAndRestore
    from fastbook_core.test_utils import synth_learner
    class Boom(Callback):
        def on_batch_end(self, iteration, train, **kwargs):
            if train and iteration == 5: raise RuntimeError('boom')
    learn = synth_learner(); learn.path = tmp_path
    with pytest.raises(RuntimeError, match='boom'): learn.fit(3, callbacks=[BackupAndRestore(learn, save_freq=2), Boom()])
    file = tmp_path / 'backup' / 'backup.pth'
    for change in ('true_wd', 'bn_wd', 'train_bn'):
        other = synth_learner(); other.path = tmp_path; setattr(other, change, False)
        with pytest.raises(CheckpointError, match=rf'learner\.{change}: True in the backup, False in this fit'):
            other.fit(3, callbacks=[BackupAndRestore(other, save_freq=2)])
    file.write_bytes(file.read_bytes()[:3000]); damaged = file.read_bytes()
    with pytest.raises(CheckpointError, match=r"backup that cannot be read.*shutil\.rmtree"):
        learn.fit(3, callbacks=[BackupAndRestore(learn, save_freq=2)])
    assert file.read_bytes() == damaged


def test_backup_and_restore_says_it_saves_checkpoints():
    "The contract with Learner.fit: a callback that writes checkpoints during a fit says so, as a class attribute."
    assert BackupAndRestore.saves_checkpoints is True


def test_reduce_lr_on_plateau_resumed_from_a_backup_divides_the_lr_once(tmp_path):
    "The backup gives back the lr as it was; ReduceLROnPlateau's reductions must not be applied to it a second time."
    from fastbook_core.callbacks.tracker import ReduceLROnPlateauCallback
    class Cut(Callback):
        def on_epoch_begin(self, epoch, **kwargs):
            if epoch == 3: raise RuntimeError('cut')
    cbs = lambda L: [ReduceLROnPlateauCallback(L, patience=0, min_delta=10., min_lr=1e-6), BackupAndRestore(L)]
    whole = make(tmp_path / 'whole')
    whole.fit(5, 0.1, callbacks=[ReduceLROnPlateauCallback(whole, patience=0, min_delta=10., min_lr=1e-6)])
    part = make(tmp_path / 'part')
    with pytest.raises(RuntimeError, match='cut'): part.fit(5, 0.1, callbacks=cbs(part) + [Cut()])
    resumed = make(tmp_path / 'part')
    resumed.fit(5, 0.1, callbacks=cbs(resumed))
    assert resumed.recorder.lrs == pytest.approx(whole.recorder.lrs)
    assert resumed.recorder.val_losses == pytest.approx(whole.recorder.val_losses)


# --- damaged, hand-edited or misplaced backups --------------------------------------------------------------------
def _edit(f, change):
    st = torch.load(f, weights_only=True)
    change(st)
    torch.save(st, f)
    return f.read_bytes()


def _del(d, *keys):
    for k in keys[:-1]: d = d[k]
    del d[keys[-1]]


@pytest.mark.parametrize('change,expect', [
    (lambda st: _del(st, 'rng'), "it has no 'rng'"),
    (lambda st: _del(st, 'training', 'model', '0.weight'), "its weights ['0.weight']"),
    (lambda st: _del(st, 'training', 'opt'), "it has no training.'opt'"),
    (lambda st: _del(st, 'training', 'smooth', 'mov_avg'), "training.smooth lacks ['mov_avg']"),
    (lambda st: st.update(batch=99), 'batch 99'),
    (lambda st: st.update(epoch=7), 'epoch 7'),
    (lambda st: st.update(epoch_rng=None), "random states 'epoch_rng'"),
    (lambda st: st.update(iteration='12'), 'its iteration is a str, not a int'),
    (lambda st: st['training']['model'].update({'0.weight': torch.zeros(2, 2)}), "its weights ['0.weight']"),
    (lambda st: st['training']['callbacks'].update(OneCycleScheduler={'n': 'x'}), 'incomplete or damaged'),
])
def test_an_incomplete_backup_is_refused_naming_what_is_wrong(tmp_path, change, expect):
    f, _ = _interrupted(tmp_path)
    before = _edit(f, change)
    learn = make(tmp_path)
    with pytest.raises(CheckpointError) as e: learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=4)])
    msg = str(e.value)
    assert expect in msg and str(f) in msg and 'incomplete or damaged' in msg, msg
    assert 'the backup that is the problem' in msg and f"shutil.rmtree('{f.parent}')" in msg
    assert f.read_bytes() == before  # never deleted, never rewritten


def test_a_folder_where_the_backup_file_should_be_is_refused(tmp_path):
    learn = make(tmp_path)
    (tmp_path / 'backup' / 'backup.pth').mkdir(parents=True)
    with pytest.raises(CheckpointError, match=r"is a folder, not a backup file.*shutil\.rmtree"):
        learn.fit(1, callbacks=[BackupAndRestore(learn, save_freq=4)])
    assert (tmp_path / 'backup' / 'backup.pth').is_dir()
    (tmp_path / 'other').write_text('not a folder')
    with pytest.raises(CheckpointError, match='is a file, not the folder of the backups'):
        learn.fit(1, callbacks=[BackupAndRestore(learn, backup_dir='other')])
    assert (tmp_path / 'other').read_text() == 'not a folder'


# --- what makes another fit ---------------------------------------------------------------------------------------
def _phases(end=1e-5, length=14, anneal=annealing_cos):
    return [TrainingPhase(7).schedule_hp('lr', (1e-4, 1e-2), annealing_cos),
            TrainingPhase(9).schedule_hp('lr', 1e-2),
            TrainingPhase(length).schedule_hp('lr', (1e-2, end), anneal)]


@pytest.mark.parametrize('phases,expect', [
    (lambda: _phases(end=1e-3), 'phases.2.scheds.lr.end: 1e-05 in the backup, 0.001 in this fit'),
    (lambda: _phases(length=20), 'phases.2.length: 14 in the backup, 20 in this fit'),
    (lambda: _phases(anneal=annealing_linear), "phases.2.scheds.lr.func: 'annealing_cos' in the backup, 'annealing_linear'"),
])
def test_a_general_scheduler_with_other_phases_is_refused(tmp_path, phases, expect):
    from fastbook_core.callbacks.general_sched import GeneralScheduler
    learn = make(tmp_path)
    with pytest.raises(RuntimeError, match='boom'):
        learn.fit(3, callbacks=[GeneralScheduler(learn, _phases()), BackupAndRestore(learn, save_freq=4), Boom(13)])
    f = tmp_path / 'backup' / 'backup.pth'
    before = f.read_bytes()
    learn = make(tmp_path)
    with pytest.raises(CheckpointError, match='another set-up') as e:
        learn.fit(3, callbacks=[GeneralScheduler(learn, phases()), BackupAndRestore(learn, save_freq=4)])
    assert expect in str(e.value) and len(str(e.value).split('\n')) == 3, str(e.value)  # that line alone
    assert f.read_bytes() == before
    learn = make(tmp_path)  # the same phases resume
    learn.fit(3, callbacks=[GeneralScheduler(learn, _phases()), BackupAndRestore(learn, save_freq=4)])
    assert not f.exists()


@pytest.mark.parametrize('first,then', [
    (lambda: CrossEntropyFlat(), lambda: CrossEntropyFlat(weight=torch.tensor([1., 2., 3.]))),
    (lambda: CrossEntropyFlat(weight=torch.tensor([1., 2., 3.])), lambda: CrossEntropyFlat(weight=torch.tensor([1., 1., 3.]))),
    (lambda: CrossEntropyFlat(), lambda: CrossEntropyFlat(label_smoothing=0.1)),
    (lambda: nn.CrossEntropyLoss(), lambda: nn.CrossEntropyLoss(label_smoothing=0.1))])
def test_a_loss_of_the_same_class_with_other_settings_is_refused(tmp_path, first, then):
    learn = make(tmp_path)
    learn.loss_func = first()
    with pytest.raises(RuntimeError): learn.fit(2, callbacks=[BackupAndRestore(learn, save_freq=4), Boom(13)])
    f = tmp_path / 'backup' / 'backup.pth'
    before = f.read_bytes()
    learn = make(tmp_path)
    learn.loss_func = then()
    with pytest.raises(CheckpointError, match=r'learner\.loss_func\.') as e:
        learn.fit(2, callbacks=[BackupAndRestore(learn, save_freq=4)])
    assert 'another set-up' in str(e.value)
    assert f.read_bytes() == before


def test_the_same_loss_is_accepted(tmp_path):
    "A loss made again with the same settings (a new object) is the same fit."
    learn = make(tmp_path)
    learn.loss_func = CrossEntropyFlat(weight=torch.tensor([1., 2., 3.]))
    with pytest.raises(RuntimeError): learn.fit(2, callbacks=[BackupAndRestore(learn, save_freq=4), Boom(13)])
    learn = make(tmp_path)
    learn.loss_func = CrossEntropyFlat(weight=torch.tensor([1., 2., 3.]))
    learn.fit(2, callbacks=[BackupAndRestore(learn, save_freq=4)])
    assert not (tmp_path / 'backup').exists()


def test_the_advice_of_a_refusal_names_track_epoch_callbacks_file_and_following_it_starts_afresh(tmp_path):
    from fastbook_core.callbacks.tracker import TrackEpochCallback
    learn = make(tmp_path)
    with pytest.raises(RuntimeError): learn.fit_one_cycle(3, 1e-2, callbacks=[TrackEpochCallback(learn), BackupAndRestore(learn), Boom(23)])
    track = tmp_path / 'models' / 'epoch'
    assert track.is_file()
    learn = make(tmp_path)
    with pytest.raises(CheckpointError) as e:
        learn.fit_one_cycle(4, 1e-2, callbacks=[TrackEpochCallback(learn), BackupAndRestore(learn)])
    msg = str(e.value)
    assert f"Path('{track}').unlink()" in msg and f"shutil.rmtree('{tmp_path / 'backup'}')" in msg
    import shutil
    shutil.rmtree(tmp_path / 'backup'); track.unlink()  # what it says
    learn, count = make(tmp_path), Count()
    learn.fit_one_cycle(4, 1e-2, callbacks=[TrackEpochCallback(learn), BackupAndRestore(learn), count])
    assert count.n == 40 and learn.recorder.nb_batches == [10] * 4  # afresh: every epoch


# --- callback_fns: lr_find and several fits on one Learner ----------------------------------------------------------
def _with_fns(path):
    learn = make(path)
    learn.callback_fns.append(partial(BackupAndRestore, save_freq=4))
    return learn


def test_callback_fns_lr_find_then_a_fit_resumes_when_the_script_runs_again(tmp_path):
    def script(learn, cbs):
        learn.lr_find(num_it=20)
        learn.fit_one_cycle(3, 1e-2, callbacks=cbs)
    ref = make(tmp_path / 'ref'); script(ref, []); ref = result(ref)
    learn = _with_fns(tmp_path)
    with pytest.raises(RuntimeError, match='boom'): script(learn, [Boom(14)])
    f = tmp_path / 'backup' / 'backup.pth'
    assert torch.load(f, weights_only=True)['iteration'] == 12  # the fit's backup, not lr_find's
    learn = _with_fns(tmp_path)
    script(learn, [])  # lr_find leaves the backup alone, the fit resumes from it
    assert_same(result(learn), ref)
    assert not (tmp_path / 'backup').exists()


def test_callback_fns_two_fits_each_have_their_own_backup(tmp_path):
    def script(learn, cbs):
        learn.fit_one_cycle(1, 1e-2)
        learn.fit_one_cycle(2, 1e-3, callbacks=cbs)
    ref = make(tmp_path / 'ref'); script(ref, []); ref = result(ref)
    learn = _with_fns(tmp_path)
    with pytest.raises(RuntimeError, match='boom'): script(learn, [Boom(13)])
    assert (tmp_path / 'backup' / 'backup.1.pth').is_file() and not (tmp_path / 'backup' / 'backup.pth').exists()
    learn = _with_fns(tmp_path)
    script(learn, [])  # the first fit runs again, afresh; the second resumes from its own backup
    assert_same(result(learn), ref)
    assert not (tmp_path / 'backup').exists()


def test_callback_fns_a_fit_interrupted_then_run_again_in_the_same_process_resumes(tmp_path):
    "After a Ctrl-C (an error), the same fit again on the same Learner uses the same backup: a fit that raised does not count."
    ref = make(tmp_path / 'ref'); ref.fit_one_cycle(3, 1e-2); ref = result(ref)
    learn = _with_fns(tmp_path)
    with pytest.raises(RuntimeError): learn.fit_one_cycle(3, 1e-2, callbacks=[Boom(13)])
    learn.fit_one_cycle(3, 1e-2)
    assert_same(result(learn), ref)


# --- CSVLogger across a resume ---------------------------------------------------------------------------------------
def _csv_rows(path, name='history'):
    import csv
    with open(path / f'{name}.csv', newline='') as f: return [r[:-1] for r in csv.reader(f)]  # but the time


@pytest.mark.parametrize('save_freq,at', [('epoch', 25), (4, 13), (4, 21)])
@pytest.mark.parametrize('append', [False, True])
def test_csv_logger_holds_every_epoch_once_after_a_resume(tmp_path, save_freq, at, append):
    "The rows of the killed run up to the backup, then the rest: never one lost, never one twice (a row logged after the last backup)."
    from fastbook_core.callbacks.csv_logger import CSVLogger
    ref = make(tmp_path / 'ref')
    ref.fit(1, 1e-2, callbacks=[CSVLogger(ref)])  # an earlier fit, whose row append keeps
    ref.fit(3, 1e-2, callbacks=[CSVLogger(ref, append=append)])
    learn = make(tmp_path)
    learn.fit(1, 1e-2, callbacks=[CSVLogger(learn)])
    with pytest.raises(RuntimeError):
        learn.fit(3, 1e-2, callbacks=[CSVLogger(learn, append=append), BackupAndRestore(learn, save_freq=save_freq), Boom(at)])
    learn.fit(3, 1e-2, callbacks=[CSVLogger(learn, append=append), BackupAndRestore(learn, save_freq=save_freq)])
    got, want = _csv_rows(tmp_path), _csv_rows(tmp_path / 'ref')
    assert got == want and len(got) == 1 + append + 3


def test_csv_logger_changed_between_runs_is_another_setup(tmp_path):
    from fastbook_core.callbacks.csv_logger import CSVLogger
    learn = make(tmp_path)
    with pytest.raises(RuntimeError): learn.fit(3, 1e-2, callbacks=[CSVLogger(learn), BackupAndRestore(learn), Boom(25)])
    learn = make(tmp_path)
    with pytest.raises(CheckpointError, match=r'CSVLogger\[filename=history\]\.append: False in the backup, True'):
        learn.fit(3, 1e-2, callbacks=[CSVLogger(learn, append=True), BackupAndRestore(learn)])


def test_csv_logger_state_is_empty_outside_a_fit_and_checked(tmp_path):
    from fastbook_core.callbacks.csv_logger import CSVLogger
    learn = make(tmp_path)
    log = CSVLogger(learn)
    assert log.checkpoint_state() == {}
    learn.fit(1, callbacks=[log])
    assert log.checkpoint_state() == {}
    log.load_checkpoint_state({})  # nothing to put back
    with pytest.raises(ValueError, match='damaged'): log.load_checkpoint_state({'head': 'x'})


def _resume_warnings(fit) -> list:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        fit()
    return [str(o.message) for o in w if 'the backup' in str(o.message).lower()]


@pytest.mark.parametrize('silent', [True, False])
def test_a_resume_that_replaces_the_weights_is_told_whatever_silent_says(tmp_path, silent):
    "silent hides progress, not that the backup replaced the Learner's weights (even weights the user just put in)."
    learn = make(tmp_path)
    with pytest.raises(RuntimeError, match='boom'): learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=4), Boom(13)])
    learn = make(tmp_path, silent=silent)
    for p in learn.model.parameters(): p.data.fill_(0.123)  # weights of the user's, which the backup replaces
    said = _resume_warnings(lambda: learn.fit_one_cycle(3, 1e-2, callbacks=[BackupAndRestore(learn, save_freq=4)]))
    if silent:
        assert len(said) == 1 and said[0].startswith(f"Resumed from the backup {tmp_path / 'backup' / 'backup.pth'}: epoch 1, batch 2/10")
        assert "replaced the Learner's weights" in said[0]
    else: assert said == []  # shown in the table instead


def test_a_silent_rerun_of_a_finished_backup_says_that_nothing_is_left_to_train(tmp_path):
    learn = make(tmp_path)
    learn.fit_one_cycle(2, 1e-2, callbacks=[BackupAndRestore(learn, delete_checkpoint=False)])
    learn = make(tmp_path)
    said = _resume_warnings(lambda: learn.fit_one_cycle(2, 1e-2, callbacks=[BackupAndRestore(learn, delete_checkpoint=False)]))
    assert len(said) == 1 and 'nothing left to train' in said[0], said
