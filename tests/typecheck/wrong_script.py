"Mistakes that mypy must find in a user's script (tests/test_typing.py checks it reports each)."
import torch
from torch import nn
from fastbook_core.basics import DataBunch, Learner

def make(data: DataBunch) -> None:
    learn = Learner(data, nn.Linear(4, 3))
    learn.fit_one_cycle('three')        # a str where the number of epochs goes
    learn.lr_fnd()                      # no such method
    learn.recorder.plot_loses()         # no such plot
    learn.save(file=3.5)                # not a name, path or file
