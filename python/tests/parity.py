"""Parity of the PyTorch twin with a tfjs model on one batch.

  parity.py MODEL.safetensors BATCH.safetensors GRADS.safetensors
MODEL: the tfjs model exported by vitToSafetensors; BATCH: x [B,H,W,C] (NHWC), targets [B,K],
logits [B,K] and loss [1] computed by tfjs; GRADS: the tfjs gradients of the loss (tf.variableGrads)
in the same safetensors layout. Prints one JSON line: relative errors of logits, loss and of
every parameter's gradient.
"""
import json
import sys

import _common
from _common import rel, torch
from tfjs_karat import safetensors as st
from tfjs_karat import vit as V
from tfjs_karat.train import soft_cross_entropy


def main(model_path, batch_path, grads_path):
    model, cfg = V.load_safetensors(model_path)
    batch, _ = st.load(batch_path)
    grads, _ = st.load(grads_path)
    x = batch["x"].permute(0, 3, 1, 2).contiguous()
    model.train()  # no dropout in these configs; training mode as the tfjs gradient pass
    logits = model(x)
    loss = soft_cross_entropy(logits, batch["targets"])
    model.zero_grad()
    loss.backward()
    out = {"logits": rel(logits.detach(), batch["logits"]), "loss": rel(loss.detach().reshape(1), batch["loss"]),
           "grads": {}, "missing": [], "attention": cfg["attention"], "params": sum(p.numel() for p in model.parameters())}
    named = dict(model.named_parameters())
    for n, p in named.items():
        if n not in grads:
            out["missing"].append(n)
            continue
        out["grads"][n] = rel(p.grad, grads[n])
    out["extra"] = [n for n in grads if n not in named]
    # initialisation: the tfjs model is freshly initialised; a fresh twin of the same config should
    # draw every tensor from the same distribution (compared by std and max |x| per tensor)
    torch.manual_seed(1)
    fresh = V.ViT(cfg).state_dict()
    ts, _ = st.load(model_path)
    out["init"] = {n: {"n": t.numel(), "stdTfjs": float(ts[n].std()) if t.numel() > 1 else 0.0,
                       "stdTorch": float(t.std()) if t.numel() > 1 else 0.0,
                       "maxTfjs": float(ts[n].abs().max()), "maxTorch": float(t.abs().max()),
                       "meanTfjs": float(ts[n].mean()), "meanTorch": float(t.mean())}
                   for n, t in fresh.items()}
    out["maxGrad"] = max(out["grads"].values())
    out["gradNormMin"] = min(float(grads[n].abs().max()) for n in named if n in grads)
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:4])
