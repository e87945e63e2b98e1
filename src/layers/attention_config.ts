/**
 * The `attentionActivation` argument of KArAtMultiHeadAttention (and the `attention` argument
 * of models.vit): 'softmax', or a KArAt operator configuration plus the sharing mode.
 */
import {BASE_ACTIVATIONS, BASIS_NAMES, KArAtOperatorConfig, resolveOperatorConfig, ResolvedOperatorConfig} from '../bases/index';
import {KArAtArgumentError} from '../../core/validate';

export const KARAT_MODES = ['blockwise', 'universal'] as const;
export type KArAtMode = typeof KARAT_MODES[number];

/** User-facing KArAt attention configuration: operator fields plus layer-level fields. */
export interface KArAtAttentionConfig extends KArAtOperatorConfig {
  /**
   * Shorthand for the basis ('fourier' = Fourier-KArAt); 'karat' means "use `basis`".
   * When both `type` and `basis` are given they must agree.
   */
  type?: string;
  /**
   * 'blockwise' (default): every attention layer owns its operator (h operators per layer).
   * 'universal': all attention layers of a model with the same `shareName` use ONE operator
   * set (h operators in total), held by the first of them.
   */
  mode?: KArAtMode;
  /** Group name for universal sharing (default 'universal'). */
  shareName?: string;
}

export type AttentionActivation = 'softmax' | KArAtAttentionConfig;

/** A validated attention activation. */
export type ResolvedAttention =
    {kind: 'softmax'} |
    {kind: 'karat', operator: ResolvedOperatorConfig, mode: KArAtMode, shareName: string};

const DEFAULT_SHARE_NAME = 'universal';

/** Key for forgiving enum matching: tfjs turns snake_case strings into camelCase on load. */
function enumKey(s: string): string {
  return s.replace(/[_\-\s]/g, '').toLowerCase();
}

/** Matches `value` to one of `allowed`, accepting camelCase/snake_case spellings. */
export function matchEnum<T extends string>(value: unknown, allowed: readonly T[]): T | null {
  if (typeof value !== 'string') return null;
  const k = enumKey(value);
  return allowed.find(a => enumKey(a) === k) ?? null;
}

/**
 * Validates an attention activation. Errors name `argName` and the field.
 * Accepts the snake/camel spellings that a tfjs save/load round trip produces.
 */
export function resolveAttention(
    act: AttentionActivation | ResolvedAttention | undefined | null,
    argName = 'attentionActivation'): ResolvedAttention {
  if (act == null || act === 'softmax') return {kind: 'softmax'};
  if (typeof act === 'string') {
    if (matchEnum(act, ['softmax'] as const)) return {kind: 'softmax'};
    if (matchEnum(act, BASIS_NAMES) != null) {
      return resolveAttention({basis: matchEnum(act, BASIS_NAMES)!}, argName);
    }
    throw new KArAtArgumentError(
        `${argName} must be 'softmax' or a KArAt config object {basis, grid, rank, ` +
        `baseActivation, mode, init}, got ${JSON.stringify(act)}`);
  }
  if (typeof act !== 'object' || Array.isArray(act)) {
    throw new KArAtArgumentError(
        `${argName} must be 'softmax' or a KArAt config object, got ${JSON.stringify(act)}`);
  }
  if ('kind' in act) {
    const r = act as ResolvedAttention;
    if (r.kind === 'softmax') return r;
    const {seed, ...op} = r.operator;
    return resolveAttention(
        {...op, ...(seed == null ? {} : {seed}), mode: r.mode, shareName: r.shareName}, argName);
  }
  const {type, mode, shareName, ...rest} = act as KArAtAttentionConfig;
  const op: KArAtOperatorConfig = {...rest};
  if (op.basis != null) {
    const b = matchEnum(op.basis, BASIS_NAMES);
    if (b == null) {
      throw new KArAtArgumentError(
          `${argName}.basis must be one of ${BASIS_NAMES.join(', ')}, got ${JSON.stringify(op.basis)}`);
    }
    op.basis = b;
  }
  if (type != null) {
    if (matchEnum(type, ['softmax'] as const)) return {kind: 'softmax'};
    const t = matchEnum(type, [...BASIS_NAMES, 'karat'] as const);
    if (t == null) {
      throw new KArAtArgumentError(
          `${argName}.type must be 'softmax', 'karat' or a basis (${BASIS_NAMES.join(', ')}), ` +
          `got ${JSON.stringify(type)}`);
    }
    if (t !== 'karat') {
      if (op.basis != null && op.basis !== t) {
        throw new KArAtArgumentError(
            `${argName}.type '${t}' contradicts ${argName}.basis '${op.basis}'`);
      }
      op.basis = t;
    }
  }
  if (op.baseActivation != null) {
    const b = matchEnum(op.baseActivation, BASE_ACTIVATIONS);
    if (b != null) op.baseActivation = b;
  }
  if (op.init != null) op.init = matchEnum(op.init, ['scaled', 'normal'] as const) ?? op.init;
  if (op.projInit != null) op.projInit = matchEnum(op.projInit, ['normal', 'glorot'] as const) ?? op.projInit;
  if (typeof op.rank === 'string') op.rank = matchEnum(op.rank, ['full'] as const) ?? op.rank;
  const operator = resolveOperatorConfig(op, argName);
  let m: KArAtMode = 'blockwise';
  if (mode != null) {
    const mm = matchEnum(mode, KARAT_MODES);
    if (mm == null) {
      throw new KArAtArgumentError(
          `${argName}.mode must be one of ${KARAT_MODES.join(', ')}, got ${JSON.stringify(mode)}`);
    }
    m = mm;
  }
  if (shareName != null && (typeof shareName !== 'string' || shareName.length === 0)) {
    throw new KArAtArgumentError(
        `${argName}.shareName must be a non-empty string, got ${JSON.stringify(shareName)}`);
  }
  return {kind: 'karat', operator, mode: m, shareName: shareName ?? DEFAULT_SHARE_NAME};
}

/** The JSON form stored in layer configs ('softmax' or the full operator config + mode). */
export function serializeAttention(a: ResolvedAttention): AttentionActivation {
  if (a.kind === 'softmax') return 'softmax';
  return {...a.operator, mode: a.mode, shareName: a.shareName} as unknown as KArAtAttentionConfig;
}
