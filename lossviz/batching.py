"""From sequence lengths (or token sequences) to a padded or packed batch and its loss mask.

Two levels: ``mask_from_lengths`` / ``pack_lengths`` build only the mask ``m: [B, T]`` (what the
reductions need), ``pad`` / ``pack`` build real ``input_ids``/``labels`` for a model. In a packed row
the first label of every piece is ``ignore_index``, so after the causal shift the last token of one
sequence never predicts the first token of the next.

:func:`lay_out` places the same samples right-padded, left-padded or packed and says where each
sample's j-th trained token sits; :func:`laid_out_token_losses` gives every layout the same token
losses (logits that belong to the samples, :func:`sample_logits`), so only the reduction can make
the layouts' losses differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .checks import ArgumentTypeError, integer, integer_list, positive_int
from .cross_entropy import shift_labels, token_losses

__all__ = [
    "mask_from_lengths",
    "pack_lengths",
    "pad",
    "pack",
    "Batch",
    "BATCH_LAYOUTS",
    "LaidOut",
    "lay_out",
    "sample_logits",
    "laid_out_token_losses",
]

PADDINGS = ("right", "left")
BATCH_LAYOUTS = ("right", "left", "packed")  # how samples sit in the rows of a batch


def _check_lengths(lengths: Sequence[int], allow_zero: bool = True) -> list[int]:
    out = integer_list("lengths", lengths, low=0 if allow_zero else 1)
    if max(out) == 0:
        raise ValueError("every length is 0: a batch needs at least one token")
    return out


def _round_up(n: int, multiple: int | None) -> int:
    if multiple is None:
        return n
    multiple = positive_int("pad_to_multiple_of (an int or None)", multiple)
    return -(-n // multiple) * multiple


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r} (use pack() to pack)")


def mask_from_lengths(
    lengths: Sequence[int],
    padding: str = "right",
    pad_to_multiple_of: int | None = None,
) -> torch.Tensor:
    """Mask ``m: [B, T]`` with ``lengths[b]`` trained tokens (1.0) per row, the rest padding (0.0).

    ``T = max(lengths)`` rounded up to ``pad_to_multiple_of``; ``padding`` puts the pad on the right
    (``[1, 1, 0]``) or left (``[0, 1, 1]``). ``mask_from_lengths([3, 7, 20])`` -> ``[3, 20]``.
    """
    lengths = _check_lengths(lengths)
    _check_padding(padding)
    width = _round_up(max(lengths), pad_to_multiple_of)
    pos = torch.arange(width).unsqueeze(0)
    n = torch.tensor(lengths).unsqueeze(1)
    keep = pos < n if padding == "right" else pos >= width - n
    return keep.to(torch.get_default_dtype())


def _first_fit_rows(sizes: list[int], row_length: int) -> list[list[int]]:
    """Place pieces in order; a piece opens a new row when it does not fit in the current one."""
    rows: list[list[int]] = [[]]
    used = 0
    for i, size in enumerate(sizes):
        if size > row_length:
            raise ValueError(
                f"sample {i} needs {size} positions but row_length is {row_length}; "
                f"raise row_length to at least {size} or truncate the sample"
            )
        if used + size > row_length:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += size
    return rows


def pack_lengths(lengths: Sequence[int], row_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack samples into rows of ``row_length``: returns ``(mask [R, L], sample_ids [R, L])``.

    Sample b has ``lengths[b]`` trained tokens and occupies ``lengths[b] + 1`` positions: the token
    that starts its piece has no label (it is ignored, so nothing predicts across the boundary).
    ``sample_ids`` holds b on the piece's positions and -1 on padding; pass it to
    ``lv.weights(..., sample_ids=...)`` so that per-sample reductions see samples, not rows.
    """
    lengths = _check_lengths(lengths)
    row_length = integer("row_length", row_length, low=2)
    rows = _first_fit_rows([n + 1 for n in lengths], row_length)
    mask = torch.zeros(len(rows), row_length)
    ids = torch.full((len(rows), row_length), -1, dtype=torch.long)
    for r, members in enumerate(rows):
        start = 0
        for b in members:
            ids[r, start : start + lengths[b] + 1] = b
            mask[r, start + 1 : start + lengths[b] + 1] = 1.0
            start += lengths[b] + 1
    return mask, ids


