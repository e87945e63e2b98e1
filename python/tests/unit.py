"""Unit checks of python/tfjs_karat that need no tfjs (run by test/pytorch_twin.test.ts)."""
import json
import math
import os
import struct
import tempfile
import unittest

import _common
from _common import rel, torch
from tfjs_karat import data as D
from tfjs_karat import karat as K
from tfjs_karat import safetensors as st
from tfjs_karat import train as T
from tfjs_karat import vit as V


def raw_file(path, header, data=b""):
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


class Safetensors(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def p(self, name):
        return os.path.join(self.dir, name)

    def test_round_trip_and_metadata(self):
        t = {"b": torch.randn(2, 3), "a": torch.arange(5.0)}
        st.save(self.p("x"), t, {"k": "v"})
        back, meta = st.load(self.p("x"))
        self.assertEqual(list(back), ["b", "a"])
        self.assertTrue(torch.equal(back["b"], t["b"]) and torch.equal(back["a"], t["a"]))
        self.assertEqual(meta, {"k": "v"})
        with open(self.p("x"), "rb") as f:
            self.assertEqual(struct.unpack("<Q", f.read(8))[0] % 8, 0)

    def test_f16_bf16(self):
        vals = [1.0, -2.5, 0.15625]
        f16 = struct.pack("<3e", *vals)
        bf16 = b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in vals)
        raw_file(self.p("h"), {"h": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]},
                               "b": {"dtype": "BF16", "shape": [3], "data_offsets": [6, 12]}}, f16 + bf16)
        t, _ = st.load(self.p("h"))
        self.assertEqual(t["h"].tolist(), vals)
        self.assertEqual(t["b"].tolist(), vals)
        self.assertEqual(t["h"].dtype, torch.float32)

    def test_malformed_files_are_refused_before_reading_data(self):
        e = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        cases = {
            "dtype": ({"t": {**e, "dtype": "I64"}}, b"\0" * 8, "accepts F32, F16, BF16"),
            "span": ({"t": {**e, "shape": [3]}}, b"\0" * 8, "needs 12 bytes"),
            "bounds": ({"t": {**e, "data_offsets": [0, 8]}}, b"\0" * 4, "outside the data section"),
            "overlap": ({"t": e, "u": {**e, "data_offsets": [4, 12]}}, b"\0" * 12, "overlap"),
            "shape": ({"t": {**e, "shape": [-2]}}, b"\0" * 8, "invalid shape"),
            "keys": ({"t": {**e, "extra": 1}}, b"\0" * 8, "exactly dtype, shape and data_offsets"),
            "meta": ({"__metadata__": {"a": 1}, "t": e}, b"\0" * 8, "map of strings"),
        }
        for name, (header, data, msg) in cases.items():
            raw_file(self.p(name), header, data)
            with self.assertRaisesRegex(st.SafetensorsError, msg, msg=name):
                st.load(self.p(name))
        with open(self.p("huge"), "wb") as f:
            f.write(struct.pack("<Q", 2 ** 40) + b"{}")
        with self.assertRaisesRegex(st.SafetensorsError, "does not fit the file"):
            st.load(self.p("huge"))
        with open(self.p("json"), "wb") as f:
            f.write(struct.pack("<Q", 3) + b"{x}")
        with self.assertRaisesRegex(st.SafetensorsError, "not valid JSON"):
            st.load(self.p("json"))


