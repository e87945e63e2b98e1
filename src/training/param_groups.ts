/**
 * Which weights the optimiser trains, and with which learning-rate multiplier and weight
 * decay: the fine-tuning controls `freeze`, `layerDecay` and `newParamLr` on top of the base
 * rule of model.ts (no decay on biases, norms, embeddings, KArAt coefficients; `karatLr`).
 *
 * - freeze: a comma-separated list of items; a weight matching any item is not trained (it
 *   stays bit-identical and gets no optimiser state). Items:
 *     all-but-<sel>[-and-<sel>...]   everything except the selections, from
 *                                    karat (KArAt operator weights), head (the output layer),
 *                                    new (weights newly created for fine-tuning), norm
 *                                    (normalisation layers), attention (attention layers)
 *     a glob over weight names       '*' any run of characters, '?' one, e.g. 'block0_*'
 *     /regex/                        a JavaScript regular expression over weight names (when
 *                                    it contains a comma it must be the only item)
 *   An item that matches no weight is an error, as is freezing every weight.
 * - layerDecay d < 1 (timm / BEiT layer-wise decay): with depth L encoder blocks, block i
 *   trains at d^(L-i) times the rate, layers before the first block (patch/position
 *   embeddings, class token) at d^(L+1), layers after the last block (final norm, head) at 1.
 *   Block indices come from layer names: `block<i>_...` (models.vit), `blocks.<i>.` (timm),
 *   `..._<i>` (Keras-style names such as `mha_3`).
 * - newParamLr > 0: weights newly created for fine-tuning (KArAt operators swapped in, a new
 *   head) train at exactly this learning rate (schedule-scaled like every rate; no layer
 *   decay, no karatLr). Otherwise they follow the same rules as every other weight.
 */
import type * as tfl from '@tensorflow/tfjs-layers';

import {ParamGroupRule} from './adamw';
import {ConfigError, TrainConfig} from './config';
import {paramRule} from './model';

export interface ParamPlanEntry {
  name: string;
  /** The layer that owns the weight (prefix of its name up to the first '/'). */
  layer: string;
  frozen: boolean;
  /** Newly created for fine-tuning. */
  isNew: boolean;
  /** Layer id for layer decay: 0 before the blocks, i+1 for block i, depth+1 after. */
  layerId: number;
  rule: ParamGroupRule;
}

const SELECTIONS = ['karat', 'head', 'new', 'norm', 'attention'] as const;
type Selection = typeof SELECTIONS[number];

/** Facts about the model that the selections need. */
export interface ModelFacts {
  /** Weight name -> owning layer name and layer class. */
  weights: Array<{name: string, layer: string, layerClass: string}>;
  /** Layer names in topological order. */
  layerOrder: string[];
  /** The output layer(s). */
  outputLayers: string[];
}

export function modelFacts(model: tfl.LayersModel, names: string[]): ModelFacts {
  const classOf = new Map(model.layers.map((l) => [l.name, l.getClassName()]));
  return {
    weights: names.map((n) => {
      const layer = layerOfWeight(n);
      return {name: n, layer, layerClass: classOf.get(layer) ?? ''};
    }),
    layerOrder: model.layers.map((l) => l.name),
    outputLayers: model.outputLayers.map((l) => l.name),
  };
}

export function layerOfWeight(name: string): string {
  const i = name.indexOf('/');
  return i < 0 ? name : name.slice(0, i);
}

/** Encoder block index of a layer from its name, or null. */
export function blockIndexOf(layer: string): number | null {
  const m = /(?:^|_)block(\d+)(?:_|$)/.exec(layer) ?? /^blocks\.(\d+)(?:\.|$)/.exec(layer) ?? /_(\d+)$/.exec(layer);
  return m ? Number(m[1]) : null;
}

