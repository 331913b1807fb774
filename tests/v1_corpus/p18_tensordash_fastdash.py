# After: CleanPegasus/TensorDash, tensordash/fastdash.py (the TensorDash authors, 2020; the version of the file
# whose Fastdash.__init__ signs in itself): Fastdash, a LearnerCallback that sends each epoch's numbers to a phone
# app. It imports `Any, Tensor, MetricsList, ifnone` from fastai.torch_core and `LearnerCallback, Learner` from
# fastai.basic_train, calls super().__init__(learn), and in on_epoch_end(epoch, smooth_loss, last_metrics) formats
# `zip(self.learn.recorder.names, [epoch, smooth_loss] + last_metrics)` as v1's CSVLogger does (str of the int epoch,
# '#na#' for None, f'{stat:.6f}' for tensors and floats), then unpacks four values (epoch, loss, val_loss, acc);
# on_train_begin / on_train_end report the run's status. Used as `learn.fit(n, callbacks=[Fastdash(learn, ...)])`.
# Adapted: imports (fastai -> fastbook_core); `requests` and `getpass` -> a small recorder (marked) so that nothing
# goes on the network; the program's model and data -> a small MLP on seeded tabular-like data in 3 classes with
# metrics=accuracy; 2 epochs. Re-written, not copied.
import json
from fastbook_core.torch_core import Any, Tensor, MetricsList, ifnone
from fastbook_core.basic_train import LearnerCallback, Learner


# ---- stand-in for the `requests` module (not fastai code): records what would have been sent ----
class _Response:
    def json(self): return {'localId': 'user-key', 'idToken': 'token'}
class requests:
    sent = []
    @classmethod
    def post(cls, url, **kw): cls.sent.append(('post', url, kw.get('data'))); return _Response()
    @classmethod
    def put(cls, url, **kw): cls.sent.append(('put', url, kw.get('data'))); return _Response()
    @classmethod
    def patch(cls, url, **kw): cls.sent.append(('patch', url, kw.get('data'))); return _Response()
# ----


class FirebaseError(Exception):
    pass

class SendDataToFirebase(object):
    def __init__(self, key=None):
        response = None

    def sendMessage(self, key=None, auth_token=None, params=None, ModelName='Sample Model'):
        epoch, loss, val_loss, acc = params
        if acc == None and val_loss == None:
            data = '{"Epoch":' + str(int(epoch) + 1) + ', "Loss" :' + str(loss) + '}'
        elif acc == None:
            data = '{"Epoch":' + str(int(epoch) + 1) + ', "Loss" :' + str(loss) + ', "Validation Loss":' + str(val_loss) + '}'
        elif val_loss == None:
            data = '{"Epoch":' + str(int(epoch) + 1) + ', "Loss" :' + str(loss) + ', "Accuracy" :' + str(acc) + '}'
        else:
            data = ('{"Epoch":' + str(int(epoch) + 1) + ', "Loss" :' + str(loss) + ', "Accuracy" :' + str(acc)
                    + ', "Validation Loss":' + str(val_loss) + '}')
        response = requests.post('https://example.invalid/user_data/{}/{}.json?'.format(key, ModelName),
                                 params=auth_token, data=data)

    def updateRunningStatus(self, key=None, auth_token=None, ModelName='Sample Model'):
        response = requests.put('https://example.invalid/user_data/{}/{}.json'.format(key, ModelName),
                                params=auth_token, data='{"Status" : "RUNNING"}')

    def updateCompletedStatus(self, key=None, auth_token=None, ModelName='Sample Model'):
        response = requests.patch('https://example.invalid/user_data/{}/{}.json'.format(key, ModelName),
                                  params=auth_token, data='{"Status" : "COMPLETED"}')

    def crashAnalytics(self, key=None, auth_token=None, ModelName='Sample Model'):
        response = requests.patch('https://example.invalid/user_data/{}/{}.json'.format(key, ModelName),
                                  params=auth_token, data='{"Status" : "CRASHED"}')

SendData = SendDataToFirebase()


class Fastdash(LearnerCallback):
    def __init__(self, learn: Learner, filename: str = 'history', append: bool = False, ModelName='Sample_model',
                 email='None', password='None'):
        super().__init__(learn)
        self.ModelName, self.email, self.password = ModelName, email, password
        self.epoch = 0
        try:
            response = requests.post('https://example.invalid/signin', data=str({"email": self.email}))
            output = response.json()
            self.key = output['localId']
            self.auth_token = (('auth', output['idToken']),)
        except:
            raise FirebaseError("Authentication Failed. Kindly create an account on the companion app")

    def on_train_begin(self, **kwargs: Any) -> None:
        SendData.updateRunningStatus(key=self.key, auth_token=self.auth_token, ModelName=self.ModelName)
        SendData.sendMessage(key=self.key, auth_token=self.auth_token, params=(-1, 0, 0, 0), ModelName=self.ModelName)

    def on_epoch_end(self, epoch: int, smooth_loss: Tensor, last_metrics: MetricsList, **kwargs: Any) -> bool:
        last_metrics = ifnone(last_metrics, [])
        self.stats = [str(stat) if isinstance(stat, int) else '#na#' if stat is None else f'{stat:.6f}'
                      for name, stat in zip(self.learn.recorder.names, [epoch, smooth_loss] + last_metrics)]
        SendData.sendMessage(key=self.key, auth_token=self.auth_token, params=self.stats, ModelName=self.ModelName)

    def on_train_end(self, **kwargs: Any) -> None:
        SendData.updateCompletedStatus(key=self.key, auth_token=self.auth_token, ModelName=self.ModelName)

    def sendCrash(self):
        if self.stats[0] == 0:
            SendData.sendMessage(key=self.key, auth_token=self.auth_token, params=(-1, 0, 0, 0), ModelName=self.ModelName)
        SendData.crashAnalytics(key=self.key, auth_token=self.auth_token, ModelName=self.ModelName)


# ---- driver (marked): the README's use, on a small model ----
import tempfile, torch
from torch import nn
from torch.utils.data import TensorDataset
from fastbook_core.basic_data import DataBunch
from fastbook_core.metrics import accuracy
torch.manual_seed(0)
x = torch.randn(300, 8); y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
data = DataBunch.create(TensorDataset(x[:240], y[:240]), TensorDataset(x[240:], y[240:]), bs=30, path=tempfile.mkdtemp())
learn = Learner(data, nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), metrics=[accuracy])
histories = Fastdash(learn, ModelName='small_mlp', email='me@example.invalid', password='x')
learn.fit(2, 1e-2, callbacks=[histories])
histories.sendCrash()

messages = [d for verb, url, d in requests.sent if verb == 'post' and 'user_data' in url]
print(messages)
assert len(messages) == 3  # the start marker and one per epoch
epoch1 = json.loads(messages[-1])
assert epoch1['Epoch'] == 2 and 0 <= epoch1['Accuracy'] <= 1 and epoch1['Validation Loss'] > 0, epoch1
assert histories.stats[0] == '1' and all(len(s.split('.')[1]) == 6 for s in histories.stats[1:]), histories.stats
assert [d for verb, url, d in requests.sent if verb != 'post'] == ['{"Status" : "RUNNING"}', '{"Status" : "COMPLETED"}',
                                                                    '{"Status" : "CRASHED"}']
print('done')
