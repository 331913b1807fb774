# After: a fastai v1 program in the public code index (file id 3220835168; the index does not name its
# repository): a glucose-forecasting "Predictor" that builds DataBunch.create(train_ds, val_ds, bs=...) from its
# own Dataset, a GRU encoder / attention-decoder Seq2Seq written as a fastai `Module`, Learner(data, model,
# loss_func=nn.MSELoss()), sets learner.path and learner.load('gru-trainval'), and predicts with
# learner.validate(test_dl, callbacks=[PredClbk(n)]) where test_dl = DeviceDataLoader(DataLoader(...), device)
# and PredClbk(Callback) collects last_output in on_batch_end.
# Adapted: imports (`from fastai.vision import *` gave only training-core names here -> `from
# fastbook_core.basics import *`); the CGM/meal data frames become seeded tensors of the same shapes (49 time
# steps x 38 features -> 8 targets); the saved 'gru-trainval' model is produced by a short fit first; sizes
# shrunk. Re-written, not copied.
from fastbook_core.basics import *
import tempfile

MAX_LENGTH = 49

class ContData(Dataset):
    def __init__(self, x, y): self.x, self.y = x, y
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], self.y[i]

class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size):
        super(EncoderRNN, self).__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Linear(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size)
    def forward(self, input, hidden):
        output, hidden = self.gru(self.embedding(input)[None], hidden)
        return output[0], hidden
    def initHidden(self, bs, device): return torch.zeros(1, bs, self.hidden_size, device=device)

class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size=1, dropout_p=0.1, max_length=MAX_LENGTH):
        super(AttnDecoderRNN, self).__init__()
        self.hidden_size, self.output_size, self.max_length = hidden_size, output_size, max_length
        self.embedding = nn.Linear(self.output_size, self.hidden_size)
        self.attn = nn.Linear(self.hidden_size * 2, self.max_length)
        self.attn_combine = nn.Linear(self.hidden_size * 2, self.hidden_size)
        self.dropout = nn.Dropout(dropout_p)
        self.gru = nn.GRU(self.hidden_size, self.hidden_size)
        self.out = nn.Linear(self.hidden_size, self.output_size)
    def forward(self, input, hidden, encoder_outputs):
        embedded = self.dropout(self.embedding(input))
        attn_weights = F.softmax(self.attn(torch.cat((embedded, hidden[0]), 1)), dim=1)
        attn_applied = torch.bmm(attn_weights[:, None], encoder_outputs)
        output = F.relu(self.attn_combine(torch.cat((embedded, attn_applied[:, 0]), 1)))
        output, hidden = self.gru(output[None], hidden)
        return self.out(output[0]), hidden, attn_weights

class Seq2Seq(Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.encoder = EncoderRNN(input_size, hidden_size)
        self.decoder = AttnDecoderRNN(hidden_size)
    def forward(self, input):
        device, bs = input.device, input.shape[0]
        input = input.transpose(0, 1)
        encoder_hidden = self.encoder.initHidden(bs, device)
        encoder_outputs = input.new_zeros(bs, MAX_LENGTH, self.encoder.hidden_size)
        for ei in range(input.shape[0]):
            encoder_output, encoder_hidden = self.encoder(input[ei], encoder_hidden)
            encoder_outputs[:, ei] = encoder_output
        decoder_input, decoder_hidden, out = input.new_zeros(bs, 1), encoder_hidden, []
        for di in range(8):
            decoder_output, decoder_hidden, _ = self.decoder(decoder_input, decoder_hidden, encoder_outputs)
            out.append(decoder_output)
            decoder_input = decoder_output.detach()
        return torch.cat(out, dim=1)

class PredClbk(Callback):
    def __init__(self, length):
        super().__init__()
        self.pred = np.empty((length, 8))
        self.start = 0
    def on_batch_end(self, last_output, last_target, **kwargs):
        values = last_output.cpu().numpy()
        end = self.start + len(values)
        self.pred[self.start:end] = values
        self.start = end

def synthetic(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, MAX_LENGTH, 38, generator=g)
    return ContData(x, x[:, -8:, 0] * 0.5)

root = Path(tempfile.mkdtemp())
train_ds, val_ds = synthetic(48, 0), synthetic(16, 1)
data = DataBunch.create(train_ds, val_ds, bs=16)
trainer = Learner(data, Seq2Seq(38, 16), loss_func=nn.MSELoss())
trainer.path = root
trainer.fit_one_cycle(1, 1e-2)
trainer.save('gru-trainval')

# the Predictor's constructor and predict()
learner = Learner(data, Seq2Seq(38, 16), loss_func=nn.MSELoss())
learner.path = root
learner.load('gru-trainval')
test_ds = synthetic(20, 2)
device = torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')
test_dl = DeviceDataLoader(DataLoader(test_ds, batch_size=8, shuffle=False), device)
clbk = PredClbk(len(test_ds))
print(learner.validate(test_dl, callbacks=[clbk]))
assert clbk.start == 20 and np.isfinite(clbk.pred).all()
