import os
os.environ.setdefault('MPLBACKEND', 'Agg')  # plots draw into files, never a window
os.environ.pop('FASTBOOK_PROGRESS', None)

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close('all')
