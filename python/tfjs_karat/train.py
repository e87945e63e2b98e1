"""Distributed training of the PyTorch twin with the recipe of `karat train`.

    torchrun --standalone --nproc_per_node=2 python/train.py --preset quick
    python3 python/train.py --dataset cifar10-subset --epochs 2 ...          (one process)

Options have the names and defaults of `karat train` (src/training/config.ts); --batch-size and
--eval-batch-size are GLOBAL sizes: each of the W processes takes batch-size / W examples per
step (a batch size that W does not divide is refused with BatchSizeError). Data are sharded with
DistributedSampler (same permutation on every rank, rank r takes every W-th index), gradients are
averaged by DistributedDataParallel (gloo on CPU, NCCL on GPU), so one step of W processes equals
one step of one process on the whole global batch (without mixup/cutmix, which mix within each
process's batch, and without dropout randomness).

Rank 0 writes <out-dir>/<run>/: log.jsonl and log.csv (the format of `karat train`), config.json,
last.safetensors (checkpoint: weights, AdamW state, trainer state; atomic), best.safetensors
(weights) and at the end model.safetensors (the tfjs-compatible weights for `karat convert`).
"""
import argparse
import datetime
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import data as D
from . import karat as K
from . import safetensors as st
from . import vit as V

DATASETS = ("cifar10-subset", "cifar10", "cifar100")

DEFAULTS = {
    "preset": None, "dataset": "cifar10-subset", "dataDir": None, "trainLimit": 0, "testLimit": 0,
    "model": "custom", "dim": 64, "depth": 4, "heads": 4, "mlpRatio": 2, "patchSize": 4,
    "attention": "fourier", "grid": 3, "rank": 12, "mode": "blockwise", "dropPath": 0.0,
    "epochs": 10, "batchSize": 64, "evalBatchSize": 250, "lr": 1e-3, "minLr": 1e-5, "warmupEpochs": 1.0,
    "warmupLr": 1e-6, "weightDecay": 0.05, "karatLr": 0.0, "karatDecay": False, "beta1": 0.9, "beta2": 0.999,
    "clipGrad": 1.0, "cropPadding": 4, "hflip": True, "mixup": 0.8, "cutmix": 1.0, "mixProb": 1.0,
    "switchProb": 0.5, "labelSmoothing": 0.1, "randomErasing": 0.0, "seed": 42, "outDir": "runs",
    "runName": None, "resume": None, "stepsPerEpoch": 0,
    # PyTorch-side options
    "init": None, "export": None, "stopAfterEpochs": 0, "device": "auto", "cudaLib": None, "threads": 0,
    "progress": "lines", "overwrite": False,
}

# Bounds of every size a configuration sets (as the TypeScript trainer's), checked before building,
# whatever the source: flags, preset, or a resumed checkpoint's stored configuration.
SIZE_BOUNDS = {"dim": 4096, "depth": 128, "heads": 256, "mlpRatio": 16, "patchSize": 1024, "grid": 64, "rank": 4096,
               "epochs": 1_000_000, "batchSize": 65536, "evalBatchSize": 65536}
MAX_MODEL_PARAMS = 2 ** 31
PRESETS = {
    "quick": {"dataset": "cifar10-subset", "model": "custom", "dim": 48, "depth": 2, "heads": 4, "mlpRatio": 2,
              "patchSize": 8, "attention": "fourier", "grid": 3, "rank": 12, "mode": "blockwise", "epochs": 2,
              "batchSize": 50, "stepsPerEpoch": 80, "lr": 2e-3, "minLr": 1e-4, "warmupEpochs": 0.2,
              "weightDecay": 0.05, "mixup": 0, "cutmix": 0, "labelSmoothing": 0, "randomErasing": 0, "clipGrad": 1.0},
    "cifar10-paper": {"dataset": "cifar10", "model": "tiny", "patchSize": 4, "attention": "fourier", "grid": 3,
                      "rank": 12, "mode": "blockwise", "epochs": 100, "batchSize": 128, "lr": 5e-4 * 128 / 512,
                      "minLr": 1e-5, "warmupEpochs": 5, "weightDecay": 0.05, "mixup": 0.8, "cutmix": 1.0,
                      "labelSmoothing": 0.1, "randomErasing": 0.25, "clipGrad": 0, "dropPath": 0.1},
    "cifar100-paper": {"dataset": "cifar100", "model": "tiny", "patchSize": 4, "attention": "fourier", "grid": 3,
                       "rank": 12, "mode": "blockwise", "epochs": 100, "batchSize": 128, "lr": 5e-4 * 128 / 512,
                       "minLr": 1e-5, "warmupEpochs": 5, "weightDecay": 0.05, "mixup": 0.8, "cutmix": 1.0,
                       "labelSmoothing": 0.1, "randomErasing": 0.25, "clipGrad": 0, "dropPath": 0.1},
}
PAPER_MODELS = {"tiny": (192, 12, 3, 4), "small": (384, 12, 6, 4), "base": (768, 12, 12, 4)}
# Fields that define the model: a checkpoint only fits a run with the same values.
MODEL_FIELDS = ("dataset", "dim", "depth", "heads", "mlpRatio", "patchSize", "attention", "grid", "rank", "mode")
ARCH_FIELDS = ("model", "dim", "depth", "heads", "mlpRatio", "patchSize", "attention", "grid", "rank", "mode")
CSV_COLUMNS = ["epoch", "step", "lr", "trainLoss", "trainAcc", "testLoss", "testTop1", "testTop5", "epochSeconds",
               "imagesPerSec", "cpuSeconds", "best"]
