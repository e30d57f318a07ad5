"""Memory and time of a training run before it starts, from the model's shape and the run's settings.

Memory is summed from parts a reader can check: the weights in their dtype (NF4 with double quantisation for
QLoRA), the trainable parameters, their gradients (one weight's at a time when the optimiser steps inside the
backward pass) and the optimiser state (AdamW's two moments in 4 bytes each, or 1 with bitsandbytes' 8-bit AdamW;
paged state on a GPU is counted apart, since it moves to CPU memory when the GPU runs short), the activations kept
for the backward pass (per token in flight, with or without gradient checkpointing), the loss buffers, and the
framework. On a CPU finch runs a step's samples through forward passes of at most `forward_tokens` tokens, so
that, not the batch, sets the activations (counted per layer, not fitted). The two fitted constants
(CPU_FRAMEWORK_GB, CPU_SHARE_OF_MATMUL) come from runs of the built-in model (benchmarks/plan_accuracy.py prints
predicted against measured).

Time is the run's training FLOPs (per token: forward 2 x matmul parameters plus attention; backward twice that for
full fine-tuning, once for frozen weights; a second forward under gradient checkpointing) over a throughput: on a
CPU, the matmul rate measured here (finch.plan.probe) times the share of it finch's loop reaches; on a GPU, the
datasheet's dense bf16 rate (GPU_TFLOPS, source named) times a typical utilisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from finch.plan.shape import ATTENTION, ModelShape, target_set
from finch.train.config import TrainConfig, optimizer_name

GB = 2**30
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BYTES = 0.5 + (8 / 64 + 32 / (64 * 256)) / 8  # 4 bits, plus double-quantised absmax per 64-weight block
ADAM_8BIT_BYTES = 2 + 2 * 4 / 256  # two 1-byte moments, each with an fp32 absmax per 256-weight block

CPU_FRAMEWORK_GB = 0.97  # python, torch, transformers, peft and finch imported, with the model's loading peaks
CUDA_FRAMEWORK_GB = 0.9  # CUDA context and kernels, plus the caching allocator's slack
CPU_SHARE_OF_MATMUL = 0.7  # finch's training step as a share of the probed matmul rate (fitted, built-in model)
# bitsandbytes' 8-bit AdamW on a CPU steps a tensor through fp32 temporaries: 3.1 GB for the built-in model's
# 0.63 GB embedding (bitsandbytes 0.50), five times the tensor in fp32
CPU_8BIT_STEP_TEMPORARIES = 5
GPU_UTILISATION = 0.4  # model FLOPs utilisation a well-fed single-GPU fine-tune reaches

# Dense bf16 (fp16 where the card has no bf16) tensor throughput, TFLOP/s, from each vendor's datasheet.
GPU_TFLOPS = {
    "h200": (989.0, "NVIDIA H200 datasheet (SXM, dense BF16)"),
    "h100": (989.0, "NVIDIA H100 datasheet (SXM, dense BF16)"),
    "a100": (312.0, "NVIDIA A100 datasheet (dense BF16)"),
    "l40s": (362.0, "NVIDIA L40S datasheet (dense BF16)"),
    "a10": (125.0, "NVIDIA A10 datasheet (dense BF16)"),
    "l4": (121.0, "NVIDIA L4 datasheet (dense BF16)"),
    "4090": (165.2, "NVIDIA Ada whitepaper, RTX 4090 (BF16, FP32 accumulate)"),
    "3090": (71.0, "NVIDIA Ampere whitepaper, RTX 3090 (BF16, FP32 accumulate)"),
    "t4": (65.0, "NVIDIA T4 datasheet (FP16)"),
    "v100": (125.0, "NVIDIA V100 datasheet (FP16)"),
}


@dataclass(frozen=True)
class Hardware:
    device: str  # cpu | cuda | mps
    gpus: int = 1
    available_gb: float | None = None  # per device
    matmul_tflops: float | None = None  # measured (CPU) or from GPU_TFLOPS
    throughput_source: str = ""
    sharding: str = "ddp"  # ddp | fsdp | zero2 | zero3 (several GPUs)


@dataclass
class MemoryPlan:
    parts: dict[str, float]  # GB per device, by part
    notes: list[str] = field(default_factory=list)
    paged_gb: float = 0.0  # optimiser state in CUDA paged memory: on the GPU while there is room, else in CPU memory

    @property
    def total_gb(self) -> float:
        return sum(self.parts.values())


@dataclass
class TimePlan:
    tokens: int
    flops: float
    seconds: float | None
    source: str


def weight_bytes(shape: ModelShape, config: TrainConfig, dtype: str) -> float:
    if config.method == "qlora":  # the linears in NF4; embedding, head and norms stay in bf16
        matmul = shape.layers * shape.layer_matmul_params
        return matmul * NF4_BYTES + (shape.params - matmul) * 2
    if config.method in ("lora", "dpo") and dtype == "float32":  # finch keeps a frozen embedding in bf16 (CPU)
        return shape.embedding_params * 2 + (shape.params - shape.embedding_params) * 4
    return shape.params * BYTES[dtype]


def activation_elements(shape: ModelShape) -> int:
    """Elements a gated decoder layer keeps for backward per token: its input and the norms' outputs, queries, keys
    and values before and after RoPE, the attention output, and the MLP's gate, up, activation and product."""
    attention, kv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    return 6 * shape.hidden + 3 * attention + 4 * kv + 4 * shape.intermediate


