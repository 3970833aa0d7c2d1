"""Losses of the reward model beyond TRL's Bradley-Terry term (pure tensor functions).

The Bradley-Terry loss on one row is -log sigmoid(m), with the margin
m = r(chosen | principles) - r(rejected | principles). A row and its negated twin show
the same two responses with chosen and rejected swapped under another principle list
(the negation), so for twins a (shown under P) and b (under not-P):

    m_a + m_b = [r(A|P) - r(B|P)] - [r(A|notP) - r(B|notP)]

which is zero for a model that ignores the principle text, however large its margins
are. `flip_loss` puts a Bradley-Terry term on that sum, so only the part of the
preference that moves with the principle lowers it.
"""

from __future__ import annotations


def flip_loss(margins, twin):
    """Mean over twin pairs in the batch of -log sigmoid(m_a + m_b).

    margins: float tensor [B], r_chosen - r_rejected per row.
    twin:    long tensor [B], the twin unit of each row (rows a and b are twins when
             twin[a] == twin[b] >= 0; -1: no twin in the data). A unit with only one
             row in the batch (split across batches) adds nothing.
    Returns a scalar tensor (0 when the batch holds no complete twin pair).
    """
    import torch
    import torch.nn.functional as F

    twin = twin.to(margins.device)
    same = (twin.unsqueeze(0) == twin.unsqueeze(1)) & (twin.unsqueeze(0) >= 0)
    a, b = torch.triu(same, diagonal=1).nonzero(as_tuple=True)
    if a.numel() == 0:
        return margins.sum() * 0.0  # keeps the graph (and dtype) of the margins
    return -F.logsigmoid(margins[a] + margins[b]).mean()
