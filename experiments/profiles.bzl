"""The run profiles: where a run trains, how big it is and its training budget.

Literals only (tools/bazel/bzl_data.py): Bazel loads this file to check
`--profile` and to choose each run's dataset and GPU target at analysis, and
experiments/profiles.py reads the same text into `Profile` objects. A run's
action receives only its own profile's entry, so editing one profile retrains
the runs of that profile and no other.

Fields of a profile:
  description  one line: the machine it is for
  device       "cpu" or "cuda" (ROCm builds of torch also use "cuda")
  gpus         GPUs one run trains on (0 on the CPU); more than 1 runs under torchrun
  gpu_target   the GPU target of tools/bazel/gpu_targets.bzl the runs need, or None
  accelerator  the venv's accelerator (the pip lock: cpu, cuda or rocm)
  dataset      the token dataset (data/datasets.bzl)
  dims         "real" (each step's own GPT-2 size) or a trunk {n_layer, n_head, n_embd}
  threads      torch's CPU threads, or None for torch's default
  block_size   tokens per training sequence
  batch_size, grad_accum   sequences per device per micro-batch, micro-batches per iteration
  train        the trainer's settings (experiments/trainer.py TrainConfig), the
               same for every step of the profile
  gpu_runtime  CUDA settings applied before a run trains (experiments/gpu_runtime.py)
"""

DEFAULT_PROFILE = "cpu"

# The RATIO ablation's schedule on GPT-2 124M (10,400 iterations, eval every 500
# on 200 batches, warmup 2000, LR 6e-4 cosine to 6e-5, bf16), shared by every GPU
# profile so their runs compare; each GPU profile has an effective batch of 64
# sequences of 1024 tokens.
_GPU_TRAIN = {
    "dtype": "bfloat16",
    "compile": True,
    "max_iters": 10400,
    "eval_interval": 500,
    "eval_iters": 200,
    "warmup_iters": 2000,
    "lr": 6e-4,
    "min_lr": 6e-5,
    "weight_decay": 0.1,
    "log_interval": 10,
    "checkpoint_interval": 500,
}

# The group's CUDA settings for training: TF32 matmuls, cuDNN autotuning, and
# the allocator's expandable segments (fewer fragmentation OOMs at 124M).
_GPU_RUNTIME = {
    "tf32": True,
    "cudnn_benchmark": True,
    "cuda_alloc_conf": "expandable_segments:True",
}

PROFILES = {
    # Any CPU: every step at 2 layers x 128 on Shakespeare characters, fp32. Chosen
    # by measurement (experiments/README.md, "How the cpu profile was chosen").
    "cpu": {
        "description": "any CPU: every step at 2 layers x 128 on Shakespeare characters, fp32",
        "device": "cpu",
        "gpus": 0,
        "gpu_target": None,
        "accelerator": "cpu",
        "dataset": "shakespeare_char",
        "dims": {"n_layer": 2, "n_head": 2, "n_embd": 128},
        "threads": 1,
        "block_size": 64,
        "batch_size": 12,
        "grad_accum": 1,
        "train": {
            "dtype": "float32",
            "compile": False,
            "max_iters": 800,
            # Ten evaluations of 10 batches, so the val curves are curves; chosen
            # by measurement (experiments/README.md, "How the cpu profile was chosen").
            "eval_interval": 80,
            "eval_iters": 10,
            "warmup_iters": 40,
            "lr": 2e-3,
            "min_lr": 2e-4,
            "weight_decay": 0.1,
            "log_interval": 1,
            "checkpoint_interval": 200,
        },
        "gpu_runtime": None,
    },
    "w7900": {
        "description": "monster: one AMD Radeon Pro W7900 48 GB (ROCm), GPT-2 124M",
        "device": "cuda",
        "gpus": 1,
        "gpu_target": "w7900",
        "accelerator": "rocm",
        "dataset": "fineweb-edu",
        "dims": "real",
        "threads": None,
        "block_size": 1024,
        "batch_size": 8,
        "grad_accum": 8,
        "train": _GPU_TRAIN,
        "gpu_runtime": _GPU_RUNTIME,
    },
    "a10g-x4": {
        "description": "rented pod: four NVIDIA A10G 24 GB, DDP, GPT-2 124M",
        "device": "cuda",
        "gpus": 4,
        "gpu_target": "a10g",
        "accelerator": "cuda",
        "dataset": "fineweb-edu",
        "dims": "real",
        "threads": None,
        "block_size": 1024,
        "batch_size": 4,
        "grad_accum": 4,
        "train": _GPU_TRAIN,
        "gpu_runtime": _GPU_RUNTIME,
    },
    "h100": {
        "description": "rented pod: one NVIDIA H100 80 GB, GPT-2 124M",
        "device": "cuda",
        "gpus": 1,
        "gpu_target": "h100",
        "accelerator": "cuda",
        "dataset": "fineweb-edu",
        "dims": "real",
        "threads": None,
        "block_size": 1024,
        "batch_size": 16,
        "grad_accum": 4,
        "train": _GPU_TRAIN,
        "gpu_runtime": _GPU_RUNTIME,
    },
    "b200-x4": {
        "description": "rented pod: four NVIDIA B200, DDP, GPT-2 124M",
        "device": "cuda",
        "gpus": 4,
        "gpu_target": "b200",
        "accelerator": "cuda",
        "dataset": "fineweb-edu",
        "dims": "real",
        "threads": None,
        "block_size": 1024,
        "batch_size": 16,
        "grad_accum": 1,
        "train": _GPU_TRAIN,
        "gpu_runtime": _GPU_RUNTIME,
    },
}
