"""One training run of the PyTorch twin: the process group (torch.distributed or a single
process), evaluation sharded across ranks, and TrainingRun, which takes a run from the data to the
exported model in named steps (data, model, optimizer, resumed progress, announcement, epochs,
export); rank 0 writes the run folder."""
import datetime
import json
import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import data as D
from . import karat as K
from . import safetensors as st
from . import vit as V
from .train_checkpoint import (CheckpointError, read_checkpoint, restore_optimizer, save_checkpoint,
                               weights_fit_config)
from .train_config import ConfigError, learning_rate, model_attention
from .train_log import append_epoch, append_event


class DivergenceError(RuntimeError):
    """A non-finite training loss."""



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



class TrainingRun:
    """A run in its folder (made by the caller), step by step; run() returns the exit status 0."""

    def __init__(self, cfg, dd, resume_from, run_dir, t0):
        self.cfg, self.dd, self.resume_from, self.run_dir, self.t0 = cfg, dd, resume_from, run_dir, t0
        self.last_path = os.path.join(run_dir, "last.safetensors")
        self.best_path = os.path.join(run_dir, "best.safetensors")

    def run(self):
        self.load_data()
        trainer_state, optim = self.build_model()
        self.make_optimizer()
        self.restore_progress(trainer_state, optim)
        self.announce()
        return self.train_epochs()

    def load_data(self):
        """The datasets, their normalisation, and the per-process batch sizes and steps per epoch."""
        cfg, dd = self.cfg, self.dd
        train_ds, test_ds = D.load_dataset(cfg["dataset"], cfg["dataDir"])
        train_ds, test_ds = train_ds.limit(cfg["trainLimit"]), test_ds.limit(cfg["testLimit"])
        self.train_ds, self.test_ds = train_ds, test_ds
        self.mean, self.std = D.normalisation_for(cfg["dataset"], train_ds)
        self.k = train_ds.num_classes
        self.H, self.W, self.C = train_ds.images.shape[1:]
        self.local = cfg["batchSize"] // dd.world
        self.eval_local = min(cfg["evalBatchSize"], test_ds.size) // dd.world or 1
        full = train_ds.size // cfg["batchSize"]
        if full == 0:
            raise ConfigError(f"--batch-size {cfg['batchSize']} is larger than the training set ({train_ds.size} examples)")
        self.batches = min(cfg["stepsPerEpoch"], full) if cfg["stepsPerEpoch"] > 0 else full

    def build_model(self):
        """The model, from the resumed checkpoint, the --init file or the seed, on the run's device;
        returns the checkpoint's trainer state and optimizer tensors (None, None for a new run)."""
        cfg, resume_from = self.cfg, self.resume_from
        trainer_state = optim = None
        self.seed = cfg["seed"]
        if resume_from:
            weights, optim, trainer_state, meta = read_checkpoint(resume_from)
            weights_fit_config(cfg, weights, self.C, f"--resume: checkpoint '{resume_from}'")
        model = build(cfg, (self.C, self.H, self.W), self.k, self.seed)
        if resume_from:
            self.seed = int(trainer_state["seed"])
            try:
                V.load_weights(model, weights, f"checkpoint '{resume_from}'")
            except V.ModelConfigError as e:
                raise CheckpointError(str(e)) from None
        elif cfg["init"]:
            tensors, _ = st.load(cfg["init"])
            V.load_weights(model, tensors, f"--init {cfg['init']}")
        model.to(self.dd.device)
        self.model = model
        return trainer_state, optim

    def make_optimizer(self):
        """AdamW over the parameter groups decay / no_decay / karat (own learning-rate scale)."""
        cfg, model = self.cfg, self.model
        self.names = [n for n, _ in model.named_parameters()]
        groups = {"decay": [], "no_decay": [], "karat": []}
        for n, p in model.named_parameters():
            groups[V.param_group(n, p)].append(p)
        karat_scale = cfg["karatLr"] / cfg["lr"] if cfg["karatLr"] > 0 else 1.0
        spec = [("decay", cfg["weightDecay"], 1.0), ("no_decay", 0.0, 1.0),
                ("karat", cfg["weightDecay"] if cfg["karatDecay"] else 0.0, karat_scale)]
        self.opt = torch.optim.AdamW([{"params": groups[g], "weight_decay": wd, "lr_scale": s, "name": g}
                                      for g, wd, s in spec if groups[g]],
                                     lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=1e-8)

    def restore_progress(self, trainer_state, optim):
        """Epoch, step, history, best and the optimizer state of a resumed run (a new run starts at 0)."""
        self.start_epoch, self.step, self.history, self.best = 0, 0, [], None
        if trainer_state is not None:
            if not trainer_state.get("hasOptimizer"):
                raise CheckpointError(f"checkpoint '{self.resume_from}' has no optimizer state, cannot resume")
            restore_optimizer(self.opt, self.model, self.names, optim, trainer_state, self.resume_from)
            self.start_epoch, self.step = int(trainer_state["epoch"]), int(trainer_state["step"])
            self.history, self.best = trainer_state.get("history", []), trainer_state.get("best")

    def announce(self):
        """Wraps the model in DistributedDataParallel (W > 1); rank 0 writes config.json and the
        start/resume event and prints the run's backend, model, data and plan."""
        cfg, dd, run_dir, resume_from = self.cfg, self.dd, self.run_dir, self.resume_from
        self.net = self.model
        if dd.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[dd.device.index] if dd.device.type == "cuda" else None)
        self.params = params = sum(p.numel() for p in self.model.parameters())
        if not dd.main:
            return
        with open(os.path.join(run_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        append_event(run_dir, "resume" if resume_from else "start", {
            "config": cfg, "backend": f"torch-{dd.device.type}", "params": params, "resumedFrom": resume_from,
            "startEpoch": self.start_epoch, "worldSize": dd.world, "distBackend": dd.backend,
            "cudaKernels": K.cuda_lib() is not None})
        att = "softmax attention" if cfg["attention"] == "softmax" else \
            f"Fourier-KArAt G{cfg['grid']}{cfg['mode'][0].upper()} (rank {cfg['rank']})"
        train_ds, test_ds, H, W, C = self.train_ds, self.test_ds, self.H, self.W, self.C
        print(f"backend: torch {torch.__version__} on {dd.device}, {dd.world} process(es)"
              f"{' (' + dd.backend + ')' if dd.backend else ''}; CUDA kernels: "
              f"{'yes' if K.cuda_lib() is not None else 'no (plain PyTorch ops)'}")
        print(f"model: ViT dim {cfg['dim']}, depth {cfg['depth']}, heads {cfg['heads']}, patch {cfg['patchSize']}, "
              f"{att}; {params:,} parameters")
        print(f"data: {train_ds.name} {train_ds.size} train / {test_ds.name} {test_ds.size} test, {H}x{W}x{C}, {self.k} classes")
        print(f"run: {run_dir}{' — resumed from ' + resume_from + ' at epoch ' + str(self.start_epoch) if resume_from else ''}; "
              f"{cfg['epochs']} epochs x {self.batches} steps of {cfg['batchSize']} ({self.local} per process)", flush=True)

    def train_epochs(self):
        """The epochs from start_epoch (until --stop-after-epochs), then the export."""
        cfg, dd, run_dir = self.cfg, self.dd, self.run_dir
        aug = {k2: cfg[k2] for k2 in ("cropPadding", "hflip", "mixup", "cutmix", "mixProb", "switchProb",
                                      "labelSmoothing", "randomErasing")}
        aug.update(mean=self.mean, std=self.std)
        sampler = torch.utils.data.distributed.DistributedSampler(
            range(self.train_ds.size), num_replicas=dd.world, rank=dd.rank, shuffle=True, seed=self.seed,
            drop_last=True)
        ran = 0
        for epoch in range(self.start_epoch, cfg["epochs"]):
            if cfg["stopAfterEpochs"] and ran >= cfg["stopAfterEpochs"]:
                if dd.main:
                    append_event(run_dir, "stop", {"epoch": epoch, "step": self.step, "reason": "--stop-after-epochs"})
                    print(f"stopped after {ran} epoch(s) (--stop-after-epochs); resume with --resume {run_dir}")
                return 0
            stats = self.train_epoch(epoch, sampler, aug)
            ran += 1
            self.end_epoch(epoch, stats)
        if not self.history or ran == 0:
            raise ConfigError(f"nothing to train: the run is already at epoch {self.start_epoch} of {cfg['epochs']}")
        if dd.main:
            self.export()
        return 0

    def train_epoch(self, epoch, sampler, aug):
        """One epoch's steps on this rank's shard; returns the epoch's global sums and timings."""
        cfg, dd, batches = self.cfg, self.dd, self.batches
        sampler.set_epoch(epoch)
        order = list(sampler)
        g = torch.Generator().manual_seed((self.seed * 1000003 + epoch * 7919 + dd.rank) % 2 ** 63)
        torch.manual_seed((self.seed * 999983 + epoch * 104729 + dd.rank) % 2 ** 63)  # dropout / drop path
        te, cpu0 = time.time(), time.process_time()
        loss_sum = acc_sum = seen = 0.0
        lr = 0.0
        last_line = 0.0
        self.net.train()
        for b in range(batches):
            ii = order[b * self.local:(b + 1) * self.local]
            lr = learning_rate(cfg, self.step, batches)
            g_loss, g_correct, g_n = self.train_step(ii, lr, aug, g, epoch)
            self.step += 1
            loss_sum += g_loss
            acc_sum += g_correct
            seen += g_n
            if dd.main and cfg["progress"] == "lines" and (time.time() - last_line > 10 or b + 1 == batches):
                last_line = time.time()
                el = time.time() - te
                print(f"epoch {epoch + 1}/{cfg['epochs']} step {b + 1}/{batches} loss {loss_sum / seen:.4f} "
                      f"acc {100 * acc_sum / seen:.1f}% lr {lr:.2e} {seen / el:.1f} img/s", flush=True)
        return {"lr": lr, "loss_sum": loss_sum, "acc_sum": acc_sum, "seen": seen, "train_s": time.time() - te,
                "cpu_s": time.process_time() - cpu0}

    def train_step(self, ii, lr, aug, g, epoch):
        """One optimizer step on the examples ii (gradients clipped by their global norm); returns the
        global loss sum, correct count and example count; a non-finite loss is a DivergenceError."""
        cfg, dd, model, opt = self.cfg, self.dd, self.model, self.opt
        for grp in opt.param_groups:
            grp["lr"] = lr * grp["lr_scale"]
        x, y = D.augment_batch(self.train_ds.images[ii], self.train_ds.labels[ii], self.k, aug, g)
        x, y = x.to(dd.device), y.to(dd.device)
        logits = self.net(x)
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
        labels = torch.as_tensor(self.train_ds.labels[ii], device=logits.device)
        correct = float((logits.argmax(-1) == labels).sum())
        g_loss, g_correct, g_n = dd.sum([float(loss) * len(ii), correct, float(len(ii))])
        if not math.isfinite(g_loss):
            raise DivergenceError(f"training diverged at epoch {epoch + 1}, step {self.step + 1}: loss is {g_loss / g_n} "
                                  f"(lower --lr or enable --clip-grad)")
        opt.step()
        return g_loss, g_correct, g_n

    def end_epoch(self, epoch, stats):
        """Evaluation, the epoch record, and on rank 0 the checkpoints, the log and the epoch line."""
        cfg, dd = self.cfg, self.dd
        ev = evaluate(self.model, self.test_ds, self.mean, self.std, self.eval_local, dd)
        # a non-finite top-1 is never a best (it is a divergence, not a result)
        is_best = math.isfinite(ev["top1"]) and (self.best is None or ev["top1"] > self.best["top1"])
        if is_best:
            self.best = {"epoch": epoch + 1, "top1": ev["top1"]}
        seen, train_s = stats["seen"], stats["train_s"]
        rec = {"epoch": epoch + 1, "step": self.step, "lr": stats["lr"], "trainLoss": stats["loss_sum"] / seen,
               "trainAcc": stats["acc_sum"] / seen, "testLoss": ev["loss"], "testTop1": ev["top1"],
               "testTop5": ev["top5"], "epochSeconds": train_s, "imagesPerSec": seen / train_s,
               "cpuSeconds": stats["cpu_s"], "best": is_best}
        self.history.append(rec)
        if not dd.main:
            return
        trainer = {"epoch": epoch + 1, "step": self.step, "seed": self.seed, "config": {**cfg, "resume": None},
                   "history": self.history, "best": self.best, "worldSize": dd.world,
                   "lastEval": {"loss": ev["loss"], "top1": ev["top1"], "top5": ev["top5"]}}
        save_checkpoint(self.last_path, self.model, self.opt, self.names, trainer)
        if is_best:
            save_checkpoint(self.best_path, self.model, self.opt, self.names, trainer, with_optimizer=False)
        append_epoch(self.run_dir, rec)
        print(f"epoch {epoch + 1}/{cfg['epochs']}: train loss {rec['trainLoss']:.4f} acc {100 * rec['trainAcc']:.2f}% | "
              f"test loss {ev['loss']:.4f} top-1 {100 * ev['top1']:.2f}% top-5 {100 * ev['top5']:.2f}% | "
              f"{rec['imagesPerSec']:.1f} img/s, {train_s:.1f} s{' *best' if is_best else ''}", flush=True)

    def export(self):
        """Rank 0 at the end: the tfjs-compatible model.safetensors (or --export), the end event,
        summary.json and the closing lines."""
        cfg, dd, run_dir, t0, best = self.cfg, self.dd, self.run_dir, self.t0, self.best
        export = cfg["export"] or os.path.join(run_dir, "model.safetensors")
        V.save_safetensors(self.model, export)
        last = self.history[-1]
        append_event(run_dir, "end", {"seconds": time.time() - t0, "best": best, "last": last, "export": export})
        with open(os.path.join(run_dir, "summary.json"), "w") as f:
            json.dump({"config": cfg, "backend": f"torch-{dd.device.type}", "worldSize": dd.world, "params": self.params,
                       "seconds": time.time() - t0, "best": best, "last": last, "history": self.history}, f, indent=2)
        print(f"best test top-1 {'none' if best is None else '%.2f%% at epoch %d' % (100 * best['top1'], best['epoch'])}; last top-1 "
              f"{100 * last['testTop1']:.2f}%, top-5 {100 * last['testTop5']:.2f}%")
        print(f"files: {self.last_path}, {os.path.join(run_dir, 'log.jsonl')}, {os.path.join(run_dir, 'log.csv')}, "
              f"{export} (tfjs-compatible safetensors: karat convert --from {export} --out DIR)", flush=True)
