"""The training recipe, top to bottom: setup (device, dtype, model, optimiser, data as forward passes), then the
loop in train(): the step, evals, checkpoints, and the outputs at the finish.

No Trainer class: train() owns the loop, so what happens in a step can be read in one place.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from finch.errors import SettingError, UsageError
from finch.inference.base import PromptFormat
from finch.train.bf16_embedding import keep_embedding_in_bf16
from finch.train.checkpoint import TrainerState, latest_checkpoint, load_checkpoint, save_checkpoint
from finch.train.config import DEFAULT_MAX_GRAD_NORM, TRAIN_SETTINGS, TrainConfig, lora_config, optimizer_name
from finch.train.context import RunContext
from finch.train.data import (
    Sample,
    TrainData,
    file_hash,
)
from finch.train.lora_linear import use_fused_lora
from finch.train.loss import chunked_loss_sum
from finch.train.packed_attention import use_packed_attention
from finch.train.packing import Batch, collate, pack, pack_fullest
from finch.train.process_group import SINGLE, ProcessGroup
from finch.train.run_dir import RunFiles, plot_loss, write_run_yaml

# Tokens per forward pass on a CPU: fewer, fuller passes run faster, and activations (~1.0 MB a token for Gemma 3
# 270M with LoRA) set a step's peak memory. In the training benchmark, with the embedding in bf16 (medians of 3):
# 384 -> 141, 127, 128 tok/s, 2.0 GB; 512 -> 133, 132, 142 tok/s, 2.2 GB; 640 -> 126 tok/s, 2.3 GB.
CPU_FORWARD_TOKENS = 512


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    train_loss: float | None
    eval_loss: float | None
    tokens_per_s: float
    peak_rss_gb: float
    log: list[dict] = field(default_factory=list)
    best_eval_loss: float | None = None  # the adapter that scored it is in run_dir / "best"


def epoch_groups(samples: list[Sample], config: TrainConfig, epoch: int, shuffle: bool) -> list[list[Sample]]:
    """One epoch's micro-batches: `batch_size` samples each, in a seeded shuffle (a pure function of seed and
    epoch, so a resumed run sees the same order)."""
    order = list(range(len(samples)))
    if shuffle:
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        order = torch.randperm(len(samples), generator=generator).tolist()
    size = config.batch_size
    return [[samples[i] for i in order[at : at + size]] for at in range(0, len(order), size)]


def forward_passes(
    groups: list[list[Sample]], config: TrainConfig, pad_id: int, forward_tokens: int | None
) -> list[Batch]:
    """The forward passes that compute one process's micro-batches of a step. Without `forward_tokens`, one pass
    per micro-batch over rows of up to max_seq_len packed tokens, padded to the longest. With it, the micro-batches'
    samples pool and pack into unpadded rows of at most that many tokens (a longer sample alone), one row a pass:
    the same summed gradients from activations for a few hundred tokens at a time, in as few, as full passes as
    the samples allow (a thin pass wastes its matmuls)."""
    if forward_tokens is None:
        return [collate(pack(group, config.max_seq_len), pad_id) for group in groups]
    pooled = [sample for group in groups for sample in group]
    return [collate([row], pad_id) for row in pack_fullest(pooled, min(forward_tokens, config.max_seq_len))]


def group_stream(samples: list[Sample], config: TrainConfig, state: TrainerState) -> Iterator[list[Sample]]:
    """Micro-batches from the data position in `state` on, epoch after epoch; advances the position as it goes."""
    while True:
        groups = epoch_groups(samples, config, state.epoch, True)
        while state.batch_in_epoch < len(groups):
            group = groups[state.batch_in_epoch]
            state.batch_in_epoch += 1
            yield group
        state.epoch += 1
        state.batch_in_epoch = 0


def checkpoint_due(config: TrainConfig, step: int, total_steps: int) -> bool:
    """Every save_every steps before the last (the run directory holds the last), and at each checkpoint_steps."""
    return step in config.checkpoint_steps or bool(
        config.save_every and step % config.save_every == 0 and step < total_steps
    )


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """Whole warmup steps, rounded down: a 4-step run has none rather than a first step at a fraction of the lr."""
    return int(config.warmup_ratio * total_steps)


def cosine_with_warmup(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def causal_lm_parts(model) -> tuple[torch.nn.Module, torch.Tensor, float | None]:
    """(decoder stack, output-head weight, final logit soft-cap) of a causal LM, under a PEFT wrapper or not."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    softcap = getattr(inner.config, "final_logit_softcapping", None)
    return inner.get_decoder(), inner.get_output_embeddings().weight, softcap


