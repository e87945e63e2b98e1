"""Datasets for the PyTorch trainer: the CIFAR-10 subset (packages/cifar10-subset/cifar10-subset.kds, the
format of src/data/subset.ts) and the CIFAR-10 / CIFAR-100 binary version (the official .tar.gz or
its extracted directory). Images are uint8 NHWC numpy arrays, labels int64.

DeiT augmentation (the recipe of src/data/augment.ts) on torch tensors: random crop with zero
padding, horizontal flip, normalisation, random erasing, batch mixup/cutmix (image i mixed with
image n-1-i, one λ per batch) and label smoothing.
"""
import ctypes
import ctypes.util
import hashlib
import json
import math
import os
import tarfile

import numpy as np
import torch

NORMALISATION = {
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "cifar100": ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762]),
}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class DataError(ValueError):
    """A dataset file that is missing, corrupt or of the wrong kind."""


class ImageData:
    def __init__(self, name, images, labels, class_names):
        self.name, self.images, self.labels, self.class_names = name, images, labels, class_names

    @property
    def size(self):
        return len(self.labels)

    @property
    def num_classes(self):
        return len(self.class_names)

    def limit(self, n):
        return self if n <= 0 or n >= self.size else ImageData(self.name, self.images[:n], self.labels[:n], self.class_names)


# ------------------------------------------------------------------------------ .kds subsets

def _brotli_decompress(data, out_size, source):
    name = ctypes.util.find_library("brotlidec") or "libbrotlidec.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        raise DataError(f"{source}: reading a .kds subset needs the brotli decoder library (libbrotlidec, "
                        f"Debian package libbrotli1); use the CIFAR-10 binary tarball instead") from None
    fn = lib.BrotliDecoderDecompress
    fn.argtypes = [ctypes.c_size_t, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_void_p]
    fn.restype = ctypes.c_int
    out = ctypes.create_string_buffer(out_size + 1)  # one spare byte: a longer stream is reported, not cut
    n = ctypes.c_size_t(out_size + 1)
    if fn(len(data), data, ctypes.byref(n), out) != 1:
        raise DataError(f"{source}: corrupt or truncated compressed data (brotli), or more than the "
                        f"{out_size} bytes the header implies")
    if n.value != out_size:
        raise DataError(f"{source}: payload has {n.value} bytes, header implies {out_size}")
    return out.raw[:out_size]


def _unpredict(residual, H, W, C):
    """Inverse of the gradient predictor: CHW residuals [n, C, H, W] -> NHWC pixels. Works on an
    [H, W, n·C] layout so that each predicted pixel position is one contiguous vector."""
    n = residual.shape[0]
    res = np.ascontiguousarray(residual.transpose(2, 3, 0, 1)).reshape(H, W, n * C).astype(np.int16)
    px = np.empty_like(res)
    px[0, 0] = res[0, 0]
    for x in range(1, W):
        px[0, x] = (res[0, x] + px[0, x - 1]) & 255
    for y in range(1, H):
        px[y, 0] = (res[y, 0] + px[y - 1, 0]) & 255
        up, row, rres = px[y - 1], px[y], res[y]
        for x in range(1, W):
            p = row[x - 1] + up[x] - up[x - 1]
            np.clip(p, 0, 255, out=p)
            row[x] = (rres[x] + p) & 255
    return np.ascontiguousarray(px.reshape(H, W, n, C).transpose(2, 0, 1, 3)).astype(np.uint8)