class Model(unittest.TestCase):
    def test_impls_agree_and_paper_forms_the_matrix(self):
        torch.manual_seed(0)
        cfg = K.resolve_attention({"type": "fourier", "grid": 3, "rank": 5})
        op = K.KArAtOperator(cfg, 2, 9)
        s, v = torch.randn(3, 2, 9, 9), torch.randn(3, 2, 9, 4)
        try:
            outs = {}
            for impl in ("auto", "plain", "paper"):
                K.set_impl(impl)
                outs[impl] = K.operator_attention(s, op.params(), cfg, v)
        finally:
            K.set_impl("auto")
        self.assertLess(rel(outs["plain"], outs["paper"]), 1e-5)
        self.assertLess(rel(outs["auto"], outs["paper"]), 1e-5)
        # σ̂(S) V with σ̂ formed explicitly from the spec's formula
        A, B = op.coeffs[:, 0], op.coeffs[:, 1]
        m = torch.arange(1, 4.0)
        ang = s[..., None] * m                                          # [B,h,i,q,m]
        hid = torch.einsum("bhiqm,hpqm->bhip", torch.cos(ang), A) + torch.einsum("bhiqm,hpqm->bhip", torch.sin(ang), B)
        sig = torch.einsum("bhip,hjp->bhij", hid, op.proj)
        self.assertLess(rel(outs["paper"], sig @ v), 1e-5)
        with self.assertRaises(K.KArAtConfigError):
            K.set_impl("fast")
        K.set_impl("fused")
        try:
            with self.assertRaisesRegex(RuntimeError, "not loaded"):
                K.operator_attention(s, op.params(), cfg, v)
        finally:
            K.set_impl("auto")

    def test_parameter_counts_and_universal_sharing(self):
        mk = lambda att: V.ViT(V.vit_config(dim=16, depth=3, heads=2, imageSize=16, patchSize=4, numClasses=5, attention=att))
        n = 17
        soft = sum(p.numel() for p in mk("softmax").parameters())
        b = mk({"type": "fourier", "grid": 3, "rank": 4})
        u = mk({"type": "fourier", "grid": 3, "rank": 4, "mode": "universal"})
        self.assertEqual(sum(p.numel() for p in b.parameters()) - soft, 3 * 2 * n * 4 * (2 * 3 + 1))
        self.assertEqual(sum(p.numel() for p in u.parameters()) - soft, 2 * n * 4 * (2 * 3 + 1))
        self.assertIn("karat.coeffs", u.state_dict())
        self.assertFalse(any(k.startswith("blocks.") and "karat" in k for k in u.state_dict()))

    def test_named_errors(self):
        with self.assertRaisesRegex(V.ModelConfigError, "must be one of"):
            V.paper_config("tiny-G9X")
        with self.assertRaisesRegex(K.KArAtConfigError, "unknown key 'grd'"):
            K.resolve_attention({"type": "fourier", "grd": 3})
        with self.assertRaisesRegex(V.ModelConfigError, "rank.*must be <= the number of tokens N = 5"):
            V.vit_config(dim=8, depth=1, heads=2, imageSize=8, patchSize=4, numClasses=2, attention={"rank": 12})
        with self.assertRaisesRegex(T.BatchSizeError, "world size 3"):
            T.check_world({"batchSize": 64, "evalBatchSize": 249}, 3)
        T.check_world({"batchSize": 64, "evalBatchSize": 250}, 2)
        with self.assertRaisesRegex(T.ConfigError, "unknown option"):
            T.resolve_config([{"from": "x", "values": {"nope": 1}}])
        with self.assertRaisesRegex(T.ConfigError, "give --run-name"):
            T.train(["--resume", "auto"])
        with self.assertRaisesRegex(T.CheckpointError, "does not exist"):
            T.train(["--resume", os.path.join(tempfile.mkdtemp(), "none.safetensors")])
        with self.assertRaisesRegex(T.ConfigError, "'heads' \\(5\\)"):
            T.train(["--dim", "16", "--heads", "5"])

    def test_paper_configs(self):
        c = V.paper_config("tiny-G3B")
        self.assertEqual((c["dim"], c["depth"], c["heads"]), (192, 12, 3))
        self.assertEqual(c["attention"]["grid"], 3)
        self.assertEqual(V.paper_config("base-G1U")["attention"]["mode"], "universal")
        m = V.ViT(V.vit_config(config="tiny-G3U", imageSize=32, patchSize=4, numClasses=10))
        self.assertEqual(m.n_tokens, 65)

    def test_timm_file_without_metadata(self):
        m = V.ViT(V.vit_config(dim=12, depth=2, heads=3, imageSize=8, patchSize=4, numClasses=4))
        d = tempfile.mkdtemp()
        st.save(os.path.join(d, "t"), V.state_tensors(m))
        with self.assertRaisesRegex(V.ModelConfigError, "give the number of heads"):
            V.load_safetensors(os.path.join(d, "t"))
        m2, cfg = V.load_safetensors(os.path.join(d, "t"), heads=3)
        self.assertEqual((cfg["dim"], cfg["depth"], cfg["patchSize"], cfg["imageSize"]), (12, 2, 4, [8, 8]))
        x = torch.randn(2, 3, 8, 8)
        self.assertTrue(torch.equal(m.eval()(x), m2.eval()(x)))