CHECKPOINT_FORMAT = "tfjs-karat-torch-checkpoint"


class ConfigError(ValueError):
    """An invalid option or combination of options."""


class BatchSizeError(ConfigError):
    """A global batch size that the number of processes does not divide."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or from another configuration."""


class DivergenceError(RuntimeError):
    """A non-finite training loss."""


def kebab(s):
    return "".join("-" + c.lower() if c.isupper() else c for c in s)


# ------------------------------------------------------------------------------------ config

def _coerce(key, value, frm):
    d = DEFAULTS[key]
    if isinstance(d, bool):
        if isinstance(value, bool):
            return value
        if str(value) in ("true", "1", "yes"):
            return True
        if str(value) in ("false", "0", "no"):
            return False
        raise ConfigError(f"{frm}: '{kebab(key)}' must be true or false, got {value!r}")
    if isinstance(d, int) or key in ("seed",):
        try:
            f = float(value)
        except (TypeError, ValueError):
            f = float("nan")
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{frm}: '{kebab(key)}' must be an integer, got {value!r}")
        return int(f)
    if isinstance(d, float):
        try:
            f = float(value)
        except (TypeError, ValueError):
            f = float("nan")
        if not math.isfinite(f):
            raise ConfigError(f"{frm}: '{kebab(key)}' must be a number, got {value!r}")
        return f
    if value is None:
        return None
    if not isinstance(value, str) or value == "":
        raise ConfigError(f"{frm}: '{kebab(key)}' must be a string, got {value!r}")
    return value


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python/train.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for k in DEFAULTS:
        ap.add_argument("--" + kebab(k), dest=k, default=None, metavar=k.upper())
    ns = ap.parse_args(argv)
    return {k: v for k, v in vars(ns).items() if v is not None}


def resolve_config(layers):
    """defaults < preset < layers (each {from, values}), then validation (as config.ts)."""
    preset = next((l["values"]["preset"] for l in reversed(layers) if l["values"].get("preset")), None)
    cfg = dict(DEFAULTS)
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset '{preset}'; known presets: {', '.join(PRESETS)}")
        cfg.update(PRESETS[preset])
        cfg["preset"] = preset
    for layer in layers:
        for k, v in layer["values"].items():
            if k not in DEFAULTS:
                raise ConfigError(f"{layer['from']}: unknown option '{k}'")
            cfg[k] = _coerce(k, v, layer["from"])
    if cfg["model"] != "custom":
        if cfg["model"] not in PAPER_MODELS:
            raise ConfigError(f"unknown model '{cfg['model']}'; expected custom, {', '.join(PAPER_MODELS)}")
        cfg["dim"], cfg["depth"], cfg["heads"], cfg["mlpRatio"] = PAPER_MODELS[cfg["model"]]
    validate(cfg)
    return cfg


