/**
 * Selections of a model's weights for freezing ('all-but-karat-and-head', globs, /regex/) and
 * the weight-decay rule, shared by the trainer (param_groups.ts, with its TrainConfig) and the
 * browser-safe fine-tuning loop (finetune_loop.ts). Nothing here imports a Node built-in.
 *
 * A freeze spec is a comma-separated list of items; a weight matching any item is not trained:
 *   all-but-<sel>[-and-<sel>...]   everything except the selections, from karat (KArAt operator
 *                                  weights), head (the output layer), new (weights newly created
 *                                  for fine-tuning), norm (normalisation layers), attention
 *   a glob over weight names       '*' any run of characters, '?' one, e.g. 'block0_*'
 *   /regex/                        a JavaScript regular expression over weight names (when it
 *                                  contains a comma it must be the only item)
 */
import type * as tfl from '@tensorflow/tfjs-layers';

export const SELECTIONS = ['karat', 'head', 'new', 'norm', 'attention'] as const;
export type Selection = typeof SELECTIONS[number];

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

/** One item of a freeze spec: a weight it tests true for is frozen. */
export interface FreezeItem {
  item: string;
  sels?: Selection[];
  test: (w: {name: string, layer: string, layerClass: string}, isNew: boolean, facts: ModelFacts) => boolean;
}

/** Parses a freeze spec into predicates over weights; throws `error(message)` on a malformed item. */
export function freezeItems(spec: string, error: (message: string) => Error): FreezeItem[] {
  const s = spec.trim();
  const raw = s.startsWith('/') && s.endsWith('/') && s.length > 1 ? [s] : s.split(',').map((x) => x.trim()).filter((x) => x);
  if (raw.length === 0) throw error(`'freeze' is empty`);
  return raw.map((item) => {
    if (item.startsWith('all-but-')) {
      const sels = item.slice('all-but-'.length).split('-and-');
      for (const sel of sels) {
        if (!(SELECTIONS as readonly string[]).includes(sel)) {
          throw error(`'freeze': unknown selection '${sel}' in '${item}'; expected all-but-<${SELECTIONS.join('|')}>[-and-...]`);
        }
      }
      return {item, sels: sels as Selection[], test: (w, isNew, facts) => !sels.some((sel) => selects(sel as Selection, w, isNew, facts))};
    }
    if (item.startsWith('/')) {
      if (!item.endsWith('/') || item.length < 3) throw error(`'freeze': '${item}' is not a /regex/`);
      let re: RegExp;
      try {
        re = new RegExp(item.slice(1, -1));
      } catch (e) {
        throw error(`'freeze': '${item}' is not a valid regular expression (${(e as Error).message})`);
      }
      return {item, test: (w) => re.test(w.name)};
    }
    const re = globToRegExp(item);
    return {item, test: (w) => re.test(w.name)};
  });
}

export function selects(sel: Selection, w: {name: string, layer: string, layerClass: string}, isNew: boolean, facts: ModelFacts): boolean {
  switch (sel) {
    case 'karat': return /(^|\/)karat\//.test(w.name);
    case 'head': return facts.outputLayers.includes(w.layer);
    case 'new': return isNew;
    case 'norm': return /Normalization$/.test(w.layerClass);
    case 'attention': return /MultiHeadAttention$/.test(w.layerClass);
  }
}

/** Whether weight decay applies to a weight: not to biases, norms, embeddings, tokens or KArAt coefficients (rank <= 1 never). */
export function decayApplies(name: string, rank: number): boolean {
  return !(rank <= 1 || /(bias|gamma|beta|norm|token|pos_embed|embedding)/i.test(name));
}

/** Whether a weight belongs to a KArAt operator. */
export function isKArAtWeight(name: string): boolean {
  return /(^|\/)karat\//.test(name);
}
