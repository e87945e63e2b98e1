"""Fixtures made by the real tools, for test/interop_real.test.ts: ViTs built in tf_keras and
converted by tensorflowjs 4.22's Keras converter, and timm VisionTransformers saved with
safetensors. Random initialisation with fixed seeds; nothing is downloaded.

  interop_fixtures.py make OUT_DIR
      OUT_DIR/manifest.json lists every fixture. Keras: OUT_DIR/keras/<name>/model.json (+ shards)
      as written by tensorflowjs.converters.save_keras_model, input.bin (float32 [B, H, W, C])
      and expected.bin (float32, Keras' model.predict). timm: OUT_DIR/timm/<name>/model.safetensors
      (the model's state_dict, as timm checkpoints are saved), input.bin (float32 [B, H, W, C],
      channels last) and logits.bin (float32 [B, K], timm's forward).
  interop_fixtures.py check OUT_DIR NAME=EXPORTED.safetensors ...
      for each timm fixture NAME: rebuilds the same timm model, loads EXPORTED with
      load_state_dict(strict=True), runs the fixture's input and prints one JSON line
      {"name": ..., "maxRel": ...} comparing with the fixture's logits.
"""
import json
import os
import sys

import numpy as np

# timm models: (name, timm architecture, create_model kwargs, input batch).
TIMM_MODELS = [
    ('vit_tiny_patch16_224', 'vit_tiny_patch16_224', {}, 1),
    ('deit_tiny_patch16_224', 'deit_tiny_patch16_224', {}, 1),
    ('vit_small_patch16_224', 'vit_small_patch16_224', {}, 1),
    ('tiny_avg_nocls_32', 'vit_tiny_patch16_224',
     {'img_size': 32, 'patch_size': 4, 'class_token': False, 'global_pool': 'avg', 'num_classes': 10}, 2),
    ('tiny_32_p4', 'vit_tiny_patch16_224', {'img_size': 32, 'patch_size': 4, 'num_classes': 10}, 2),
    # Refused by the converter (each with its own error):
    ('tiny_reg4_32', 'vit_tiny_patch16_224', {'img_size': 32, 'patch_size': 4, 'reg_tokens': 4, 'num_classes': 10}, 1),
    ('tiny_no_embed_class_32', 'vit_tiny_patch16_224',
     {'img_size': 32, 'patch_size': 4, 'no_embed_class': True, 'num_classes': 10}, 1),
    ('tiny_cls_avg_32', 'vit_tiny_patch16_224',
     {'img_size': 32, 'patch_size': 4, 'global_pool': 'avg', 'num_classes': 10}, 1),
]

# Keras ViTs: name -> layout.
KERAS_MODELS = {
    'keras_token_s': dict(pool='token', image=16, patch=4, dim=32, heads=4, depth=2, classes=5, eps=1e-6),
    'keras_gap_m': dict(pool='gap', image=24, patch=8, dim=48, heads=3, depth=3, classes=7, eps=1e-3),
    # Refused by the loader:
    'keras_causal_mask': dict(pool='gap', image=16, patch=4, dim=32, heads=4, depth=1, classes=5, eps=1e-6,
                              call_kwargs={'use_causal_mask': True}),
    'keras_dot_attention': dict(pool='gap', image=16, patch=4, dim=32, heads=4, depth=1, classes=5, eps=1e-6,
                                attention='dot'),
    'keras_custom_layer': dict(pool='gap', image=16, patch=4, dim=32, heads=4, depth=1, classes=5, eps=1e-6,
                               custom='TokenScale'),
}


def write_f32(path, a):
    np.ascontiguousarray(a, dtype='<f4').tofile(path)


# ----------------------------------------------------------------------------- timm