def batch_loss_sum(decoder, head_weight, softcap, batch: Batch, device, chunk: int) -> tuple[torch.Tensor, int]:
    # use_cache=False matters: with a cache, transformers skips the packed-sequence (block-diagonal) mask.
    hidden = decoder(
        input_ids=batch.input_ids.to(device), position_ids=batch.position_ids.to(device), use_cache=False
    ).last_hidden_state
    return chunked_loss_sum(hidden, batch.labels.to(device), head_weight, softcap, chunk)


@torch.no_grad()
def evaluate(model, passes: list[Batch], device, chunk: int, group: ProcessGroup = SINGLE) -> float:
    """Mean loss per labelled token over this process's `passes`, added up across processes."""
    decoder, head_weight, softcap = causal_lm_parts(model)
    model.eval()
    total, count = 0.0, 0
    for batch in passes:
        loss_sum, n = batch_loss_sum(decoder, head_weight, softcap, batch, device, chunk)
        total, count = total + float(loss_sum), count + n
    model.train()
    return group.sum(total) / max(group.sum(count), 1)


def save_best(model, folder: Path) -> None:
    """The adapter as it is now, replacing the previous best in one rename."""
    import shutil

    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def save_tokenizer(hf_dir: Path, render: PromptFormat, run_dir: Path) -> None:
    """The model's tokenizer with the chat format it trains in (a base model's family format if it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if not tokenizer.chat_template:
        tokenizer.chat_template = render.template
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(run_dir)


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise), so they don't count in later peaks."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def load_model(hf_dir: Path, config: TrainConfig, dtype: str, device: str, init_adapter: Path | None = None):
    """The base model in the profile's dtype with fresh LoRA adapters (seeded, so runs repeat), or with the
    adapter in `init_adapter` (a phase that continues the previous one's best)."""
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the run's own progress bar follows; a weight-loading bar is noise before it
    if config.method == "full":  # every weight trains; a previous phase's result is the starting model
        model = AutoModelForCausalLM.from_pretrained(init_adapter or hf_dir, dtype=getattr(torch, dtype)).to(device)
    elif config.method == "qlora":
        model = load_nf4_model(hf_dir, config)
    else:
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=getattr(torch, dtype)).to(device)
    if device == "cpu":
        use_packed_attention(model)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.method == "full":
        return model
    torch.manual_seed(config.seed)
    if init_adapter is not None:
        model = PeftModel.from_pretrained(model, init_adapter, is_trainable=True)
    else:
        try:
            model = get_peft_model(model, lora_config(config))
        except ValueError as e:
            raise SettingError(TRAIN_SETTINGS, "lora_targets", f"{config.lora_targets}: {e}") from None
    if device == "cpu":
        use_fused_lora(model)
    return model