def tokens_in_flight(config: TrainConfig, device: str) -> int:
    """Tokens whose activations live at once: a forward pass's (CPU: forward_tokens, 512 by default), else a
    micro-batch of packed rows."""
    if config.optimizer_in_backward:  # one forward pass a step
        return config.batch_size * config.max_seq_len
    if device == "cpu":
        return min(config.forward_tokens or 512, config.max_seq_len)
    return config.forward_tokens or config.batch_size * config.max_seq_len


def largest_trainable(shape: ModelShape, config: TrainConfig) -> int:
    """Elements of the largest trainable tensor: the one gradient alive at a time when the optimiser steps inside
    the backward pass."""
    if config.method == "full":
        return max(shape.embedding_params, max(i * o for i, o in shape.linears().values()))
    sizes = [shape.linears()[name] for name in target_set(config.lora_targets)]
    return config.lora_rank * max(max(i, o) for i, o in sizes)


def plan_memory(shape: ModelShape, config: TrainConfig, hardware: Hardware, dtype: str) -> MemoryPlan:
    """Peak memory per device, by part."""
    full = config.method == "full"
    trainable = trainable_params(shape, config)
    trainable_bytes = BYTES[dtype] if full else 4  # PEFT keeps adapters in fp32
    optimizer = optimizer_name(config)
    # AdamW's two moments (+ fp32 master weights); bitsandbytes' 8-bit steps the weights in their own dtype
    adamw_bytes = 8 + (4 if full and dtype != "float32" else 0)
    state_bytes = ADAM_8BIT_BYTES if optimizer.endswith("8bit") else adamw_bytes
    gradients = largest_trainable(shape, config) if config.optimizer_in_backward else trainable
    parts = {
        "weights": weight_bytes(shape, config, dtype) if not full else shape.params * BYTES[dtype],
        "trainable parameters": 0.0 if full else trainable * trainable_bytes,
        "gradients": gradients * trainable_bytes,
        "optimiser state": trainable * state_bytes,
    }
    notes = []
    if config.optimizer_in_backward:
        notes.append("the optimiser steps inside the backward pass: one weight's gradient is alive at a time")
    if hardware.gpus > 1 and hardware.sharding != "ddp":
        shard = hardware.gpus
        parts["gradients"] /= shard if hardware.sharding in ("zero2", "zero3", "fsdp") else 1
        parts["optimiser state"] /= shard
        if hardware.sharding in ("zero3", "fsdp"):
            parts["weights"] /= shard
            parts["trainable parameters"] /= shard
        notes.append(f"{hardware.sharding} over {hardware.gpus} GPUs: per-GPU shares of the sharded parts")
    act_bytes = BYTES[dtype]
    in_flight = tokens_in_flight(config, hardware.device)
    per_token_layer = activation_elements(shape) * act_bytes
    if config.gradient_checkpointing:  # each layer's input, and one layer's full set while it is recomputed
        parts["activations"] = in_flight * (shape.layers * shape.hidden * act_bytes + per_token_layer)
    else:
        parts["activations"] = in_flight * shape.layers * per_token_layer
    labelled = min(in_flight, config.loss_chunk_tokens)
    parts["loss buffers"] = labelled * (shape.hidden * 4 * 3 + 8192 * 4 * 2)  # fp32 rows, one vocabulary block
    if full:  # a trainable head's gradient is summed in fp32 over the vocabulary blocks
        parts["loss buffers"] += shape.embedding_params * 4
    logits = in_flight * shape.vocab * 4 * 2
    notes.append(
        f"the head in vocabulary blocks holds {parts['loss buffers'] / GB:.2f} GB where full fp32 logits and their "
        f"gradient for {in_flight} tokens x {shape.vocab:,} entries would be {logits / GB:.2f} GB"
    )
    parts["framework"] = (CPU_FRAMEWORK_GB if hardware.device == "cpu" else CUDA_FRAMEWORK_GB) * GB
    if hardware.device == "cpu" and optimizer.endswith("8bit"):
        # the largest tensor (the embedding) is stepped last, when the activations and loss buffers are gone
        temporaries = CPU_8BIT_STEP_TEMPORARIES * 4 * largest_trainable(shape, config)
        parts["optimiser step"] = max(0.0, temporaries - parts["activations"] - parts["loss buffers"])
        notes.append(
            f"bitsandbytes' 8-bit AdamW steps on a CPU through fp32 temporaries: {temporaries / GB:.2f} GB for the "
            "largest tensor"
        )
    paged = 0.0
    if optimizer.startswith("paged") and hardware.device == "cuda":
        paged = parts.pop("optimiser state")
        notes.append(
            f"{optimizer}: the optimiser state, {paged / GB:.2f} GB, is in paged memory (on the GPU while there is "
            "room, else in CPU memory) and not in the total"
        )
    return MemoryPlan({k: v / GB for k, v in parts.items()}, notes, paged / GB)


