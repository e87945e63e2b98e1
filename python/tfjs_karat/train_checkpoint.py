"""Checkpoints of the trainer: last.safetensors / best.safetensors (weights, AdamW state and the
trainer state as metadata), their validation on --resume (every field read is type- and
range-checked, the stored weights are checked against the configuration before a model is built)
and where --resume finds them."""
import json
import math
import os

import torch

from . import safetensors as st
from . import vit as V

CHECKPOINT_FORMAT = "tfjs-karat-torch-checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or from another configuration."""


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