def load_nf4_model(hf_dir: Path, config: TrainConfig):
    """QLoRA's base (CUDA only): bitsandbytes NF4 weights with double quantisation, bf16 compute."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(
        hf_dir, quantization_config=quantization, dtype=torch.bfloat16, device_map={"": 0}
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)


def make_optimizer(config: TrainConfig, params):
    """torch's AdamW, or bitsandbytes' 8-bit and paged AdamW (paged state moves to CPU memory when the GPU runs
    short; QLoRA's default)."""
    name = optimizer_name(config)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    import bitsandbytes

    kind = {
        "adamw8bit": bitsandbytes.optim.AdamW8bit,
        "paged_adamw": bitsandbytes.optim.PagedAdamW,
        "paged_adamw8bit": bitsandbytes.optim.PagedAdamW8bit,
    }[name]
    return kind(params, lr=config.lr, weight_decay=config.weight_decay)


class StepInBackward:
    """The optimiser stepped inside the backward pass (torchtune's optimizer_in_bwd): as each weight's gradient is
    complete, its squared norm is added up (for the log), the optimiser steps that weight alone (the others have no
    gradient at that moment) and the gradient is freed. A full fine-tune then holds one weight's gradient at a time
    instead of all of them."""

    def __init__(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]):
        self.optimizer, self.squared_norm = optimizer, 0.0
        self.handles = [p.register_post_accumulate_grad_hook(self._step) for p in params]

    def _step(self, param: torch.Tensor) -> None:
        self.squared_norm = self.squared_norm + param.grad.detach().float().pow(2).sum()  # on the device: no sync
        self.optimizer.step()
        param.grad = None

    def grad_norm(self) -> float:
        """The step's gradient norm (never clipped), and a fresh sum for the next step."""
        norm, self.squared_norm = float(self.squared_norm) ** 0.5, 0.0
        return norm


@dataclass
class Recipe:
    """A run set up once (device, dtype, model, optimiser, data as forward passes, the step count), then read by the
    step, the evals, the checkpoints and the outputs."""

    config: TrainConfig
    run_dir: Path
    group: ProcessGroup
    device: str
    files: RunFiles
    lineage: dict  # what run.yaml records besides the config: base model, data hash, dtype, device, steps
    model: torch.nn.Module
    trainable: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    in_backward: StepInBackward | None  # the optimiser steps inside the backward pass
    samples: list[Sample]
    eval_passes: list[Batch]  # this process's share of the test split
    pad_id: int
    forward_tokens: int | None
    micro_per_step: int  # micro-batches in one optimiser step, over all processes
    per_epoch: int  # micro-batches in one epoch
    total_steps: int


def setup(
    config: TrainConfig,
    data: TrainData,
    run: RunContext,
    init_adapter: Path | None,
    group: ProcessGroup,
    on_message: Callable[[str], None],
) -> Recipe:
    device = run.device
    torch.manual_seed(config.seed)
    if group.main:
        save_tokenizer(run.hf_dir, data.render, run.run_dir)
    release_freed_memory()  # the tokenizers' tables are gone: their pages should not count in the run's peak
    for warning in data.train.warnings + (data.test.warnings if data.test else []):
        on_message(f"warning: {warning}")
    forward_tokens = config.forward_tokens or (CPU_FORWARD_TOKENS if device == "cpu" else None)
    if config.optimizer_in_backward:
        forward_tokens = None  # one backward per step: the weights are stepped in it
    eval_groups = epoch_groups(data.test.samples, config, 0, False) if data.test else []
    eval_passes = forward_passes(eval_groups[group.rank :: group.world], config, data.pad_id, forward_tokens)
    per_epoch = len(epoch_groups(data.train.samples, config, 0, True))
    micro_per_step = config.grad_accum * group.world  # every process reads them all and trains on its share
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * per_epoch / micro_per_step))
    lineage = {
        **run.lineage(),
        "data_hash": file_hash(data.train_file, data.test_file, *data.extra_files),
        "train_samples": len(data.train.samples),
        "test_samples": len(data.test.samples) if data.test else 0,
        "skipped_too_long": data.train.skipped_too_long,
        "total_steps": total_steps,
    }
    model = load_model(run.hf_dir, config, run.dtype, device, init_adapter)
    if device == "cpu" and keep_embedding_in_bf16(model):
        lineage["embedding_dtype"] = "bfloat16"
        release_freed_memory()
    model.train()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = make_optimizer(config, list(trainable.values()))
    in_backward = StepInBackward(optimizer, list(trainable.values())) if config.optimizer_in_backward else None
    warmup = warmup_steps(config, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(warmup, total_steps))
    return Recipe(
        config=config,
        run_dir=run.run_dir,
        group=group,
        device=device,
        files=RunFiles(run.run_dir),
        lineage=lineage,
        model=model,
        trainable=trainable,
        optimizer=optimizer,
        scheduler=scheduler,
        in_backward=in_backward,
        samples=data.train.samples,
        eval_passes=eval_passes,
        pad_id=data.pad_id,
        forward_tokens=forward_tokens,
        micro_per_step=micro_per_step,
        per_epoch=per_epoch,
        total_steps=total_steps,
    )


