"""Data-parallel training on torch.distributed: process groups, shards, and the few collectives the loop needs.

Two ways in, one code path. `trainer.devices=N` makes the `python -m cnnbench` process rank 0 and spawns
ranks 1..N-1 on this machine; `torchrun --nproc_per_node=N -m cnnbench ...` starts every rank itself and
passes RANK/WORLD_SIZE/LOCAL_RANK in the environment. Either way each rank holds the (device-resident)
data, trains on its shard of every epoch's permutation, and only rank 0 writes the run directory.
Outside a process group every helper here is a no-op, so one-process runs pay nothing.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..errors import Aborted, CnnbenchError, ConfigError

log = logging.getLogger(__name__)

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
THREADS_VARIABLE = "CNNBENCH_THREADS_PER_PROCESS"  # set in the ranks `trainer.devices` spawns
# A collective waits this long for a slow rank before failing; checkpoints and evaluation fit well inside.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
INTERRUPTED_EXIT_CODES = (128 + signal.SIGINT, 128 + signal.SIGTERM)


@dataclass(frozen=True)
class Ranks:
    """Which process this is among `world_size` data-parallel processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


ONE_PROCESS = Ranks()


def current() -> Ranks:
    if not is_active():
        return ONE_PROCESS
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    return not is_active() or dist.get_rank() == 0


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES) and int(os.environ["WORLD_SIZE"]) > 1