def load_kds(path):
    """{split name: ImageData} of a .kds file (checksum verified)."""
    if not os.path.exists(path):
        raise DataError(f"dataset subset '{path}' does not exist")
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 12 or b[:8] != b"KARATDS1":
        raise DataError(f"{path}: wrong magic number '{b[:8].hex()}', expected 'KARATDS1' (a tfjs-karat dataset subset)")
    hl = int.from_bytes(b[8:12], "little")
    if 12 + hl > len(b):
        raise DataError(f"{path}: truncated header")
    try:
        h = json.loads(b[12:12 + hl].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: corrupt header ({e})") from None
    if h.get("format") != 1 or h.get("encoding") != "gradient-brotli":
        raise DataError(f"{path}: unsupported format {h.get('format')}/{h.get('encoding')}")
    H, W, C = h["height"], h["width"], h["channels"]
    per = H * W * C
    total = sum(s["count"] for s in h["splits"])
    if total * (per + 1) > 2 ** 31:
        raise DataError(f"{path}: header implies {total} images of {H}x{W}x{C}, too large for a subset file")
    payload = _brotli_decompress(b[12 + hl:], total * (per + 1), path)
    labels = np.frombuffer(payload, dtype=np.uint8, count=total)
    residual = np.frombuffer(payload, dtype=np.uint8, offset=total).reshape(total, C, H, W)
    pixels = _unpredict(residual, H, W, C)
    sha = hashlib.sha256(labels.tobytes() + pixels.tobytes()).hexdigest()
    if sha != h["sha256"]:
        raise DataError(f"{path}: checksum mismatch (SHA-256 {sha[:16]}…, header says {h['sha256'][:16]}…); the file is corrupt")
    out, o = {}, 0
    for s in h["splits"]:
        n = s["count"]
        out[s["name"]] = ImageData(f"{h['name']}/{s['name']}", pixels[o:o + n], labels[o:o + n].astype(np.int64),
                                   list(h["classNames"]))
        o += n
    return out


# ------------------------------------------------------------------------------ CIFAR binary

_CIFAR = {
    "cifar10": ("cifar-10-batches-bin", 1, [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"],
                "batches.meta.txt", 10),
    "cifar100": ("cifar-100-binary", 2, ["train.bin"], ["test.bin"], "fine_label_names.txt", 100),
}


def parse_cifar(buf, variant, source):
    _, lb, _, _, _, k = _CIFAR[variant]
    rec = lb + 3072
    if len(buf) == 0:
        raise DataError(f"{source}: file is empty")
    if len(buf) % rec:
        raise DataError(f"{source}: truncated record — {len(buf)} bytes is not a multiple of the {variant} "
                        f"record size {rec}")
    a = np.frombuffer(buf, dtype=np.uint8).reshape(-1, rec)
    labels = a[:, lb - 1].astype(np.int64)  # CIFAR-100: the fine label (second byte)
    if labels.max(initial=0) >= k:
        raise DataError(f"{source}: a record has label {labels.max()}, outside [0, {k}) — not {variant} binary data")
    images = a[:, lb:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def load_cifar(path, variant, split):
    """A CIFAR split from the official .tar.gz, its extracted directory or a directory holding it."""
    if variant not in _CIFAR:
        raise DataError(f"unknown CIFAR variant '{variant}', expected cifar10 or cifar100")
    d, _, train, test, meta, k = _CIFAR[variant]
    files = train if split == "train" else test
    if not os.path.exists(path):
        raise DataError(f"{variant}: '{path}' does not exist")
    parts, names_txt = [], None
    if os.path.isfile(path):
        try:
            with tarfile.open(path, "r:*") as tf:
                members = {m.name.lstrip("./"): m for m in tf.getmembers() if m.isfile()}
                for f in files:
                    m = members.get(f"{d}/{f}")
                    if m is None:
                        raise DataError(f"{path}: archive lacks {d}/{f} — is it the {variant} binary version?")
                    parts.append((f"{path}:{d}/{f}", tf.extractfile(m).read()))
                if f"{d}/{meta}" in members:
                    names_txt = tf.extractfile(members[f"{d}/{meta}"]).read().decode()
        except tarfile.TarError as e:
            raise DataError(f"{path}: not a readable tar archive ({e})") from None
    else:
        root = os.path.join(path, d) if os.path.isdir(os.path.join(path, d)) else path
        for f in files:
            p = os.path.join(root, f)
            if not os.path.exists(p):
                raise DataError(f"{variant}: missing {p} (expected the {variant} binary version)")
            with open(p, "rb") as f:
                parts.append((p, f.read()))
        if os.path.exists(os.path.join(root, meta)):
            with open(os.path.join(root, meta)) as f:
                names_txt = f.read()
    decoded = [parse_cifar(b, variant, s) for s, b in parts]
    names = [s.strip() for s in (names_txt or "").splitlines() if s.strip()]
    if len(names) != k:
        names = CIFAR10_CLASSES if variant == "cifar10" else [f"class_{i}" for i in range(k)]
    return ImageData(f"{variant}/{split}", np.concatenate([x for x, _ in decoded]),
                     np.concatenate([y for _, y in decoded]), names)


def load_dataset(dataset, data_dir=None):
    """(train, test) ImageData for 'cifar10-subset' (data_dir: a .kds file, default the repository's),
    'cifar10' or 'cifar100' (data_dir: the binary .tar.gz or directory)."""
    if dataset == "cifar10-subset" or (dataset.endswith(".kds")):
        path = data_dir if dataset == "cifar10-subset" else dataset
        if path is None:
            path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packages", "cifar10-subset",
                                "cifar10-subset.kds")
        s = load_kds(path)
        if "train" not in s or "test" not in s:
            raise DataError(f"{path}: needs 'train' and 'test' splits, has {', '.join(s)}")
        return s["train"], s["test"]
    if dataset in _CIFAR:
        if not data_dir:
            raise DataError(f"dataset '{dataset}' needs --data-dir (the {dataset} binary .tar.gz or its directory)")
        return load_cifar(data_dir, dataset, "train"), load_cifar(data_dir, dataset, "test")
    raise DataError(f"unknown dataset '{dataset}'; expected cifar10-subset, a .kds file, cifar10 or cifar100")


def normalisation_for(dataset, train):
    key = "cifar10" if dataset == "cifar10-subset" or dataset.endswith(".kds") else dataset
    if key in NORMALISATION:
        return NORMALISATION[key]
    x = train.images.reshape(-1, train.images.shape[-1]).astype(np.float64) / 255
    return list(x.mean(0)), list(x.std(0))


# ------------------------------------------------------------------------------ augmentation

def smooth_one_hot(labels, k, eps):
    y = torch.full((len(labels), k), eps / k)
    y[torch.arange(len(labels)), labels] = 1 - eps + eps / k
    return y


def _gamma(a, g):
    """Gamma(a, 1) from the seeded generator `g` (Marsaglia–Tsang; a < 1 by the boost u^(1/a))."""
    boost = 1.0
    if a < 1:
        boost = float(torch.rand((), generator=g)) ** (1 / a)
        a += 1
    d = a - 1 / 3
    c = 1 / math.sqrt(9 * d)
    while True:
        x = float(torch.randn((), generator=g))
        v = (1 + c * x) ** 3
        if v <= 0:
            continue
        u = float(torch.rand((), generator=g))
        if math.log(max(u, 1e-300)) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v * boost


def _beta(alpha, g):
    x, y = _gamma(alpha, g), _gamma(alpha, g)
    return x / (x + y)


def augment_batch(images, labels, num_classes, aug, g):
    """uint8 NHWC numpy batch -> (normalised NCHW float32 tensor, soft targets [n, K]).
    aug: dict of the TrainConfig augmentation fields plus mean/std; g: a torch.Generator."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()  # [n, C, H, W] in 0..255
    n, C, H, W = x.shape
    pad = aug["cropPadding"]
    if pad > 0 or aug["hflip"]:
        out = torch.zeros_like(x)
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
        for i in range(n):
            dy = int(torch.randint(2 * pad + 1, (), generator=g)) - pad if pad > 0 else 0
            dx = int(torch.randint(2 * pad + 1, (), generator=g)) - pad if pad > 0 else 0
            img = padded[i, :, pad + dy:pad + dy + H, pad + dx:pad + dx + W]
            if aug["hflip"] and float(torch.rand((), generator=g)) < 0.5:
                img = img.flip(-1)
            out[i] = img
        x = out
    mean = torch.tensor(aug["mean"]).view(1, C, 1, 1)
    std = torch.tensor(aug["std"]).view(1, C, 1, 1)
    x = (x / 255 - mean) / std
    if aug["randomErasing"] > 0:
        for i in range(n):
            _random_erase(x[i], aug["randomErasing"], g)
    y = smooth_one_hot(torch.from_numpy(np.asarray(labels)), num_classes, aug["labelSmoothing"])
    _mix(x, y, aug, g)
    return x, y


def _random_erase(img, p, g):
    if float(torch.rand((), generator=g)) >= p:
        return
    C, H, W = img.shape
    for _ in range(10):
        area = H * W * (0.02 + float(torch.rand((), generator=g)) * (1 / 3 - 0.02))
        ar = math.exp(math.log(0.3) + float(torch.rand((), generator=g)) * (math.log(1 / 0.3) - math.log(0.3)))
        h, w = int(round(math.sqrt(area * ar))), int(round(math.sqrt(area / ar)))
        if h < 1 or w < 1 or h >= H or w >= W:
            continue
        y0 = int(torch.randint(H - h + 1, (), generator=g))
        x0 = int(torch.randint(W - w + 1, (), generator=g))
        img[:, y0:y0 + h, x0:x0 + w] = torch.randn((C, h, w), generator=g)
        return


def _mix(x, y, aug, g):
    use_mix, use_cut = aug["mixup"] > 0, aug["cutmix"] > 0
    n = x.shape[0]
    if (not use_mix and not use_cut) or n < 2 or float(torch.rand((), generator=g)) >= aug["mixProb"]:
        return
    cut = use_cut and (not use_mix or float(torch.rand((), generator=g)) < aug["switchProb"])
    lam = _beta(aug["cutmix"] if cut else aug["mixup"], g)
    flipped = x.flip(0).clone()
    _, _, H, W = x.shape
    if cut:
        r = math.sqrt(1 - lam)
        ch, cw = int(H * r), int(W * r)
        cy, cx = int(torch.randint(H, (), generator=g)), int(torch.randint(W, (), generator=g))
        ya, yb = max(cy - ch // 2, 0), min(cy + ch // 2, H)
        xa, xb = max(cx - cw // 2, 0), min(cx + cw // 2, W)
        x[:, :, ya:yb, xa:xb] = flipped[:, :, ya:yb, xa:xb]
        lam = 1 - (yb - ya) * (xb - xa) / (H * W)
    else:
        x.mul_(lam).add_(flipped, alpha=1 - lam)
    y.copy_(lam * y + (1 - lam) * y.flip(0))