def start_or_resume(recipe: Recipe, resume: bool, on_message: Callable[[str], None]) -> TrainerState:
    """The state to go on from: step 0 with a new log, or the last checkpoint's (its log cut back to it)."""
    files, run_dir, main = recipe.files, recipe.run_dir, recipe.group.main
    state = TrainerState(step=0, epoch=0, batch_in_epoch=0)
    if resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise UsageError(f"--resume {run_dir}: no checkpoint there yet; start the run again without --resume.")
        if files.read_run_yaml().get("data_hash") != recipe.lineage["data_hash"]:
            raise UsageError(f"--resume {run_dir}: the data changed since the run started; resume needs the same data.")
        state = load_checkpoint(checkpoint, recipe.model, recipe.optimizer, recipe.scheduler)
        if main:
            files.truncate_log(state.step)
        on_message(f"resuming {run_dir} from step {state.step} of {recipe.total_steps}")
    elif main:
        files.start_log()
    if main:
        write_run_yaml(files, recipe.config, recipe.lineage, status="running")
    return state


@dataclass
class StepResult:
    loss: float  # mean per labelled token, over every process
    grad_norm: float
    lr: float
    tokens: int  # over every process


def train_step(recipe: Recipe, micro_batches: list[list[Sample]], parts) -> StepResult:
    """One optimiser step over `micro_batches`: this process's share forward and backward, gradients summed
    across processes, clipped, applied (or, with the optimiser in the backward pass, applied as they came)."""
    config, group = recipe.config, recipe.group
    decoder, head_weight, softcap = parts
    passes = [
        forward_passes(micro_batches[r :: group.world], config, recipe.pad_id, recipe.forward_tokens)
        for r in range(group.world)
    ]
    # Mean over the step's labelled tokens, however they fall into passes and processes.
    step_labels = sum(batch.n_labels for share in passes for batch in share)
    loss = 0.0
    for batch in passes[group.rank]:
        loss_sum, _ = batch_loss_sum(decoder, head_weight, softcap, batch, recipe.device, config.loss_chunk_tokens)
        (loss_sum / step_labels).backward()
        loss += loss_sum.item() / step_labels
    lr = recipe.scheduler.get_last_lr()[0]
    if recipe.in_backward is not None:  # stepped already, weight by weight, and not clipped
        grad_norm = recipe.in_backward.grad_norm()
    else:
        group.sum_gradients(recipe.trainable.values())
        clip = config.max_grad_norm or DEFAULT_MAX_GRAD_NORM
        grad_norm = float(torch.nn.utils.clip_grad_norm_(recipe.trainable.values(), clip))
        recipe.optimizer.step()
        recipe.optimizer.zero_grad(set_to_none=True)
    recipe.scheduler.step()
    return StepResult(group.sum(loss), grad_norm, lr, sum(batch.n_tokens for share in passes for batch in share))


def evaluate_and_keep_best(recipe: Recipe, state: TrainerState) -> float:
    """The eval loss now; an eval that beats the best so far saves the adapter to run_dir / "best"."""
    loss = evaluate(recipe.model, recipe.eval_passes, recipe.device, recipe.config.loss_chunk_tokens, recipe.group)
    if state.best_eval_loss is None or loss < state.best_eval_loss:
        state.best_eval_loss, state.evals_without_improvement = loss, 0
        if recipe.group.main:
            save_best(recipe.model, recipe.run_dir / "best")
    else:
        state.evals_without_improvement += 1
    return loss


