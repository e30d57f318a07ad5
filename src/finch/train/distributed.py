"""`--pipeline accelerated`: the same loop in N processes (gloo on CPU, NCCL on CUDA), data-parallel.

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
from pathlib import Path

import torch

from finch.errors import UsageError
from finch.train.loop import load_data, train
from finch.train.process_group import ProcessGroup

# accelerate configs (DDP, FSDP, DeepSpeed ZeRO-2) shipped as data for `accelerate launch`; finch's own launcher is
# the DDP one (summed gradients). FSDP and ZeRO shard state inside accelerate and are not run by this module.
CONFIGS_DIR = Path(__file__).with_name("accelerate_configs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config, hf_dir: Path, base_model: str, run_dir: Path, resume: bool, on_message) -> None:
    """Start `config.processes` workers on this machine and wait for them; a failed worker stops the run."""
    from finch.system import system_info

    (run_dir / "launch.json").write_text(
        json.dumps(
            {
                "config": config.model_dump(mode="json"),
                "hf_dir": str(hf_dir),
                "base_model": base_model,
                "resume": resume,
            }
        ),
        encoding="utf-8",
    )
    device = system_info().profile.device
    if device == "cuda" and torch.cuda.device_count() < config.processes:
        raise UsageError(
            f"--gpus {config.processes}: this machine has {torch.cuda.device_count()} CUDA devices; ask for fewer."
        )
    port = _free_port()
    on_message(f"launching {config.processes} training processes ({'nccl' if device == 'cuda' else 'gloo'})")
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
        log = open(run_dir / f"worker-{rank}.log", "w", encoding="utf-8")  # noqa: SIM115 - the child owns it
        workers.append((subprocess.Popen([sys.executable, "-m", __name__, str(run_dir)], env=env, stderr=log), log))
    failed = []
    for rank, (worker, log) in enumerate(workers):
        if worker.wait() != 0:
            failed.append(rank)
        log.close()
    if failed:
        tail = (run_dir / f"worker-{failed[0]}.log").read_text(encoding="utf-8").strip().splitlines()[-1:]
        raise RuntimeError(f"training process {failed[0]} failed: {' '.join(tail)} (see {run_dir}/worker-*.log)")


def worker(run_dir: Path) -> None:
    from finch.train.config import TrainConfig

    spec = json.loads((run_dir / "launch.json").read_text(encoding="utf-8"))
    config = TrainConfig.model_validate(spec["config"])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # processes share the cores
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    try:
        hf_dir = Path(spec["hf_dir"])
        train(
            config,
            load_data(config, hf_dir),
            hf_dir,
            spec["base_model"],
            run_dir,
            resume=spec["resume"],
            group=ProcessGroup(rank, world),
        )
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
