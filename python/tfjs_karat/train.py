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
import os
import sys
import time

import torch

from . import data as D
from . import karat as K
from . import safetensors as st
from . import vit as V
# The trainer's parts, also importable from this module (python/tests use them as T.*).
from .train_checkpoint import (CHECKPOINT_FORMAT, CheckpointError, model_params, read_checkpoint,  # noqa: F401
                               resolve_resume, restore_optimizer, save_checkpoint, trainer_problems,
                               weights_fit_config)
from .train_config import (ARCH_FIELDS, DATASETS, DEFAULTS, MAX_MODEL_PARAMS, MODEL_FIELDS, PAPER_MODELS,  # noqa: F401
                           PRESETS, SIZE_BOUNDS, BatchSizeError, ConfigError, _coerce, check_world, kebab,
                           learning_rate, model_attention, resolve_config, validate)
from .train_log import CSV_COLUMNS, _js_number, _now, append_epoch, append_event  # noqa: F401
from .train_run import Dist, DivergenceError, TrainingRun, build, evaluate, soft_cross_entropy  # noqa: F401


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python/train.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for k in DEFAULTS:
        ap.add_argument("--" + kebab(k), dest=k, default=None, metavar=k.upper())
    ns = ap.parse_args(argv)
    return {k: v for k, v in vars(ns).items() if v is not None}


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
        return TrainingRun(cfg, dd, resume_from, run_dir, t0).run()
    except BaseException:
        # a run that fails before writing anything leaves no empty run folder behind
        if created and os.path.isdir(run_dir) and not os.listdir(run_dir):
            os.rmdir(run_dir)
        raise


def main(argv=None):
    try:
        return train(sys.argv[1:] if argv is None else argv)
    except (ConfigError, CheckpointError, DivergenceError, D.DataError, V.ModelConfigError, K.KArAtConfigError,
            st.SafetensorsError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 2