def timm_model(arch, kwargs, seed):
    import timm
    import torch
    torch.manual_seed(seed)
    m = timm.create_model(arch, pretrained=False, **kwargs).eval()
    # timm initialises LayerNorms to (1, 0) and biases to 0: randomise them too, so that every
    # tensor's layout is exercised.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
            if name in ('cls_token', 'reg_token', 'pos_embed'):
                p.copy_(torch.randn_like(p) * 0.2)
    return m


def make_timm(out, manifest):
    import timm
    import torch
    from safetensors.torch import save_file
    for i, (name, arch, kwargs, batch) in enumerate(TIMM_MODELS):
        d = os.path.join(out, 'timm', name)
        os.makedirs(d, exist_ok=True)
        m = timm_model(arch, kwargs, 100 + i)
        save_file({k: v.contiguous() for k, v in m.state_dict().items()}, os.path.join(d, 'model.safetensors'))
        H, W = m.patch_embed.img_size
        g = torch.Generator().manual_seed(200 + i)
        x = torch.randn(batch, 3, H, W, generator=g)
        with torch.no_grad():
            logits = m(x)
        write_f32(os.path.join(d, 'input.bin'), x.permute(0, 2, 3, 1).numpy())
        write_f32(os.path.join(d, 'logits.bin'), logits.numpy())
        manifest['timm'].append({
            'name': name, 'arch': arch, 'kwargs': kwargs, 'dir': d, 'batch': batch,
            'imageSize': [H, W], 'heads': m.blocks[0].attn.num_heads, 'numClasses': m.num_classes,
            'globalPool': m.global_pool, 'timm': timm.__version__,
        })


def check_timm(out, pairs):
    import torch
    from safetensors.torch import load_file
    manifest = json.load(open(os.path.join(out, 'manifest.json')))
    by_name = {e['name']: e for e in manifest['timm']}
    for pair in pairs:
        name, path = pair.split('=', 1)
        e = by_name[name]
        i = [n for n, *_ in TIMM_MODELS].index(name)
        m = timm_model(e['arch'], e['kwargs'], 999)  # other random weights: all must be replaced
        sd = load_file(path)
        m.load_state_dict(sd, strict=True)
        H, W = e['imageSize']
        x = np.fromfile(os.path.join(e['dir'], 'input.bin'), dtype='<f4').reshape(e['batch'], H, W, 3)
        with torch.no_grad():
            got = m(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy()
        want = np.fromfile(os.path.join(e['dir'], 'logits.bin'), dtype='<f4').reshape(got.shape)
        rel = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-12))
        print(json.dumps({'name': name, 'maxRel': rel, 'index': i}), flush=True)


# ----------------------------------------------------------------------------- Keras

def keras_layers():
    import tensorflow as tf
    import tf_keras

    class ClassToken(tf_keras.layers.Layer):
        """Prepends a learned token (weight `token` [1, 1, D]), as models.vit's ClassToken."""

        def build(self, input_shape):
            self.token = self.add_weight(name='token', shape=(1, 1, input_shape[-1]),
                                         initializer=tf_keras.initializers.RandomNormal(stddev=0.2))

        def call(self, x):
            b = tf.shape(x)[0]
            return tf.concat([tf.tile(self.token, [b, 1, 1]), x], axis=1)

    class LearnedPositionEmbedding(tf_keras.layers.Layer):
        """Adds a learned embedding (weight `embedding` [1, N, D]), as models.vit's."""

        def build(self, input_shape):
            self.embedding = self.add_weight(name='embedding', shape=(1, input_shape[1], input_shape[2]),
                                             initializer=tf_keras.initializers.RandomNormal(stddev=0.2))

        def call(self, x):
            return x + self.embedding

    class SelectToken(tf_keras.layers.Layer):
        """Takes token `index` ([B, N, D] -> [B, D]), as models.vit's SelectToken."""

        def __init__(self, index=0, **kwargs):
            super().__init__(**kwargs)
            self.index = index

        def call(self, x):
            return x[:, self.index]

        def get_config(self):
            return {**super().get_config(), 'index': self.index}

    class TokenScale(tf_keras.layers.Layer):
        """A custom layer that tfjs knows nothing about."""

        def build(self, input_shape):
            self.scale = self.add_weight(name='scale', shape=(input_shape[-1],), initializer='ones')

        def call(self, x):
            return x * self.scale

    return ClassToken, LearnedPositionEmbedding, SelectToken, TokenScale