function globToRegExp(glob: string): RegExp {
  const esc = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${esc}$`);
}

/** Parses --freeze into predicates over weights; throws ConfigError on a malformed item. */
function freezeItems(spec: string): Array<{item: string, sels?: Selection[], test: (w: {name: string, layer: string, layerClass: string}, isNew: boolean, facts: ModelFacts) => boolean}> {
  const s = spec.trim();
  const raw = s.startsWith('/') && s.endsWith('/') && s.length > 1 ? [s] : s.split(',').map((x) => x.trim()).filter((x) => x);
  if (raw.length === 0) throw new ConfigError(`'freeze' is empty`);
  return raw.map((item) => {
    if (item.startsWith('all-but-')) {
      const sels = item.slice('all-but-'.length).split('-and-');
      for (const sel of sels) {
        if (!(SELECTIONS as readonly string[]).includes(sel)) {
          throw new ConfigError(`'freeze': unknown selection '${sel}' in '${item}'; expected all-but-<${SELECTIONS.join('|')}>[-and-...]`);
        }
      }
      return {item, sels: sels as Selection[], test: (w, isNew, facts) => !sels.some((sel) => selects(sel as Selection, w, isNew, facts))};
    }
    if (item.startsWith('/')) {
      if (!item.endsWith('/') || item.length < 3) throw new ConfigError(`'freeze': '${item}' is not a /regex/`);
      let re: RegExp;
      try {
        re = new RegExp(item.slice(1, -1));
      } catch (e) {
        throw new ConfigError(`'freeze': '${item}' is not a valid regular expression (${(e as Error).message})`);
      }
      return {item, test: (w) => re.test(w.name)};
    }
    const re = globToRegExp(item);
    return {item, test: (w) => re.test(w.name)};
  });
}

function selects(sel: Selection, w: {name: string, layer: string, layerClass: string}, isNew: boolean, facts: ModelFacts): boolean {
  switch (sel) {
    case 'karat': return /(^|\/)karat\//.test(w.name);
    case 'head': return facts.outputLayers.includes(w.layer);
    case 'new': return isNew;
    case 'norm': return /Normalization$/.test(w.layerClass);
    case 'attention': return /MultiHeadAttention$/.test(w.layerClass);
  }
}

/**
 * The optimiser's view of the trainable weights `names` (with ranks) of a model: frozen or
 * not, learning-rate multiplier and decay. `newParams` names the weights created for
 * fine-tuning (null outside fine-tuning: 'new' selections and newParamLr are then errors).
 */
export function parameterPlan(facts: ModelFacts, ranks: Map<string, number>, cfg: TrainConfig, newParams: string[] | null): ParamPlanEntry[] {
  const isNewSet = new Set(newParams ?? []);
  if (newParams == null && cfg.newParamLr > 0) {
    throw new ConfigError(`'new-param-lr' applies to fine-tuning (karat finetune), where some weights are new; in karat train every weight is`);
  }
  if (!(cfg.layerDecay > 0 && cfg.layerDecay <= 1)) throw new ConfigError(`'layer-decay' must be in (0, 1], got ${cfg.layerDecay}`);
  const items = cfg.freeze ? freezeItems(cfg.freeze) : [];
  if (newParams == null && items.some((it) => /^all-but-.*\bnew\b/.test(it.item))) {
    throw new ConfigError(`'freeze': the selection 'new' applies to fine-tuning (karat finetune) only`);
  }

  // layer ids for layer decay
  const blockOf = new Map<string, number | null>(facts.layerOrder.map((l) => [l, blockIndexOf(l)]));
  const indices = [...blockOf.values()].filter((b): b is number => b != null);
  const depth = indices.length ? Math.max(...indices) + 1 : 0;
  const firstBlockPos = facts.layerOrder.findIndex((l) => blockOf.get(l) != null);
  if (cfg.layerDecay < 1 && depth === 0) {
    throw new ConfigError(`'layer-decay': found no encoder blocks in the model (layer names like block<i>_..., blocks.<i>., or ..._<i>)`);
  }
  const layerId = (layer: string): number => {
    const b = blockOf.get(layer);
    if (b != null) return b + 1;
    const pos = facts.layerOrder.indexOf(layer);
    return pos >= 0 && pos < firstBlockPos ? 0 : depth + 1;
  };

  const hits = new Array<number>(items.length).fill(0);
  const out = facts.weights.map((w) => {
    const isNew = isNewSet.has(w.name);
    let frozen = false;
    items.forEach((it, i) => {
      if (it.test(w, isNew, facts)) {
        hits[i]++;
        frozen = true;
      }
    });
    const base = paramRule(w.name, ranks.get(w.name) ?? 2, cfg);
    const id = layerId(w.layer);
    let lrScale = base.lrScale * Math.pow(cfg.layerDecay, depth + 1 - id);
    let group = base.group;
    if (isNew && cfg.newParamLr > 0) {
      lrScale = cfg.newParamLr / cfg.lr;
      group = `new_${group}`;
    } else if (cfg.layerDecay < 1) {
      group = `${group}_layer${id}`;
    }
    return {name: w.name, layer: w.layer, frozen, isNew, layerId: id, rule: {decay: base.decay, lrScale, group}};
  });
  items.forEach((it, i) => {
    if (it.sels) {
      for (const sel of it.sels) {
        if (!facts.weights.some((w) => selects(sel, w, isNewSet.has(w.name), facts))) {
          throw new ConfigError(`'freeze': the selection '${sel}' in '${it.item}' matches no weight of the model`);
        }
      }
    } else if (hits[i] === 0) {
      throw new ConfigError(`'freeze': '${it.item}' matches no weight of the model`);
    }
  });
  if (out.length && out.every((e) => e.frozen)) throw new ConfigError(`'freeze' ${JSON.stringify(cfg.freeze)} freezes every weight; nothing would train`);
  for (const n of isNewSet) {
    if (!facts.weights.some((w) => w.name === n)) throw new ConfigError(`new parameter '${n}' is not a trainable weight of the model`);
  }
  return out;
}