def flops_per_token(shape: ModelShape, config: TrainConfig, context: int) -> float:
    """Training FLOPs per token: matmuls and attention forward, backward, and the recompute of checkpointing."""
    forward = 2 * shape.matmul_params + 2 * shape.layers * context * shape.heads * shape.head_dim
    if config.method != "full":
        lora = shape.lora_params(config.lora_targets, config.lora_rank)
        backward = forward + 4 * lora  # gradients of the activations only, plus the adapters' own
    else:
        backward = 2 * forward
    return forward + backward + (forward if config.gradient_checkpointing else 0)


def trainable_params(shape: ModelShape, config: TrainConfig) -> int:
    return shape.params if config.method == "full" else shape.lora_params(config.lora_targets, config.lora_rank)


def plan_time(
    shape: ModelShape,
    config: TrainConfig,
    hardware: Hardware,
    tokens: int,
    context: int,
    steps: int,
    optimizer_ns: float | None = None,
) -> TimePlan:
    """The FLOPs over the throughput, plus, where it was measured (a CPU), the optimiser's steps: a full fine-tune
    steps every weight, which on a CPU is a visible share of a small step."""
    flops = tokens * flops_per_token(shape, config, context)
    if not hardware.matmul_tflops:
        return TimePlan(tokens, flops, None, "no throughput known for this device")
    share = CPU_SHARE_OF_MATMUL if hardware.device == "cpu" else GPU_UTILISATION
    rate = hardware.matmul_tflops * 1e12 * share * max(1, hardware.gpus)
    stepping = steps * trainable_params(shape, config) * (optimizer_ns or 0.0) / 1e9
    source = hardware.throughput_source + (
        f"; {optimizer_ns:.2f} ns a weight per optimiser step" if optimizer_ns else ""
    )
    return TimePlan(tokens, flops, flops / rate + stepping, source)


def gpu_tflops(name: str) -> tuple[float, str] | None:
    lowered = name.lower().replace(" ", "")
    for key, value in GPU_TFLOPS.items():
        if key in lowered:
            return value
    return None


def lora_table(shape: ModelShape, rank: int) -> list[dict]:
    """Trainable parameters and their share of the model for the usual target sets."""
    sets: dict[str, list[str] | str] = {"q,v": ["q_proj", "v_proj"], "attention": list(ATTENTION)}
    sets["all-linear"] = "all-linear"
    rows = []
    for name, targets in sets.items():
        n = shape.lora_params(targets, rank)
        rows.append({"targets": name, "rank": rank, "params": n, "share": n / shape.params})
    return rows


def fewer_targets(config: TrainConfig) -> list[str] | None:
    current = target_set(config.lora_targets)
    return ["q_proj", "v_proj"] if current != {"q_proj", "v_proj"} else None
