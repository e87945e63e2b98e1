"""The trainer's options: defaults and presets (the names and defaults of `karat train`,
src/training/config.ts), their layering and validation, the global batch rule of distributed
runs and the learning-rate schedule."""
import math

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


class ConfigError(ValueError):
    """An invalid option or combination of options."""


class BatchSizeError(ConfigError):
    """A global batch size that the number of processes does not divide."""


def kebab(s):
    return "".join("-" + c.lower() if c.isupper() else c for c in s)


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
