/** Learning-rate schedule: linear warm-up, then cosine decay to a floor (per optimiser step). */

export interface ScheduleConfig {
  baseLr: number;
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** Learning rate at step 0 of the warm-up (DeiT: warmup_lr). */
  warmupStartLr: number;
}

/** Learning rate for 0-based optimiser step `step`. */
export function learningRate(c: ScheduleConfig, step: number): number {
  if (step < c.warmupSteps) {
    return c.warmupStartLr + (c.baseLr - c.warmupStartLr) * (step / Math.max(1, c.warmupSteps));
  }
  const decay = Math.max(1, c.totalSteps - c.warmupSteps);
  const t = Math.min(1, (step - c.warmupSteps) / decay);
  return c.minLr + 0.5 * (c.baseLr - c.minLr) * (1 + Math.cos(Math.PI * t));
}
