"""One training epoch: batches from the loader (:mod:`pyutils.training.loader`:
this rank's share, loaded by worker processes or one batch ahead in a thread,
on the device), optimiser steps (micro-batches, mixed precision, gradient clipping), validation.

:func:`train_step` is shared by the trainer and the benchmark (bench/run_bench.py).
"""
from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
import torch.distributed as dist

from pyutils.training.loader import BatchPlan, ChunkLoader, to_device
from pyutils.utils.progress import progress as show_progress


def collate(source, batch, rng=None):
    """Stack the chunks of a batch into (inputs, labels) tensors (validation's fixed chunks)."""
    inputs = np.stack([source.chunk(u, o, n, rng) for u, o, n in batch]).astype(np.float32)
    return torch.from_numpy(inputs), torch.from_numpy(source.labels[[u for u, _, _ in batch]])


def epoch_loader(source, batches, rank, seed, epoch, device):
    """A one-epoch :class:`ChunkLoader` over explicit global batches, in this process."""
    plan = BatchPlan.from_batches(batches, seed, epoch, rank.rank, rank.world)
    return ChunkLoader(source, plan, num_workers=0, device=device)


def _buffers(net):
    return [b for b in getattr(net, "module", net).buffers()]


def train_step(net, loss_fn, optimizer, scheduler, inputs, labels, grad_clip: float,
               scaler=None, micro_batches: int = 1):
    """One optimiser step on a batch; returns (loss, logits).  ``scaler``: fp16's GradScaler.

    ``micro_batches`` > 1 cuts the batch into micro-batches ``[j::micro_batches]`` (batch-norm
    statistics per micro-batch, gradients averaged), which is what DDP computes
    when each rank holds one of them: a run's numbers do not depend on how many
    processes share the micro-batches.  As under DDP (whose buffer broadcast
    keeps rank 0's), only the first micro-batch updates the running statistics.
    """
    if hasattr(loss_fn, "set_step"):
        loss_fn.set_step(scheduler.last_epoch)       # global step: margin warm-up
    optimizer.zero_grad(set_to_none=True)
    losses, all_logits, kept = [], [None] * micro_batches, None
    for j in range(micro_batches):
        sync = j == micro_batches - 1 or not hasattr(net, "no_sync")
        with (contextlib.nullcontext() if sync else net.no_sync()):
            loss, logits = net(inputs[j::micro_batches], labels[j::micro_batches])
            scaled = loss / micro_batches
            (scaled if scaler is None else scaler.scale(scaled)).backward()
        if j == 0 and micro_batches > 1:
            kept = [b.detach().clone() for b in _buffers(net)]
        elif kept is not None:
            with torch.no_grad():
                for b, k in zip(_buffers(net), kept):
                    b.copy_(k)
        losses.append(loss.detach())
        all_logits[j] = logits.detach()
    loss = torch.stack(losses).mean()
    logits = torch.empty((len(labels),) + all_logits[0].shape[1:], dtype=all_logits[0].dtype,
                         device=all_logits[0].device)
    for j in range(micro_batches):
        logits[j::micro_batches] = all_logits[j]
    if scaler is None:
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
    else:
        if grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
    scheduler.step()
    return loss, logits


def run_epoch(net, optimizer, scheduler, source, batches, grad_clip, seed,
               epoch, epochs, rank, device=torch.device("cpu"), scaler=None,
               micro_batches: int = 1) -> dict:
    """One pass over ``batches`` (this rank's share of each); returns mean stats.

    ``batches``: a :class:`ChunkLoader` (the trainer's, with its workers), or
    the epoch's global chunk lists, then loaded in this process."""
    net.train()
    loss_fn = getattr(net, "module", net).loss_fn
    total_loss = total_correct = total = 0.0
    start = time.time()
    step_losses = []
    loader = batches if isinstance(batches, ChunkLoader) else epoch_loader(
        source, batches, rank, seed, epoch, device)
    batches_in = loader.epoch(epoch)
    progress = (show_progress(batches_in, total=len(batches_in), desc=f"epoch {epoch}/{epochs}",
                              unit="batch") if rank.main else _Quiet(batches_in))
    for inputs, labels in progress:
        loss, logits = train_step(net, loss_fn, optimizer, scheduler, inputs, labels, grad_clip,
                                  scaler, micro_batches)
        global_loss = loss.detach().float().clone()
        if rank.world > 1:     # the step's loss over the whole batch (all ranks)
            dist.all_reduce(global_loss)
            global_loss /= rank.world
        step_losses.append(float(global_loss))
        total_loss += loss.item() * len(labels)
        total_correct += (logits.argmax(1) == labels).sum().item()
        total += len(labels)
        rate = total * rank.world / max(1e-9, time.time() - start)
        progress.set_postfix(loss=f"{total_loss / total:.3f}",
                             acc=f"{total_correct / total:.3f}", chunks_s=f"{rate:.1f}")
    seconds = time.time() - start
    extra = ({"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
             if device.type == "cuda" else {})
    # loss: of the whole batch (all ranks); accuracy: this rank's share
    return {**extra, "loss": float(np.mean(step_losses)), "accuracy": total_correct / total,
            "chunks_per_s": total * rank.world / max(1e-9, seconds),
            "chunks": int(total * rank.world), "seconds": seconds, "step_losses": step_losses}


@torch.no_grad()
def validate(net, source, chunk_range, batch_size, seed, device=torch.device("cpu")) -> dict:
    """Loss and accuracy on fixed chunks of the held-out utterances (no augmentation)."""
    net.eval()
    lengths = np.asarray(source.lengths)
    frames = min(chunk_range[1], int(lengths.min()))
    rng = np.random.default_rng([seed, 0, 99])
    offsets = [int(rng.integers(0, n - frames + 1)) for n in lengths]
    total_loss = total_correct = 0.0
    for start in range(0, len(source), batch_size):
        batch = [(i, offsets[i], frames) for i in range(start, min(len(source), start + batch_size))]
        inputs, labels = to_device(*collate(source, batch), device)
        loss, logits = net(inputs, labels)
        total_loss += loss.item() * len(batch)
        total_correct += (logits.argmax(1) == labels).sum().item()
    return {"valid_loss": total_loss / len(source), "valid_accuracy": total_correct / len(source)}


class _Quiet:
    """What ranks other than 0 iterate instead of a progress bar."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, *args, **kwargs) -> None:
        pass