def scratch_run_dir_overrides() -> list[str]:
    """Hydra overrides that keep a torchrun rank other than 0 out of outputs/ (rank 0 alone makes the run
    directory); none for rank 0 or outside torchrun. The scratch folder is deleted when the process exits."""
    if not launched_by_torchrun() or os.environ["RANK"] == "0":
        return []
    scratch = tempfile.mkdtemp(prefix=f"cnnbench-rank{os.environ['RANK']}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device, local_rank: int) -> torch.device:
    """Each rank of a CUDA run gets its own GPU: cuda:<local rank>."""
    return torch.device("cuda", local_rank) if device.type == "cuda" else device


# --- which images each rank takes -------------------------------------------------------------------------

def batch_indices(order: torch.Tensor | None, count: int, batch_size: int, ranks: Ranks, start_step: int = 0,
                  device: torch.device | None = None, training: bool = False,
                  drop_last: bool = False) -> Iterator[slice | torch.Tensor]:
    """The positions of each batch of a pass over `count` images in `order` (None = 0..count-1), from `start_step`.

    `batch_size` is the global batch: in a data-parallel run rank r takes every world_size-th image of each
    global batch from the r-th on, so the ranks together see exactly the batches one process would. Parts
    may be empty (an evaluation batch smaller than the world size); a `training` pass leaves such a batch out.
    """
    for step in range(start_step, steps_per_pass(count, batch_size, ranks, training, drop_last)):
        start, stop = step * batch_size, min((step + 1) * batch_size, count)
        if ranks.world_size == 1:
            yield slice(start, stop) if order is None else order[start:stop]
        else:
            positions = torch.arange(start, stop, device=device) if order is None else order[start:stop]
            yield positions[ranks.rank::ranks.world_size]


def steps_per_pass(count: int, batch_size: int, ranks: Ranks, training: bool, drop_last: bool = False) -> int:
    """Batches in a pass; a training pass of several ranks skips a last batch too small to give each rank an image
    (every rank must take part in every step), and with `drop_last` any last batch smaller than the others (a
    compiled model would otherwise be compiled again for its shape)."""
    steps = math.ceil(count / batch_size)
    short = count % batch_size
    if training and (0 < short < ranks.world_size or drop_last and short and count > batch_size):
        steps -= 1
    return steps


# --- collectives (no-ops in one process) --------------------------------------------------------------------

def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Sum each tensor over all ranks, in place."""
    if is_active():
        for tensor in tensors:
            dist.all_reduce(tensor)


def agreed_max(value: int, device: torch.device) -> int:
    """The largest `value` any rank holds (every rank gets it): stop and divergence decisions are shared."""
    if not is_active():
        return value
    tensor = torch.tensor(value, device=device, dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def broadcast_from_main(obj):
    """Rank 0's `obj` on every rank."""
    if not is_active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_all(obj) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if not is_active():
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if is_active():
        dist.barrier()


# --- starting and ending a process group --------------------------------------------------------------------

@contextmanager
def process_group(devices: int, device: torch.device, child_args: tuple):
    """Join (torchrun) or create (`trainer.devices` > 1) a process group around a run; yields this rank's Ranks.

    `child_args` (run_fn, plain config, threads) are passed to `spawned_rank` for every rank this process spawns.
    """
    if launched_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if devices not in (1, world):
            raise ConfigError(f"trainer.devices={devices} is not allowed under torchrun (WORLD_SIZE={world}): "
                              "leave it at 1, torchrun's --nproc_per_node sets the processes")
        ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"]))
        _init(device, ranks, "env://")
        with _destroyed_on_exit():
            yield ranks
        return
    if devices == 1:
        yield Ranks()
        return
    _check_devices(devices, device)
    port = free_port()
    children = mp.start_processes(spawned_rank, args=(devices, port, *child_args), nprocs=devices - 1,
                                  join=False, start_method="spawn")
    ranks = Ranks(0, devices, 0)
    try:
        _init(device, ranks, f"tcp://127.0.0.1:{port}")
        with _destroyed_on_exit():
            yield ranks
    except BaseException as err:
        stopped = isinstance(err, Aborted | KeyboardInterrupt)  # a signal: the other ranks go too, at once
        failed = _join(children, timeout_s=1 if stopped else 5, expected=stopped)
        if failed and isinstance(err, Exception) and not isinstance(err, CnnbenchError):  # only a broken connection
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CnnbenchError(f"{_describe(failed[0])}; rank 0 stopped: {reason}") from err
        raise
    failed = _join(children, timeout_s=60)
    if failed:
        raise CnnbenchError(_describe(failed[0]))


def _check_devices(devices: int, device: torch.device) -> None:
    if device.type == "cuda" and devices > torch.cuda.device_count():
        raise ConfigError(f"trainer.devices={devices} is not allowed: this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cuda", "cpu"):
        raise ConfigError(f"trainer.devices={devices} is not allowed with trainer.device={device.type}: "
                          "data-parallel runs use CUDA (nccl) or the CPU (gloo)")


def _init(device: torch.device, ranks: Ranks, init_method: str) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(ranks.local_rank)
    dist.init_process_group(backend_for(device), init_method=init_method, rank=ranks.rank,
                            world_size=ranks.world_size, timeout=COLLECTIVE_TIMEOUT)
    log.info("rank %d of %d joined the %s process group", ranks.rank, ranks.world_size, backend_for(device))


@contextmanager
def _destroyed_on_exit():
    try:
        yield
    finally:
        dist.destroy_process_group()


def _join(children: mp.ProcessContext, timeout_s: float, expected: bool = False) -> list[tuple[int, int]]:
    """Wait for the spawned ranks (terminating any still running after `timeout_s`, which is `expected` when the run
    was stopped by a signal); (rank, exit code) of failures."""
    for process in children.processes:
        process.join(timeout_s)
        if process.is_alive():
            log.log(logging.DEBUG if expected else logging.WARNING, "rank process %d did not exit; terminating it",
                    process.pid)
            process.terminate()
            process.join()
    return [(index + 1, p.exitcode) for index, p in enumerate(children.processes) if p.exitcode != 0]


def _describe(failure: tuple[int, int]) -> str:
    rank, exit_code = failure
    how = f"exited with code {exit_code}"
    if exit_code < 0 and -exit_code in signal.valid_signals():
        how = f"was killed by {signal.Signals(-exit_code).name}"
    return f"the training process of rank {rank} {how} (its own error, if it printed one, is above)"


def spawned_rank(index: int, world_size: int, port: int, run_fn: Callable[[dict], object], config: dict,
                 threads: int | None) -> None:
    """Entry point of a rank spawned by `trainer.devices`: `run_fn(config)` as rank 0 runs, told its rank by the env."""
    rank = index + 1
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    if threads is not None:
        os.environ[THREADS_VARIABLE] = str(threads)
    try:
        run_fn(config)
    except CnnbenchError as err:
        exit_code = getattr(err, "exit_code", 1)
        if exit_code not in INTERRUPTED_EXIT_CODES:  # an agreed stop: rank 0 says where to resume from
            print(f"rank {rank}: error: {err}", file=sys.stderr, flush=True)
        sys.exit(exit_code)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
