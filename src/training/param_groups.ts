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
import {ParamGroupRule} from './adamw';
import {ConfigError, TrainConfig} from './config';
import {paramRule} from './model';
import {blockIndexOf, freezeItems, ModelFacts, selects} from './select';

export {blockIndexOf, layerOfWeight, modelFacts} from './select';
export type {ModelFacts} from './select';

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
  const items = cfg.freeze ? freezeItems(cfg.freeze, (m) => new ConfigError(m)) : [];
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
