"Distributed data parallel on CPU: two processes with the gloo backend on loopback, launched like torchrun."
import json, os, socket, subprocess, sys
from pathlib import Path
import pytest
import torch
from fastbook_core.basics import *
from fastbook_core.test_utils import synth_classif_data

WORKER = Path(__file__).parent / '_ddp_worker.py'


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def launch(mode, out):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1',
           f'--master_port={_free_port()}', str(WORKER), mode, str(out)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'FASTBOOK_PROGRESS': 'text'}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def _err(r) -> str:
    "A failed launch's stderr: its start holds the workers' own errors, its end torchrun's summary."
    e = r.stderr
    return e if len(e) < 5000 else e[:3000] + '\n[...]\n' + e[-2000:]


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    r = launch('train', out)
    assert r.returncode == 0, _err(r)
    return out, r, [json.loads((out / f'res{i}.json').read_text()) for i in range(2)]


def test_replicas_identical(run):
    out, _, _ = run
    w0, w1 = torch.load(out / 'weights0.pt'), torch.load(out / 'weights1.pt')
    for k in w0: assert torch.equal(w0[k], w1[k]), k


def test_each_rank_saw_half_the_batches(run):
    _, _, res = run
    single = 2 * (320 // 16)           # two epochs of one process
    assert [r['batches'] for r in res] == [single // 2, single // 2]
    assert all(r['world'] == 2 for r in res)


def test_model_unwrapped_after_fit(run):
    # as in fastai v1, DDP wraps the model only while fitting (and, holding the process group, it must be gone
    # before the group is destroyed at exit: with it alive, gloo workers aborted at exit on torch 2.14.1)
    _, _, res = run
    assert [r['model_after_fit'] for r in res] == ['Sequential', 'Sequential']


def test_reported_validation_is_global(run):
    out, _, res = run
    assert res[0]['val_loss'] == pytest.approx(res[1]['val_loss'], rel=1e-6)
    assert res[0]['accuracy'] == pytest.approx(res[1]['accuracy'], rel=1e-6)
    # the same weights validated in one process give the same loss and accuracy
    learn = Learner(synth_classif_data(n_train=320, n_valid=90, bs=16), torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)), metrics=[accuracy, Precision(average='macro')],
        path=out / 'lib', silent=True)
    learn.load('final')
    loss, acc, prec = [float(v) for v in learn.validate()]
    assert res[0]['precision'] == pytest.approx(prec, rel=1e-6) and res[1]['precision'] == pytest.approx(prec, rel=1e-6)
    assert res[0]['val_loss'] == pytest.approx(loss, rel=1e-5)
    assert res[0]['accuracy'] == pytest.approx(acc, rel=1e-6)
    assert res[0]['validate'][0] == pytest.approx(loss, rel=1e-5)


def test_only_rank0_writes(run):
    out, r, _ = run
    lib = out / 'lib'
    assert sorted(p.name for p in lib.rglob('*') if p.is_file()) == ['export.pkl', 'final.pth', 'history.csv']
    ck = torch.load(lib / 'models' / 'final.pth', weights_only=True)
    assert not any(k.startswith('module.') for k in ck['model'])
    csv_rows = (lib / 'history.csv').read_text().splitlines()
    assert len(csv_rows) == 3                     # header + 2 epochs, written once
    assert r.stdout.count('train_loss') == 1       # one table, from rank 0


def test_unused_parameters(tmp_path):
    r = launch('unused_ok', tmp_path)
    assert r.returncode == 0, _err(r)
    assert json.loads((tmp_path / 'res0.json').read_text())['ok']
    r = launch('unused', tmp_path)
    res = json.loads((tmp_path / 'res0.json').read_text())
    assert not res['ok'] and 'to_distributed(find_unused_parameters=True)' in res['error']


def test_outside_a_launch_is_a_clear_error():
    import fastbook_core.distributed  # noqa: F401
    from fastbook_core.test_utils import synth_learner
    with pytest.raises(RuntimeError, match='needs a torchrun launch'): synth_learner().to_distributed()


def test_export_from_a_launch_trains_in_one_process(run):
    # the export of a torchrun job keeps DistributedTrainer in callback_fns: fitted again outside a launch, it says so
    # and trains in this process alone
    import fastbook_core.distributed  # noqa: F401
    out, _, _ = run
    learn = load_learner(out / 'lib')
    learn.data = synth_classif_data(n_train=64, n_valid=32, bs=16)
    before = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.warns(RuntimeWarning, match='trains in this process alone'): learn.fit(1, 1e-2)
    assert type(learn.model).__name__ == 'Sequential'
    assert any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_v1_idioms_reload_and_rank0_alone(tmp_path):
    # to_distributed(local_rank), SaveModelCallback's reload of the best model at the end of the fit (rank 0 wrote it),
    # save then load, `if rank == 0: learn.validate()` (no other process takes part: it must not wait for one), and
    # lr_find, whose sweep must reach num_it although each process has half the batches
    r = launch('reload', tmp_path)
    assert r.returncode == 0, _err(r)
    w0, w1 = torch.load(tmp_path / 'weights0.pt'), torch.load(tmp_path / 'weights1.pt')
    for k in w0: assert torch.equal(w0[k], w1[k]), k
    res = [json.loads((tmp_path / f'res{i}.json').read_text()) for i in range(2)]
    assert res[0]['solo'] is not None and res[1]['solo'] is None
    assert [x['sweep'] for x in res] == [30, 30]
    assert r.stdout.count('Better model found') == r.stdout.count('Better model found at epoch 0') + \
        r.stdout.count('Better model found at epoch 1') + r.stdout.count('Better model found at epoch 2')
    assert r.stdout.count('Better model found at epoch 0') == 1  # printed by rank 0 only


def test_to_distributed_first_argument_is_v1s_cuda_id():
    import fastbook_core.distributed  # noqa: F401
    from fastbook_core.test_utils import synth_learner
    with pytest.raises(TypeError, match=r"name the backend, as in `to_distributed\(backend='gloo'\)`"):
        synth_learner().to_distributed('gloo')