def finish(recipe: Recipe, state: TrainerState, log: list[dict], last_eval: float | None, speed: float) -> TrainResult:
    """The adapter, the loss plot and the finished run.yaml (the main process); every process's result."""
    train_loss = log[-1]["loss"] if log else None
    result = TrainResult(
        recipe.run_dir, state.step, train_loss, last_eval, speed, round(peak_rss_gb(), 3), log, state.best_eval_loss
    )
    if not recipe.group.main:
        return result  # tokens_per_s: this process's share
    recipe.model.save_pretrained(recipe.run_dir)
    plot_loss(log, recipe.run_dir / "loss.png")
    outcome = {
        "steps": result.steps,
        "train_loss": result.train_loss,
        "eval_loss": result.eval_loss,
        "tokens_per_s": result.tokens_per_s,
        "peak_rss_gb": result.peak_rss_gb,
        "best_eval_loss": result.best_eval_loss,
    }
    write_run_yaml(recipe.files, recipe.config, recipe.lineage, status="finished", result=outcome)
    return result


def train(
    config: TrainConfig,
    data: TrainData,
    run: RunContext,
    on_step: Callable[[dict], None] | None = None,
    on_message: Callable[[str], None] = lambda message: None,
    init_adapter: Path | None = None,
    group: ProcessGroup = SINGLE,
) -> TrainResult:
    """Train LoRA adapters (or every weight) on the run's base model and write its run directory; a resumed run
    continues from its last checkpoint. Every eval that beats the best so far saves the adapter to run_dir / "best"."""
    recipe = setup(config, data, run, init_adapter, group, on_message)
    state = start_or_resume(recipe, run.resume, on_message)
    parts = causal_lm_parts(recipe.model)
    stream = group_stream(recipe.samples, config, state)
    log = recipe.files.read_log()
    last_eval = None
    tokens_seen, train_seconds = 0, 0.0  # optimiser steps only: evals and checkpoints are not throughput
    while state.step < recipe.total_steps:
        started = time.monotonic()
        step = train_step(recipe, [next(stream) for _ in range(recipe.micro_per_step)], parts)
        state.step += 1
        seconds = time.monotonic() - started
        tokens_seen, train_seconds = tokens_seen + step.tokens, train_seconds + seconds
        record = {
            "step": state.step,
            "epoch": round(state.epoch + state.batch_in_epoch / max(recipe.per_epoch, 1), 4),
            "loss": round(step.loss, 6),
            "lr": step.lr,
            "grad_norm": round(step.grad_norm, 6),
            "tokens": step.tokens,
            "tokens_per_s": round(step.tokens / max(seconds, 1e-9), 2),
            "peak_rss_gb": round(peak_rss_gb(), 3),
        }
        if recipe.device == "cuda":
            record["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
        due_eval = state.step in config.checkpoint_steps or (config.eval_every and state.step % config.eval_every == 0)
        if recipe.eval_passes and (due_eval or state.step == recipe.total_steps):
            last_eval = evaluate_and_keep_best(recipe, state)
            record["eval_loss"] = round(last_eval, 6)
        log.append(record)
        if group.main:
            recipe.files.append_log(record)
            if on_step:
                on_step({**record, "total_steps": recipe.total_steps})
        if group.main and checkpoint_due(config, state.step, recipe.total_steps):
            keep = None if config.keep_checkpoints == "all" else config.keep_checkpoints
            save_checkpoint(run.run_dir, state, recipe.model, recipe.optimizer, recipe.scheduler, keep)
        patience = config.early_stopping_patience
        if patience and state.evals_without_improvement >= patience:
            on_message(f"early stop at step {state.step}: eval loss did not improve in {patience} evals")
            break
    return finish(recipe, state, log, last_eval, round(tokens_seen / max(train_seconds, 1e-9), 2))
