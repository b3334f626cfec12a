"""PyTorch models used by the notebooks."""

from torch import nn

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class CharLM(nn.Module):
    """Character language model: embedding -> recurrent layers -> a linear map to next-char scores.

    `cell` is "rnn" (tanh), "lstm" or "gru"; everything else is identical, so the three can be compared
    on equal terms. forward(x, state) takes x: (N, T) character ids and the state carried over from
    the previous chunk (None at the start) and returns (scores (N, T, V), state, hidden (N, T, H)).
    """

    def __init__(self, vocab_size, embed=64, hidden=256, cell="lstm", layers=1):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}; got {cell!r}.")
        self.cell = cell
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = CELLS[cell](embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x, state=None):
        hidden, state = self.rnn(self.embed(x), state)
        return self.head(hidden), state, hidden


def detach(state):
    """Cut the graph at a chunk boundary: keep the state's values, drop its history (truncated BPTT)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
