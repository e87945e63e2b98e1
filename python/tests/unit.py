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
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "data", "cifar10-subset.kds"), "rb") as f:
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


class Logging(unittest.TestCase):
    def test_csv_numbers_as_javascript_toPrecision(self):
        cases = {0.00181857: "0.00181857", 2.996744: "2.99674", 0.2: "0.200000", 1e-7: "1.00000e-7",
                 123456.7: "123457", 1234567.8: "1.23457e+6", 3.0: "3", True: "true", 12: "12", 79.74264: "79.7426"}
        for v, want in cases.items():
            self.assertEqual(T._js_number(v), want, v)


if __name__ == "__main__":
    unittest.main(verbosity=1)