@dataclass(frozen=True)
class Batch:
    """A model-ready batch. All tensors ``[B, T]``; ``sample_ids`` is -1 on padding."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    sample_ids: torch.Tensor
    ignore_index: int = -100

    def loss_mask(self, shift: bool = True) -> torch.Tensor:
        """``m: [B, T]``: 1.0 where a loss is computed (after the causal shift when ``shift``)."""
        labels = shift_labels(self.labels, self.ignore_index) if shift else self.labels
        return (labels != self.ignore_index).to(torch.get_default_dtype())

    def loss_sample_ids(self, shift: bool = True) -> torch.Tensor:
        """Owner of each loss position (-1 where none), aligned with :meth:`loss_mask`."""
        ids = shift_labels(self.sample_ids, -1) if shift else self.sample_ids
        return torch.where(self.loss_mask(shift) > 0, ids, -1)


def _check_sequences(sequences: Sequence[Sequence[int]]) -> list[list[int]]:
    if isinstance(sequences, (str, bytes, torch.Tensor)) and not (
        isinstance(sequences, torch.Tensor) and sequences.dim() == 2
    ):
        raise ArgumentTypeError(
            f"sequences must be a list of token-id lists such as [[5, 6, 7], [8, 9]], "
            f"got {type(sequences).__name__}"
        )
    seqs = [integer_list(f"sequences[{i}]", s) for i, s in enumerate(sequences)]
    if not seqs:
        raise ValueError("sequences is empty: a batch needs at least one sample")
    return seqs


def pad(
    sequences: Sequence[Sequence[int]],
    padding: str = "right",
    pad_to_multiple_of: int | None = None,
    *,
    pad_id: int = 0,
    ignore_index: int = -100,
) -> Batch:
    """Pad token sequences into one ``Batch``; labels are the tokens, ``ignore_index`` on padding.

    The first label of each sequence is ``ignore_index`` too: no earlier token of the sequence can
    predict it, and with left padding the pad position just before it would otherwise be trained to.
    So right, left and packed batches train the same ``len(s) - 1`` tokens per sequence.
    """
    seqs = _check_sequences(sequences)
    _check_padding(padding)
    width = _round_up(max(len(s) for s in seqs), pad_to_multiple_of)
    shape = (len(seqs), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, ignore_index, dtype=torch.long)
    attn = torch.zeros(shape, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    owner = torch.full(shape, -1, dtype=torch.long)
    for b, s in enumerate(seqs):
        cols = slice(0, len(s)) if padding == "right" else slice(width - len(s), width)
        ids[b, cols] = labels[b, cols] = torch.tensor(s)
        labels[b, cols.start] = ignore_index  # nothing may predict it (a left pad would)
        attn[b, cols] = 1
        pos[b, cols] = torch.arange(len(s))
        owner[b, cols] = b
    return Batch(ids, labels, attn, pos, owner, ignore_index)


def pack(
    sequences: Sequence[Sequence[int]],
    row_length: int,
    *,
    pad_id: int = 0,
    ignore_index: int = -100,
) -> Batch:
    """Pack token sequences into rows of ``row_length``; each piece's first label is ignored.

    ``position_ids`` restart at 0 in each piece and ``sample_ids`` say which sequence owns a
    position: a model must use them so that attention does not cross a boundary either.
    """
    seqs = _check_sequences(sequences)
    row_length = positive_int("row_length", row_length)
    rows = _first_fit_rows([len(s) for s in seqs], row_length)
    shape = (len(rows), row_length)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    labels = torch.full(shape, ignore_index, dtype=torch.long)
    attn = torch.zeros(shape, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    owner = torch.full(shape, -1, dtype=torch.long)
    for r, members in enumerate(rows):
        start = 0
        for b in members:
            s = torch.tensor(seqs[b])
            end = start + len(s)
            ids[r, start:end] = labels[r, start:end] = s
            labels[r, start] = ignore_index
            attn[r, start:end] = 1
            pos[r, start:end] = torch.arange(len(s))
            owner[r, start:end] = b
            start = end
    return Batch(ids, labels, attn, pos, owner, ignore_index)


@dataclass(frozen=True)
class LaidOut:
    """Samples placed in a batch. All ``[B, T]``: ``mask`` (1.0 on a trained token),
    ``sample_ids`` (the sample that owns the position, -1 on padding) and ``token`` (which of its
    sample's trained tokens sits there: 0, 1, ...; 0 where nothing is trained)."""

    mask: torch.Tensor
    sample_ids: torch.Tensor
    token: torch.Tensor


def lay_out(
    lengths: Sequence[int],
    layout: str = "right",
    pad_to_multiple_of: int | None = None,
    *,
    row_length: int | None = None,
) -> LaidOut:
    """Sample b's ``lengths[b]`` trained tokens, right-padded, left-padded or packed (``layout``).

    Padded: one row per sample, as :func:`mask_from_lengths`. Packed: rows of ``row_length``
    positions (default ``2 * (max(lengths) + 1)``, room for about two long samples, rounded up to
    ``pad_to_multiple_of``), as :func:`pack_lengths`: a piece's first position is its unlabelled token,
    so sample b's j-th trained token sits at ``start_b + 1 + j``.
    """
    if layout not in BATCH_LAYOUTS:
        raise ValueError(f"layout must be one of {BATCH_LAYOUTS}, got {layout!r}")
    lengths = _check_lengths(lengths, allow_zero=False)
    if layout == "packed":
        row = _round_up(2 * (max(lengths) + 1), pad_to_multiple_of)
        mask, ids = pack_lengths(lengths, row if row_length is None else row_length)
        cols = torch.arange(mask.shape[1]).expand_as(ids)
        start = torch.stack([cols[ids == b].min() for b in range(len(lengths))])
        token = cols - start[ids.clamp_min(0)] - 1
    else:
        mask = mask_from_lengths(lengths, layout, pad_to_multiple_of)
        rows = torch.arange(len(lengths)).unsqueeze(1).expand_as(mask)
        ids = torch.where(mask > 0, rows, -1)
        token = mask.cumsum(1).long() - 1
    return LaidOut(mask, ids, torch.where(mask > 0, token, 0))


def sample_logits(
    num_samples: int, length: int, vocab: int, *, seed: int = 0, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded logits ``[S, J, V]`` ~ N(0, 1) and labels ``[S, J]`` uniform in ``[0, V)``, per sample.

    Drawn on the CPU with their own generator (the same numbers on every device), then moved to
    ``device``. Sample s's j-th trained token is scored by ``logits[s, j]`` against ``labels[s, j]``.
    """
    shape = [positive_int(n, v) for n, v in (("num_samples", num_samples), ("length", length))]
    vocab = integer("vocab", vocab, low=2)
    gen = torch.Generator().manual_seed(integer("seed", seed))
    logits = torch.randn(*shape, vocab, generator=gen)
    labels = torch.randint(0, vocab, shape, generator=gen)
    return logits.to(device), labels.to(device)


def laid_out_token_losses(
    laid: LaidOut, logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """``l[b, t] = CE(logits[s, j], labels[s, j])`` for ``s = sample_ids[b, t], j = token[b, t]``.

    ``logits: [S, J, V]``, ``labels: [S, J]`` (:func:`sample_logits`) -> ``[B, T]`` on their device,
    0 where the mask is 0. A sample's token gets the same loss in every layout.
    """
    num_samples, length = labels.shape
    if int(laid.sample_ids.max()) >= num_samples or int(laid.token.max()) >= length:
        raise ValueError(
            f"logits for {num_samples} samples of {length} tokens are too few for this batch "
            f"({int(laid.sample_ids.max()) + 1} samples, up to {int(laid.token.max()) + 1} "
            "tokens): draw them with sample_logits for at least that many"
        )
    dev = logits.device
    s, j = laid.sample_ids.clamp_min(0).to(dev), laid.token.to(dev)
    trained = torch.where(laid.mask.to(dev) > 0, labels[s, j], -100)
    return token_losses(logits[s, j], trained)