def validate(c):
    if c["dataset"] not in DATASETS and not c["dataset"].endswith(".kds"):
        raise ConfigError(f"unknown dataset '{c['dataset']}'; expected one of {', '.join(DATASETS)} or a .kds file")
    if c["attention"] not in ("softmax", "fourier"):
        raise ConfigError(f"unknown attention '{c['attention']}'; expected softmax or fourier")
    if c["mode"] not in ("blockwise", "universal"):
        raise ConfigError(f"unknown mode '{c['mode']}'; expected blockwise or universal")
    if c["device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"unknown device '{c['device']}'; expected auto, cpu or cuda")
    if c["progress"] not in ("lines", "none"):
        raise ConfigError(f"unknown progress '{c['progress']}'; expected lines or none")
    for k in ("epochs", "batchSize", "evalBatchSize", "dim", "depth", "heads", "patchSize", "grid", "rank"):
        if not c[k] >= 1:
            raise ConfigError(f"'{kebab(k)}' must be >= 1, got {c[k]}")
    for k in ("trainLimit", "testLimit", "stepsPerEpoch", "cropPadding", "minLr", "warmupEpochs", "warmupLr",
              "weightDecay", "karatLr", "clipGrad", "mixup", "cutmix", "randomErasing", "labelSmoothing", "dropPath",
              "mixProb", "switchProb", "stopAfterEpochs", "threads"):
        if not c[k] >= 0:
            raise ConfigError(f"'{kebab(k)}' must be >= 0, got {c[k]}")
    for k in ("labelSmoothing", "randomErasing", "mixProb", "switchProb", "dropPath"):
        if c[k] > 1:
            raise ConfigError(f"'{kebab(k)}' must be <= 1, got {c[k]}")
    if not (0 <= c["beta1"] < 1 and 0 <= c["beta2"] < 1):
        raise ConfigError("'beta1' and 'beta2' must be in [0, 1)")
    if not c["lr"] > 0:
        raise ConfigError(f"'lr' must be > 0, got {c['lr']}")
    for k, bound in SIZE_BOUNDS.items():
        if c[k] > bound:
            raise ConfigError(f"'{kebab(k)}' must be <= {bound}, got {c[k]}")
    if not c["mlpRatio"] > 0:
        raise ConfigError(f"'mlp-ratio' must be > 0, got {c['mlpRatio']}")
    params = c["depth"] * (4 + 2 * c["mlpRatio"]) * c["dim"] ** 2
    if params > MAX_MODEL_PARAMS:
        raise ConfigError(f"'dim' {c['dim']} x 'depth' {c['depth']} x 'mlp-ratio' {c['mlpRatio']} makes about "
                          f"{params:.2e} parameters, more than {MAX_MODEL_PARAMS:.2e}")
    if c["dim"] % c["heads"]:
        raise ConfigError(f"'dim' ({c['dim']}) must be divisible by 'heads' ({c['heads']})")
    if not 0 <= c["seed"] < 2 ** 32:
        raise ConfigError(f"'seed' must be in [0, 2^32), got {c['seed']}")


def check_world(cfg, world):
    """The global batch rule: batch-size and eval-batch-size must divide by the world size."""
    for k in ("batchSize", "evalBatchSize"):
        if cfg[k] % world:
            raise BatchSizeError(
                f"--{kebab(k)} {cfg[k]} is the GLOBAL batch size and must be divisible by the number of processes "
                f"(world size {world}); use e.g. {max(world, cfg[k] - cfg[k] % world)} or {cfg[k] + world - cfg[k] % world}")


def model_attention(cfg):
    if cfg["attention"] == "softmax":
        return "softmax"
    return {"type": "fourier", "grid": cfg["grid"], "rank": cfg["rank"], "mode": cfg["mode"]}


def learning_rate(cfg, step, batches):
    """Linear warm-up from warmupLr, then cosine to minLr (src/training/schedule.ts), per step."""
    warm = round(cfg["warmupEpochs"] * batches)
    total = cfg["epochs"] * batches
    if step < warm:
        return cfg["warmupLr"] + (cfg["lr"] - cfg["warmupLr"]) * (step / max(1, warm))
    t = min(1.0, (step - warm) / max(1, total - warm))
    return cfg["minLr"] + 0.5 * (cfg["lr"] - cfg["minLr"]) * (1 + math.cos(math.pi * t))


# ------------------------------------------------------------------------------ checkpoints

def save_checkpoint(path, model, opt, names, trainer, with_optimizer=True):
    tensors = dict(V.state_tensors(model))
    opt_steps = {}
    if with_optimizer:
        for n, p in zip(names, model_params(model)):
            s = opt.state.get(p)
            if s:
                tensors[f"optimizer.{n}.exp_avg"] = s["exp_avg"]
                tensors[f"optimizer.{n}.exp_avg_sq"] = s["exp_avg_sq"]
                opt_steps[n] = int(s["step"])
    meta = {"format": CHECKPOINT_FORMAT, "config": json.dumps(model.metadata_config()),
            "trainer": json.dumps({**trainer, "optimizerSteps": opt_steps, "hasOptimizer": with_optimizer})}
    st.save(path, tensors, meta)


def _is_int(v, lo, hi):
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def trainer_problems(t):
    """Problems of a checkpoint's trainer state (types and ranges of every field read on --resume)."""
    if not isinstance(t, dict):
        return [f"'trainer' must be an object, got {json.dumps(t)[:80]}"]
    p = []
    if not _is_int(t.get("seed"), 0, 2 ** 32 - 1):
        p.append(f"'trainer.seed' must be an integer in [0, 2^32), got {t.get('seed')!r}")
    for k in ("epoch", "step"):
        if not _is_int(t.get(k), 0, 2 ** 53):
            p.append(f"'trainer.{k}' must be a non-negative integer, got {t.get(k)!r}")
    if not isinstance(t.get("config", {}), dict):
        p.append(f"'trainer.config' must be an object, got {t.get('config')!r}")
    if not isinstance(t.get("history", []), list) or not all(isinstance(h, dict) for h in t.get("history", []) or []):
        p.append("'trainer.history' must be a list of epoch records")
    b = t.get("best")
    if b is not None and not (isinstance(b, dict) and _is_int(b.get("epoch"), 1, 2 ** 53) and _is_num(b.get("top1"))
                              and 0 <= b["top1"] <= 1):
        p.append(f"'trainer.best' must be null or {{epoch: integer >= 1, top1: a number in [0, 1]}}, got {b!r}")
    if "hasOptimizer" in t and not isinstance(t["hasOptimizer"], bool):
        p.append(f"'trainer.hasOptimizer' must be true or false, got {t['hasOptimizer']!r}")
    if "worldSize" in t and not _is_int(t["worldSize"], 1, 1 << 20):
        p.append(f"'trainer.worldSize' must be a positive integer, got {t['worldSize']!r}")
    return p


def weights_fit_config(cfg, weights, channels, what):
    """Checks a checkpoint's stored weights against the configuration before the model is built, so
    a forged stored configuration cannot allocate a model larger than the file."""
    pe = weights.get("patch_embed.proj.weight")
    want = [cfg["dim"], channels, cfg["patchSize"], cfg["patchSize"]]
    if pe is None or list(pe.shape) != want:
        raise CheckpointError(f"{what}: 'patch_embed.proj.weight' is stored as "
                              f"{None if pe is None else list(pe.shape)}, the configuration needs {want}")
    blocks = {int(k.split(".")[1]) for k in weights if k.startswith("blocks.") and k.split(".")[1].isdigit()}
    if blocks != set(range(cfg["depth"])):
        raise CheckpointError(f"{what}: the configuration says depth {cfg['depth']}, the stored weights hold "
                              f"{len(blocks)} blocks")
    fc1 = weights.get("blocks.0.mlp.fc1.weight")
    want = [round(cfg["dim"] * cfg["mlpRatio"]), cfg["dim"]]
    if fc1 is None or list(fc1.shape) != want:
        raise CheckpointError(f"{what}: 'blocks.0.mlp.fc1.weight' is stored as "
                              f"{None if fc1 is None else list(fc1.shape)}, the configuration needs {want}")


def read_checkpoint(path):
    """(weights, optimizer tensors, trainer dict, metadata) of a checkpoint written by save_checkpoint."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    try:
        tensors, meta = st.load(path)
    except st.SafetensorsError as e:
        raise CheckpointError(f"'{path}' is not a readable checkpoint: {e}") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"'{path}' is not a tfjs-karat PyTorch training checkpoint "
                              f"(metadata format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    try:
        trainer = st.loads_strict(meta["trainer"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt trainer state ({e})") from None
    problems = trainer_problems(trainer)
    if problems:
        raise CheckpointError(f"{path}: invalid trainer state: {'; '.join(problems[:3])}")
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    optim = {k[len("optimizer."):]: v for k, v in tensors.items() if k.startswith("optimizer.")}
    return weights, optim, trainer, meta


def model_params(model):
    return [p for _, p in model.named_parameters()]


def restore_optimizer(opt, model, names, optim, trainer, path):
    steps = trainer.get("optimizerSteps", {})
    for n, p in zip(names, model_params(model)):
        a, b = optim.get(f"{n}.exp_avg"), optim.get(f"{n}.exp_avg_sq")
        if a is None or b is None or n not in steps:
            raise CheckpointError(f"{path}: no optimizer state for parameter '{n}'")
        if tuple(a.shape) != tuple(p.shape) or tuple(b.shape) != tuple(p.shape):
            raise CheckpointError(f"{path}: optimizer state of '{n}' is {list(a.shape)}, the parameter is {list(p.shape)}")
        opt.state[p] = {"step": torch.tensor(float(steps[n])), "exp_avg": a.to(p.device).clone(),
                        "exp_avg_sq": b.to(p.device).clone()}


def resolve_resume(resume, run_dir):
    if resume == "auto":
        p = os.path.join(run_dir, "last.safetensors")
        return p if os.path.exists(p) else None
    if os.path.isdir(resume):
        p = os.path.join(resume, "last.safetensors")
        if not os.path.exists(p):
            raise CheckpointError(f"--resume: directory '{resume}' has no last.safetensors")
        return p
    if not os.path.exists(resume):
        raise CheckpointError(f"--resume: checkpoint '{resume}' does not exist")
    return resume


# ----------------------------------------------------------------------------------- logging

def _js_number(v):
    """Number.prototype.toPrecision(6) for non-integers, String(v) otherwise (as log.csv of karat train)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer()):
        return str(int(v))
    if v == 0:
        return "0.00000"
    e = math.floor(math.log10(abs(v)))
    s = f"{v:.5e}"
    m, ex = s.split("e")
    e = int(ex)
    if e < -6 or e >= 6:
        return f"{m}e{'+' if e >= 0 else '-'}{abs(e)}"
    return f"{v:.{max(0, 5 - e)}f}"


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{datetime.datetime.now(datetime.timezone.utc).microsecond // 1000:03d}Z"


def append_event(run_dir, typ, data):
    with open(os.path.join(run_dir, "log.jsonl"), "a") as f:
        f.write(json.dumps({"type": typ, "time": _now(), **data}, separators=(",", ":")) + "\n")


def append_epoch(run_dir, rec):
    append_event(run_dir, "epoch", rec)
    csv = os.path.join(run_dir, "log.csv")
    new = not os.path.exists(csv)
    with open(csv, "a") as f:
        if new:
            f.write(",".join(CSV_COLUMNS) + "\n")
        f.write(",".join(_js_number(rec[k]) for k in CSV_COLUMNS) + "\n")


# ---------------------------------------------------------------------------------- training

def soft_cross_entropy(logits, targets):
    return -(targets * F.log_softmax(logits, -1)).sum(-1).mean()


class Dist:
    """The process group (or a single process)."""

    def __init__(self, device_choice):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
        if device_choice == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: PyTorch sees no CUDA device")
        self.device = torch.device(f"cuda:{self.local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        self.backend = None
        if self.world > 1:
            self.backend = "nccl" if use_cuda else "gloo"
            dist.init_process_group(self.backend, timeout=datetime.timedelta(seconds=int(
                os.environ.get("KARAT_DIST_TIMEOUT_S", "1800"))))

    @property
    def main(self):
        return self.rank == 0

    def sum(self, values):
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.backend == "nccl" else "cpu")
        if self.world > 1:
            dist.all_reduce(t)
        return t.tolist()

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def evaluate(model, test, mean, std, eval_local, dd):
    """Loss (hard labels), top-1, top-5 over the whole test set, sharded across ranks."""
    model.eval()
    idx = list(range(dd.rank, test.size, dd.world))
    s_loss = s1 = s5 = 0.0
    aug = {"cropPadding": 0, "hflip": False, "mixup": 0, "cutmix": 0, "mixProb": 0, "switchProb": 0.5,
           "labelSmoothing": 0, "randomErasing": 0, "mean": mean, "std": std}
    k = test.num_classes
    with torch.no_grad():
        for b in range(0, len(idx), eval_local):
            ii = idx[b:b + eval_local]
            x, y = D.augment_batch(test.images[ii], test.labels[ii], k, aug, None)
            lg = model(x.to(dd.device))
            labels = torch.as_tensor(test.labels[ii], device=lg.device)
            s_loss += float(soft_cross_entropy(lg, y.to(lg.device))) * len(ii)
            top = lg.topk(min(5, k), -1).indices
            s1 += float((top[:, 0] == labels).sum())
            s5 += float((top == labels[:, None]).any(-1).sum())
    loss, c1, c5, n = dd.sum([s_loss, s1, s5, float(len(idx))])
    model.train()
    return {"loss": loss / n, "top1": c1 / n, "top5": c5 / n, "examples": int(n)}


def build(cfg, data_shape, num_classes, seed):
    C, H, W = data_shape
    if H % cfg["patchSize"] or W % cfg["patchSize"]:
        raise ConfigError(f"patch size {cfg['patchSize']} does not divide the image size {H}x{W}")
    torch.manual_seed(seed ^ 0x1BADB002)
    mc = V.vit_config(dim=cfg["dim"], depth=cfg["depth"], heads=cfg["heads"], mlpRatio=cfg["mlpRatio"],
                      patchSize=cfg["patchSize"], imageSize=[H, W] if H != W else H, channels=C,
                      numClasses=num_classes, attention=model_attention(cfg), dropPath=cfg["dropPath"])
    return V.ViT(mc)


def config_from_model_file(path):
    """Architecture fields of `karat train` from a safetensors model file (for --init)."""
    _, meta, _, _ = st.read_header(path)
    c = V.config_from_metadata(meta, path)
    if c is None:
        raise ConfigError(f"--init {path}: the file has no tfjs-karat metadata (export it with `karat export` "
                          f"or this trainer)")
    att = K.resolve_attention(c["attention"])
    if att is not None and (att["basis"] != "fourier" or att["baseActivation"] != "zero" or att["rank"] == "full"):
        raise ConfigError(f"--init {path}: the trainer's options describe Fourier-KArAt with zero base activation "
                          f"and rank r; the file has {c['attention']}")
    out = {"model": "custom", "dim": c["dim"], "depth": c["depth"], "heads": c["heads"], "mlpRatio": c["mlpRatio"],
           "patchSize": c["patchSize"], "attention": "softmax" if att is None else "fourier"}
    if att is not None:
        out.update({"grid": att["grid"], "rank": att["rank"], "mode": att["mode"]})
    return out, c


def train(argv):
    flags = parse_args(argv)
    layers = []
    resume_from = None
    saved_trainer = None
    if flags.get("resume"):
        if flags["resume"] == "auto" and not flags.get("runName"):
            raise ConfigError("--resume auto continues the run named by --run-name (in --out-dir); give --run-name")
        run_dir = os.path.join(flags.get("outDir", DEFAULTS["outDir"]), flags.get("runName") or "")
        resume_from = resolve_resume(flags["resume"], run_dir)
        if resume_from:
            _, _, saved_trainer, _ = read_checkpoint(resume_from)
            saved = dict(saved_trainer.get("config", {}))
            for k in ("resume", "stopAfterEpochs", "init", "overwrite"):
                saved.pop(k, None)
            layers.append({"from": f"checkpoint {resume_from}", "values": saved})
    if flags.get("init"):
        arch, _ = config_from_model_file(flags["init"])
        clash = [f"{kebab(k)}: file {arch[k]!r}, flag {flags[k]!r}" for k in ARCH_FIELDS
                 if k in flags and k in arch and _coerce(k, flags[k], "flag") != arch[k]]
        if clash:
            raise ConfigError(f"--init {flags['init']}: the architecture comes from the file; these flags contradict "
                              f"it: {'; '.join(clash)}")
        layers.append({"from": f"--init {flags['init']}", "values": arch})
    layers.append({"from": "command line", "values": flags})
    cfg = resolve_config(layers)
    if saved_trainer is not None:
        saved = saved_trainer.get("config", {})
        diff = [f"{k}: checkpoint {saved[k]!r}, this run {cfg[k]!r}" for k in MODEL_FIELDS
                if k in saved and saved[k] != cfg[k]]
        if diff:
            raise CheckpointError(f"--resume: checkpoint '{resume_from}' is from an incompatible model/dataset "
                                  f"({'; '.join(diff)})")
    if cfg["threads"] > 0:
        torch.set_num_threads(cfg["threads"])
    dd = Dist(cfg["device"])
    try:
        return _run(cfg, dd, resume_from)
    finally:
        dd.close()


def _run(cfg, dd, resume_from):
    t0 = time.time()
    check_world(cfg, dd.world)
    if cfg["device"] != "cpu" and dd.device.type == "cuda":
        K.load_lib(cfg["cudaLib"], quiet=not dd.main)
    elif cfg["cudaLib"]:
        raise ConfigError("--cuda-lib: the CUDA kernels need a CUDA device (this run is on the CPU)")
    run_name = cfg["runName"] or (os.path.basename(os.path.dirname(resume_from)) if resume_from else
                                  f"{cfg['preset'] or os.path.basename(cfg['dataset'])}-{cfg['model']}-"
                                  f"{'softmax' if cfg['attention'] == 'softmax' else 'G%d%s' % (cfg['grid'], cfg['mode'][0].upper())}-torch")
    run_dir = os.path.join(cfg["outDir"], run_name)
    created = False
    # every process makes the same decision (before any of them writes), so all refuse together
    held = [f for f in ("last.safetensors", "best.safetensors", "model.safetensors", "log.csv", "log.jsonl")
            if os.path.exists(os.path.join(run_dir, f))]
    if held and not resume_from and not cfg["overwrite"]:
        raise ConfigError(f"run folder '{run_dir}' already holds a run ({', '.join(held)}); continue it with "
                          f"--resume {run_dir}, replace it with --overwrite true, or choose another --run-name")
    if dd.main:
        if cfg["overwrite"] and not resume_from:
            for f in held:
                os.remove(os.path.join(run_dir, f))
        created = not os.path.exists(run_dir)
        os.makedirs(run_dir, exist_ok=True)
    try:
        return _run_in(cfg, dd, resume_from, run_dir, t0)
    except BaseException:
        # a run that fails before writing anything leaves no empty run folder behind
        if created and os.path.isdir(run_dir) and not os.listdir(run_dir):
            os.rmdir(run_dir)
        raise


def _run_in(cfg, dd, resume_from, run_dir, t0):

    train_ds, test_ds = D.load_dataset(cfg["dataset"], cfg["dataDir"])
    train_ds, test_ds = train_ds.limit(cfg["trainLimit"]), test_ds.limit(cfg["testLimit"])
    mean, std = D.normalisation_for(cfg["dataset"], train_ds)
    k = train_ds.num_classes
    H, W, C = train_ds.images.shape[1:]
    local = cfg["batchSize"] // dd.world
    eval_local = min(cfg["evalBatchSize"], test_ds.size) // dd.world or 1
    full = train_ds.size // cfg["batchSize"]
    if full == 0:
        raise ConfigError(f"--batch-size {cfg['batchSize']} is larger than the training set ({train_ds.size} examples)")
    batches = min(cfg["stepsPerEpoch"], full) if cfg["stepsPerEpoch"] > 0 else full

    trainer_state = None
    seed = cfg["seed"]
    if resume_from:
        weights, optim, trainer_state, meta = read_checkpoint(resume_from)
        weights_fit_config(cfg, weights, C, f"--resume: checkpoint '{resume_from}'")
    model = build(cfg, (C, H, W), k, seed)
    if resume_from:
        seed = int(trainer_state["seed"])
        try:
            V.load_weights(model, weights, f"checkpoint '{resume_from}'")
        except V.ModelConfigError as e:
            raise CheckpointError(str(e)) from None
    elif cfg["init"]:
        tensors, _ = st.load(cfg["init"])
        V.load_weights(model, tensors, f"--init {cfg['init']}")
    model.to(dd.device)
    names = [n for n, _ in model.named_parameters()]
    groups = {"decay": [], "no_decay": [], "karat": []}
    for n, p in model.named_parameters():
        groups[V.param_group(n, p)].append(p)
    karat_scale = cfg["karatLr"] / cfg["lr"] if cfg["karatLr"] > 0 else 1.0
    spec = [("decay", cfg["weightDecay"], 1.0), ("no_decay", 0.0, 1.0),
            ("karat", cfg["weightDecay"] if cfg["karatDecay"] else 0.0, karat_scale)]
    opt = torch.optim.AdamW([{"params": groups[g], "weight_decay": wd, "lr_scale": s, "name": g}
                             for g, wd, s in spec if groups[g]],
                            lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=1e-8)
    start_epoch, step, history, best = 0, 0, [], None
    if trainer_state is not None:
        if not trainer_state.get("hasOptimizer"):
            raise CheckpointError(f"checkpoint '{resume_from}' has no optimizer state, cannot resume")
        restore_optimizer(opt, model, names, optim, trainer_state, resume_from)
        start_epoch, step = int(trainer_state["epoch"]), int(trainer_state["step"])
        history, best = trainer_state.get("history", []), trainer_state.get("best")
    net = model
    if dd.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dd.device.index] if dd.device.type == "cuda" else None)
    params = sum(p.numel() for p in model.parameters())
    if dd.main:
        with open(os.path.join(run_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        append_event(run_dir, "resume" if resume_from else "start", {
            "config": cfg, "backend": f"torch-{dd.device.type}", "params": params, "resumedFrom": resume_from,
            "startEpoch": start_epoch, "worldSize": dd.world, "distBackend": dd.backend,
            "cudaKernels": K.cuda_lib() is not None})
        att = "softmax attention" if cfg["attention"] == "softmax" else \
            f"Fourier-KArAt G{cfg['grid']}{cfg['mode'][0].upper()} (rank {cfg['rank']})"
        print(f"backend: torch {torch.__version__} on {dd.device}, {dd.world} process(es)"
              f"{' (' + dd.backend + ')' if dd.backend else ''}; CUDA kernels: "
              f"{'yes' if K.cuda_lib() is not None else 'no (plain PyTorch ops)'}")
        print(f"model: ViT dim {cfg['dim']}, depth {cfg['depth']}, heads {cfg['heads']}, patch {cfg['patchSize']}, "
              f"{att}; {params:,} parameters")
        print(f"data: {train_ds.name} {train_ds.size} train / {test_ds.name} {test_ds.size} test, {H}x{W}x{C}, {k} classes")
        print(f"run: {run_dir}{' — resumed from ' + resume_from + ' at epoch ' + str(start_epoch) if resume_from else ''}; "
              f"{cfg['epochs']} epochs x {batches} steps of {cfg['batchSize']} ({local} per process)", flush=True)

    aug = {k2: cfg[k2] for k2 in ("cropPadding", "hflip", "mixup", "cutmix", "mixProb", "switchProb",
                                  "labelSmoothing", "randomErasing")}
    aug.update(mean=mean, std=std)
    sampler = torch.utils.data.distributed.DistributedSampler(
        range(train_ds.size), num_replicas=dd.world, rank=dd.rank, shuffle=True, seed=seed, drop_last=True)
    last_path = os.path.join(run_dir, "last.safetensors")
    best_path = os.path.join(run_dir, "best.safetensors")
    ran = 0
    for epoch in range(start_epoch, cfg["epochs"]):
        if cfg["stopAfterEpochs"] and ran >= cfg["stopAfterEpochs"]:
            if dd.main:
                append_event(run_dir, "stop", {"epoch": epoch, "step": step, "reason": "--stop-after-epochs"})
                print(f"stopped after {ran} epoch(s) (--stop-after-epochs); resume with --resume {run_dir}")
            return 0
        sampler.set_epoch(epoch)
        order = list(sampler)
        g = torch.Generator().manual_seed((seed * 1000003 + epoch * 7919 + dd.rank) % 2 ** 63)
        torch.manual_seed((seed * 999983 + epoch * 104729 + dd.rank) % 2 ** 63)  # dropout / drop path
        te, cpu0 = time.time(), time.process_time()
        loss_sum = acc_sum = seen = 0.0
        lr = 0.0
        last_line = 0.0
        net.train()
        for b in range(batches):
            ii = order[b * local:(b + 1) * local]
            lr = learning_rate(cfg, step, batches)
            for grp in opt.param_groups:
                grp["lr"] = lr * grp["lr_scale"]
            x, y = D.augment_batch(train_ds.images[ii], train_ds.labels[ii], k, aug, g)
            x, y = x.to(dd.device), y.to(dd.device)
            logits = net(x)
            loss = soft_cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            norm = torch.sqrt(sum((gg.double() ** 2).sum() for gg in grads))
            if cfg["clipGrad"] > 0:
                scale = min(1.0, cfg["clipGrad"] / (float(norm) + 1e-6))
                if scale < 1:
                    for gg in grads:
                        gg.mul_(scale)
            labels = torch.as_tensor(train_ds.labels[ii], device=logits.device)
            correct = float((logits.argmax(-1) == labels).sum())
            g_loss, g_correct, g_n = dd.sum([float(loss) * len(ii), correct, float(len(ii))])
            if not math.isfinite(g_loss):
                raise DivergenceError(f"training diverged at epoch {epoch + 1}, step {step + 1}: loss is {g_loss / g_n} "
                                      f"(lower --lr or enable --clip-grad)")
            opt.step()
            step += 1
            loss_sum += g_loss
            acc_sum += g_correct
            seen += g_n
            if dd.main and cfg["progress"] == "lines" and (time.time() - last_line > 10 or b + 1 == batches):
                last_line = time.time()
                el = time.time() - te
                print(f"epoch {epoch + 1}/{cfg['epochs']} step {b + 1}/{batches} loss {loss_sum / seen:.4f} "
                      f"acc {100 * acc_sum / seen:.1f}% lr {lr:.2e} {seen / el:.1f} img/s", flush=True)
        train_s = time.time() - te
        cpu_s = time.process_time() - cpu0
        ev = evaluate(model, test_ds, mean, std, eval_local, dd)
        # a non-finite top-1 is never a best (it is a divergence, not a result)
        is_best = math.isfinite(ev["top1"]) and (best is None or ev["top1"] > best["top1"])
        if is_best:
            best = {"epoch": epoch + 1, "top1": ev["top1"]}
        rec = {"epoch": epoch + 1, "step": step, "lr": lr, "trainLoss": loss_sum / seen, "trainAcc": acc_sum / seen,
               "testLoss": ev["loss"], "testTop1": ev["top1"], "testTop5": ev["top5"], "epochSeconds": train_s,
               "imagesPerSec": seen / train_s, "cpuSeconds": cpu_s, "best": is_best}
        history.append(rec)
        ran += 1
        if dd.main:
            trainer = {"epoch": epoch + 1, "step": step, "seed": seed, "config": {**cfg, "resume": None},
                       "history": history, "best": best, "worldSize": dd.world,
                       "lastEval": {"loss": ev["loss"], "top1": ev["top1"], "top5": ev["top5"]}}
            save_checkpoint(last_path, model, opt, names, trainer)
            if is_best:
                save_checkpoint(best_path, model, opt, names, trainer, with_optimizer=False)
            append_epoch(run_dir, rec)
            print(f"epoch {epoch + 1}/{cfg['epochs']}: train loss {rec['trainLoss']:.4f} acc {100 * rec['trainAcc']:.2f}% | "
                  f"test loss {ev['loss']:.4f} top-1 {100 * ev['top1']:.2f}% top-5 {100 * ev['top5']:.2f}% | "
                  f"{rec['imagesPerSec']:.1f} img/s, {train_s:.1f} s{' *best' if is_best else ''}", flush=True)
    if not history or ran == 0:
        raise ConfigError(f"nothing to train: the run is already at epoch {start_epoch} of {cfg['epochs']}")
    if dd.main:
        export = cfg["export"] or os.path.join(run_dir, "model.safetensors")
        V.save_safetensors(model, export)
        last = history[-1]
        append_event(run_dir, "end", {"seconds": time.time() - t0, "best": best, "last": last, "export": export})
        with open(os.path.join(run_dir, "summary.json"), "w") as f:
            json.dump({"config": cfg, "backend": f"torch-{dd.device.type}", "worldSize": dd.world, "params": params,
                       "seconds": time.time() - t0, "best": best, "last": last, "history": history}, f, indent=2)
        print(f"best test top-1 {'none' if best is None else '%.2f%% at epoch %d' % (100 * best['top1'], best['epoch'])}; last top-1 "
              f"{100 * last['testTop1']:.2f}%, top-5 {100 * last['testTop5']:.2f}%")
        print(f"files: {last_path}, {os.path.join(run_dir, 'log.jsonl')}, {os.path.join(run_dir, 'log.csv')}, "
              f"{export} (tfjs-compatible safetensors: karat convert --from {export} --out DIR)", flush=True)
    return 0


def main(argv=None):
    try:
        return train(sys.argv[1:] if argv is None else argv)
    except (ConfigError, CheckpointError, DivergenceError, D.DataError, V.ModelConfigError, K.KArAtConfigError,
            st.SafetensorsError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 2