def keras_vit(name, c, seed):
    import tensorflow as tf
    import tf_keras
    from tf_keras import layers
    ClassToken, LearnedPositionEmbedding, SelectToken, TokenScale = keras_layers()
    tf_keras.utils.set_random_seed(seed)
    g = c['image'] // c['patch']
    inp = layers.Input((c['image'], c['image'], 3), name='image')
    x = layers.Conv2D(c['dim'], c['patch'], strides=c['patch'], name='patch_embed')(inp)
    x = layers.Reshape((g * g, c['dim']), name='tokens')(x)
    if c['pool'] == 'token':
        x = ClassToken(name='cls_token')(x)
    x = LearnedPositionEmbedding(name='pos_embed')(x)
    if c.get('custom') == 'TokenScale':
        x = TokenScale(name='token_scale')(x)
    for i in range(c['depth']):
        h = layers.LayerNormalization(epsilon=c['eps'], name=f'ln1_{i}')(x)
        if c.get('attention') == 'dot':
            h = layers.Attention(name=f'dot_attn_{i}')([h, h])
        else:
            h = layers.MultiHeadAttention(c['heads'], c['dim'] // c['heads'], name=f'mha_{i}')(
                h, h, **c.get('call_kwargs', {}))
        x = layers.Add(name=f'add1_{i}')([x, h])
        h = layers.LayerNormalization(epsilon=c['eps'], name=f'ln2_{i}')(x)
        h = layers.Dense(2 * c['dim'], activation='gelu', name=f'mlp1_{i}')(h)
        h = layers.Dense(c['dim'], name=f'mlp2_{i}')(h)
        x = layers.Add(name=f'add2_{i}')([x, h])
    x = layers.LayerNormalization(epsilon=c['eps'], name='norm')(x)
    if c['pool'] == 'token':
        x = SelectToken(0, name='take_cls')(x)
    else:
        x = layers.GlobalAveragePooling1D(name='gap')(x)
    out = layers.Dense(c['classes'], activation='softmax', name='head')(x)
    model = tf_keras.Model(inp, out, name=name)
    # Keras initialises LayerNorm to (1, 0) and biases to 0: randomise every weight.
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def make_keras(out, manifest):
    import tensorflow as tf
    from tensorflowjs.converters import save_keras_model
    import tensorflowjs
    for i, (name, c) in enumerate(KERAS_MODELS.items()):
        d = os.path.join(out, 'keras', name)
        os.makedirs(d, exist_ok=True)
        model = keras_vit(name, c, 300 + i)
        x = np.random.default_rng(400 + i).normal(size=(2, c['image'], c['image'], 3)).astype('float32')
        y = model.predict(x, verbose=0)
        save_keras_model(model, d)
        write_f32(os.path.join(d, 'input.bin'), x)
        write_f32(os.path.join(d, 'expected.bin'), y)
        manifest['keras'].append({'name': name, 'dir': d, 'batch': 2, 'imageSize': c['image'],
                                  'numClasses': c['classes'], 'config': c,
                                  'tensorflowjs': tensorflowjs.__version__, 'tensorflow': tf.__version__})


def main():
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == 'make':
        manifest = {'timm': [], 'keras': []}
        make_timm(out, manifest)
        make_keras(out, manifest)
        with open(os.path.join(out, 'manifest.json'), 'w') as f:
            json.dump(manifest, f, indent=1)
        print('ok')
    elif cmd == 'check':
        check_timm(out, sys.argv[3:])
    else:
        raise SystemExit(f'unknown command {cmd}')


if __name__ == '__main__':
    main()
