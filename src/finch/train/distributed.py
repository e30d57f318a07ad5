"""`--launcher accelerated`: the same loop in N processes (gloo on CPU, NCCL on CUDA), data-parallel.

The launcher writes launch.json into the run directory and starts N copies of this module, as torchrun would
(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the environment, so `accelerate launch` with one of the shipped
configs can start them too). Every process reads the same micro-batches; process r trains on every N-th one from
r, and the gradients are summed across processes after the backward passes. A step of N processes with
--grad-accum G is therefore the same step as one process with --grad-accum N x G: the same loss curve.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from finch.errors import UsageError
from finch.fileio import atomic_write_text
from finch.train.config import TrainConfig
from finch.train.context import RunContext
from finch.train.data import TrainData, read_train_data, save_train_data
from finch.train.loop import train
from finch.train.process_group import ProcessGroup

# accelerate configs (DDP, FSDP, DeepSpeed ZeRO-2) shipped as data for `accelerate launch`; finch's own launcher is
# the DDP one (summed gradients). FSDP and ZeRO shard state inside accelerate and are not run by this module.
CONFIGS_DIR = Path(__file__).with_name("accelerate_configs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config, data: TrainData, run: RunContext, on_message) -> None:
    """Start `config.processes` workers on this machine and wait for them; a failed worker stops the run. The
    workers read the data tokenized here (tokenized.safetensors) and the run context from launch.json."""
    if run.device == "cuda" and torch.cuda.device_count() < config.processes:
        raise UsageError(
            f"--gpus {config.processes}: this machine has {torch.cuda.device_count()} CUDA devices; ask for fewer."
        )
    save_train_data(data, run.run_dir / "tokenized.safetensors")
    context = {**asdict(run), "hf_dir": str(run.hf_dir), "run_dir": str(run.run_dir)}
    spec = {"config": config.model_dump(mode="json"), **context}
    atomic_write_text(run.run_dir / "launch.json", json.dumps(spec))
    port = _free_port()
    on_message(f"launching {config.processes} training processes ({'nccl' if run.device == 'cuda' else 'gloo'})")
    workers = []
    for rank in range(config.processes):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(config.processes),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        log = open(run.run_dir / f"worker-{rank}.log", "w", encoding="utf-8")  # noqa: SIM115 - the child owns it
        workers.append((subprocess.Popen([sys.executable, "-m", __name__, str(run.run_dir)], env=env, stderr=log), log))
    failed = []
    for rank, (worker, log) in enumerate(workers):
        if worker.wait() != 0:
            failed.append(rank)
        log.close()
    (run.run_dir / "tokenized.safetensors").unlink(missing_ok=True)  # a resumed run tokenizes the data again
    if failed:
        tail = (run.run_dir / f"worker-{failed[0]}.log").read_text(encoding="utf-8").strip().splitlines()[-1:]
        raise RuntimeError(f"training process {failed[0]} failed: {' '.join(tail)} (see {run.run_dir}/worker-*.log)")


def worker(run_dir: Path) -> None:
    spec = json.loads((run_dir / "launch.json").read_text(encoding="utf-8"))
    config = TrainConfig.model_validate(spec.pop("config"))
    run = RunContext(**{**spec, "hf_dir": Path(spec["hf_dir"]), "run_dir": Path(spec["run_dir"])})
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if run.device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # processes share the cores
    torch.distributed.init_process_group("nccl" if run.device == "cuda" else "gloo")
    try:
        data = read_train_data(run_dir / "tokenized.safetensors")
        train(config, data, run, group=ProcessGroup(rank, world))
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
