"Run by test_distributed.py under `python -m torch.distributed.run --nproc_per_node=2`: trains and reports per rank."
import json, os, sys
from pathlib import Path
import torch
from torch import nn
from fastbook_core.basics import *
from fastbook_core.callbacks.csv_logger import CSVLogger
from fastbook_core.test_utils import synth_classif_data
import fastbook_core.distributed  # noqa: F401

mode, out = sys.argv[1], Path(sys.argv[2])
rank = int(os.environ['RANK'])
set_seed(0)
data = synth_classif_data(n_train=320, n_valid=90, bs=16)
if mode == 'unused':
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__(); self.body, self.unused = nn.Linear(4, 3), nn.Linear(4, 3)
        def forward(self, x): return self.body(x)
    model = TwoHeads()
else: model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
learn = Learner(data, model, metrics=[accuracy, Precision(average='macro')], path=out / 'lib', silent=False)
if mode == 'reload':  # v1's idioms: to_distributed(local_rank), a best-model reload, save then load, lr_find, rank 0 alone
    import fastbook_core.train  # noqa: F401
    from fastbook_core.callbacks.tracker import SaveModelCallback
    learn.to_distributed(int(os.environ['LOCAL_RANK']))
    learn.fit(3, 1e-2, callbacks=[SaveModelCallback(learn, name='best')])
    after_fit = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.save('stage-1'); learn.load('stage-1')
    solo = [float(v) for v in learn.validate()] if rank == 0 else None  # the other process does not take part
    learn.lr_find(num_it=30, stop_div=False)
    torch.save({k: v.cpu() for k, v in after_fit.items()}, out / f'weights{rank}.pt')
    (out / f'res{rank}.json').write_text(json.dumps({'solo': solo, 'sweep': len(learn.recorder.lrs)}))
    sys.exit(0)
learn.to_distributed(find_unused_parameters=(mode == 'unused_ok'))
if mode.startswith('unused'):
    try:
        learn.fit(2)
        res = {'ok': True}
    except RuntimeError as e: res = {'ok': False, 'error': ' '.join([str(e), *getattr(e, '__notes__', [])])}
    (out / f'res{rank}.json').write_text(json.dumps(res))
    sys.exit(0)


class CountBatches(Callback):
    def __init__(self): self.n = 0
    def on_batch_end(self, train, **kw):
        if train: self.n += 1


counter = CountBatches()
learn.fit(2, 1e-2, callbacks=[counter, CSVLogger(learn)])
learn.save('final')
learn.export()
torch.save({k: v.cpu() for k, v in learn.model.state_dict().items()}, out / f'weights{rank}.pt')
(out / f'res{rank}.json').write_text(json.dumps({
    'batches': counter.n, 'val_loss': float(learn.recorder.val_losses[-1]), 'accuracy': float(learn.recorder.metrics[-1][0]),
    'precision': float(learn.recorder.metrics[-1][1]),
    'world': torch.distributed.get_world_size(), 'model_after_fit': type(learn.model).__name__, 'validate': [float(v) for v in learn.validate()]}))