class Data(unittest.TestCase):
    def test_kds_errors(self):
        d = tempfile.mkdtemp()
        p = os.path.join(d, "x.kds")
        with open(p, "wb") as f:
            f.write(b"NOTKARAT" + b"\0" * 8)
        with self.assertRaisesRegex(D.DataError, "wrong magic number"):
            D.load_kds(p)
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "packages", "cifar10-subset", "cifar10-subset.kds"), "rb") as f:
            raw = f.read()
        with open(p, "wb") as f:
            f.write(raw[:len(raw) // 2])
        with self.assertRaisesRegex(D.DataError, "corrupt or truncated"):
            D.load_kds(p)

    def test_cifar_tarball_and_directory(self):
        d = tempfile.mkdtemp()
        root = os.path.join(d, "cifar-10-batches-bin")
        os.makedirs(root)
        g = torch.Generator().manual_seed(2)
        for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            rec = (torch.rand(3, 3073, generator=g) * 255).to(torch.uint8)
            rec[:, 0] = torch.tensor([1, 7, 9], dtype=torch.uint8)
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(rec.numpy().tobytes())
        import tarfile
        tgz = os.path.join(d, "cifar-10-binary.tar.gz")
        with tarfile.open(tgz, "w:gz") as tf:
            tf.add(root, arcname="cifar-10-batches-bin")
        a_train, a_test = D.load_dataset("cifar10", tgz)
        b_train, b_test = D.load_dataset("cifar10", d)
        self.assertEqual(a_train.images.shape, (15, 32, 32, 3))
        self.assertTrue((a_train.images == b_train.images).all() and (a_test.labels == b_test.labels).all())
        self.assertEqual(a_test.labels.tolist(), [1, 7, 9])
        # CHW records -> HWC: pixel (0, 1) of channel 1 is byte 1 + 1024 + 1 of the record
        with open(os.path.join(root, "test_batch.bin"), "rb") as fh:
            raw = fh.read()
        self.assertEqual(int(a_test.images[0, 0, 1, 1]), raw[1 + 1024 + 1])
        with self.assertRaisesRegex(D.DataError, "needs --data-dir"):
            D.load_dataset("cifar10")

    def test_cifar_truncated(self):
        with self.assertRaisesRegex(D.DataError, "truncated record"):
            D.parse_cifar(b"\0" * 3074, "cifar10", "x")

    def test_mixup_keeps_targets_normalised(self):
        g = torch.Generator().manual_seed(1)
        imgs = (torch.rand(6, 8, 8, 3, generator=g) * 255).to(torch.uint8).numpy()
        aug = {"cropPadding": 2, "hflip": True, "mixup": 0.8, "cutmix": 1.0, "mixProb": 1.0, "switchProb": 0.5,
               "labelSmoothing": 0.1, "randomErasing": 0.5, "mean": [0.5] * 3, "std": [0.25] * 3}
        for _ in range(5):
            x, y = D.augment_batch(imgs, [0, 1, 2, 3, 4, 5], 6, aug, g)
            self.assertEqual(tuple(x.shape), (6, 3, 8, 8))
            self.assertTrue(torch.allclose(y.sum(1), torch.ones(6)))
            self.assertTrue(torch.isfinite(x).all())


class SafetensorsSameRulesAsTypeScript(unittest.TestCase):
    """The rules the TypeScript reader enforces; test/pytorch_twin.test.ts also runs both readers on one set of files."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def write(self, name, header_text, data):
        p = os.path.join(self.dir, name)
        h = header_text.encode()
        with open(p, "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + data)
        return p

    def test_duplicate_keys_trailing_bytes_holes_and_nan_are_refused(self):
        e = '{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}'
        cases = {
            "duplicate": ('{"cls_token":%s,"cls_token":%s}' % (e % (0, 4), e % (4, 8)), b"\0" * 8, "more than once"),
            "trailing": ('{"cls_token":%s}' % (e % (0, 4)), b"\0" * 8, "trailing bytes"),
            "hole": ('{"a":%s,"b":%s}' % (e % (0, 4), e % (8, 12)), b"\0" * 12, "no holes"),
            "nan": ('{"__metadata__":{"a":"b"},"x":NaN}', b"", "not valid JSON"),
            "dup-meta": ('{"__metadata__":{"a":"b","a":"c"}}', b"", "more than once"),
        }
        for name, (text, data, msg) in cases.items():
            with self.assertRaisesRegex(st.SafetensorsError, msg, msg=name):
                st.load(self.write(name, text, data))


TINY = ["--dim", "8", "--depth", "1", "--heads", "2", "--mlp-ratio", "1", "--patch-size", "8", "--grid", "1",
        "--rank", "2", "--epochs", "1", "--batch-size", "16", "--eval-batch-size", "16", "--train-limit", "32",
        "--test-limit", "16", "--steps-per-epoch", "1", "--mixup", "0", "--cutmix", "0", "--device", "cpu",
        "--progress", "none"]


class RunSafety(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def run_tiny(self, name, *extra):
        return T.train(TINY + ["--out-dir", self.dir, "--run-name", name, *extra])

    def forge(self, src, dst, edit):
        tensors, meta = st.load(src)
        trainer = json.loads(meta["trainer"])
        edit(trainer)
        meta = {**meta, "trainer": json.dumps(trainer)}
        st.save(dst, tensors, meta)

    def test_sizes_are_bounded_before_building(self):
        for flags, msg in [(["--depth", "1000000000"], "'depth' must be <= 128"), (["--dim", "100000"], "'dim' must be <= 4096"),
                           (["--grid", "200000"], "'grid' must be <= 64"), (["--mlp-ratio", "1000"], "'mlp-ratio' must be <= 16")]:
            with self.assertRaisesRegex(T.ConfigError, msg):
                T.train(flags)

    def test_an_existing_run_is_refused_without_resume_or_overwrite_and_failed_runs_leave_no_folder(self):
        self.assertEqual(self.run_tiny("r"), 0)
        with open(os.path.join(self.dir, "r", "log.csv")) as f:
            log = f.read()
        with self.assertRaisesRegex(T.ConfigError, "already holds a run"):
            self.run_tiny("r")
        with open(os.path.join(self.dir, "r", "log.csv")) as f:
            self.assertEqual(f.read(), log)
        self.assertEqual(self.run_tiny("r", "--overwrite", "true"), 0)
        with self.assertRaisesRegex(T.ConfigError, "larger than the training set"):
            self.run_tiny("bad", "--batch-size", "64")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "bad")))

    def test_resume_validates_the_trainer_state(self):
        self.assertEqual(self.run_tiny("r"), 0)
        last = os.path.join(self.dir, "r", "last.safetensors")
        cases = [
            (lambda t: t.pop("seed"), "'trainer.seed' must be an integer"),
            (lambda t: t.clear() or t.update({"x": 1}), "'trainer.seed'"),
            (lambda t: t.update(epoch="x"), "'trainer.epoch' must be a non-negative integer"),
            (lambda t: t.update(best={"epoch": 1, "top1": "high"}), "'trainer.best' must be null or"),
            (lambda t: t.update(best={"epoch": 1, "top1": float("nan")}), "NaN is not a JSON value|'trainer.best'"),
            (lambda t: t["config"].update(dim=2048, depth=8), "the configuration says depth 8|'patch_embed.proj.weight' is stored as \\[8, 3, 8, 8\\], the configuration needs \\[2048"),
        ]
        for i, (edit, msg) in enumerate(cases):
            forged = os.path.join(self.dir, f"forged{i}.safetensors")
            self.forge(last, forged, edit)
            with self.assertRaisesRegex(T.CheckpointError, msg, msg=msg):
                T.train(["--resume", forged, "--epochs", "2", "--out-dir", self.dir, "--run-name", f"res{i}", "--progress", "none"])
            self.assertFalse(os.path.exists(os.path.join(self.dir, f"res{i}")), f"case {i} left a run folder")
        # a trainer state that is a JSON array
        tensors, meta = st.load(last)
        st.save(os.path.join(self.dir, "arr.safetensors"), tensors, {**meta, "trainer": "[]"})
        with self.assertRaisesRegex(T.CheckpointError, "'trainer' must be an object"):
            T.train(["--resume", os.path.join(self.dir, "arr.safetensors"), "--out-dir", self.dir, "--run-name", "arr"])

    def test_a_non_finite_top1_is_never_a_best(self):
        self.assertFalse(T.trainer_problems({"seed": 1, "epoch": 1, "step": 1, "best": {"epoch": 1, "top1": 0.5}}))
        self.assertTrue(T.trainer_problems({"seed": 1, "epoch": 1, "step": 1, "best": {"epoch": 1, "top1": float("nan")}}))
        self.assertTrue(T.trainer_problems({"seed": 1, "epoch": 1, "step": 1, "best": {"epoch": 1, "top1": 45.0}}))


class Logging(unittest.TestCase):
    def test_csv_numbers_as_javascript_toPrecision(self):
        cases = {0.00181857: "0.00181857", 2.996744: "2.99674", 0.2: "0.200000", 1e-7: "1.00000e-7",
                 123456.7: "123457", 1234567.8: "1.23457e+6", 3.0: "3", True: "true", 12: "12", 79.74264: "79.7426"}
        for v, want in cases.items():
            self.assertEqual(T._js_number(v), want, v)


if __name__ == "__main__":
    unittest.main(verbosity=1)
