"""Checkpoint helpers for test/pytorch_twin.test.ts; each prints one JSON line.

  ckpt_tool.py info CK                  epoch, step, seed, number of weights of a training checkpoint
  ckpt_tool.py compare A B [--no-key-bias]
                                        max over tensors of max|a-b|/max|b| (model weights only);
                                        --no-key-bias leaves out the key third of attn.qkv.bias: with
                                        softmax attention its gradient is zero (softmax is invariant to
                                        a per-row shift of the scores, and q·b_k is one), so what AdamW's
                                        first step does to it is rounding noise scaled by 1/eps
  ckpt_tool.py update CK                the same measure between CK and the initial weights of its run
  ckpt_tool.py load-into CK CONFIG_JSON loads CK into a model built from CONFIG_JSON (vit_config
                                        arguments): reports the named error, if any
"""
import json
import sys

import _common
from _common import rel, torch
from tfjs_karat import data as D
from tfjs_karat import safetensors as st
from tfjs_karat import train as T
from tfjs_karat import vit as V


def weights(path):
    w, _, trainer, _ = T.read_checkpoint(path)
    return w, trainer


def main(cmd, *args):
    if cmd == "info":
        w, tr = weights(args[0])
        print(json.dumps({"epoch": tr["epoch"], "step": tr["step"], "seed": tr["seed"], "weights": len(w),
                          "hasOptimizer": tr["hasOptimizer"], "history": len(tr["history"])}))
    elif cmd == "compare":
        a, _ = weights(args[0])
        b, _ = weights(args[1])
        assert sorted(a) == sorted(b), f"different tensors: {sorted(set(a) ^ set(b))}"
        if "--no-key-bias" in args:
            for k in [k for k in a if k.endswith(".attn.qkv.bias")]:
                d = a[k].shape[0] // 3
                a[k] = torch.cat([a[k][:d], a[k][2 * d:]])
                b[k] = torch.cat([b[k][:d], b[k][2 * d:]])
        errs = {k: rel(a[k], b[k]) for k in a}
        worst = max(errs, key=errs.get)
        print(json.dumps({"maxRel": errs[worst], "worst": worst, "tensors": len(errs)}))
    elif cmd == "update":
        w, tr = weights(args[0])
        cfg = tr["config"]
        train, _ = D.load_dataset(cfg["dataset"], cfg["dataDir"])
        H, W, C = train.images.shape[1:]
        fresh = T.build(cfg, (C, H, W), train.num_classes, tr["seed"]).state_dict()
        errs = {k: rel(w[k], fresh[k]) for k in w}
        print(json.dumps({"maxRel": max(errs.values()), "minRel": min(errs.values())}))
    elif cmd == "load-into":
        w, _ = st.load(args[0])
        model = V.ViT(V.vit_config(**json.loads(args[1])))
        try:
            V.load_weights(model, w, args[0])
            print(json.dumps({"error": None}))
        except V.ModelConfigError as e:
            print(json.dumps({"error": type(e).__name__, "message": str(e)}))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(*sys.argv[1:])
