/**
 * Small statistics for benchmark samples: percentiles (nearest rank on a sorted copy), medians of per-round
 * figures, and the number formats the results table uses.
 */

export function percentile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

export function median(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return NaN;
  const sorted = [...finite].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export interface Spread {
  p50: number;
  p90: number;
  p99: number;
}

export function spread(samples: readonly number[]): Spread {
  return { p50: percentile(samples, 0.5), p90: percentile(samples, 0.9), p99: percentile(samples, 0.99) };
}

/** The median, over rounds, of each round's percentiles: robust to a noisy neighbour stealing one round. */
export function medianSpread(rounds: readonly (readonly number[])[]): Spread {
  const per = rounds.filter((r) => r.length > 0).map(spread);
  return { p50: median(per.map((s) => s.p50)), p90: median(per.map((s) => s.p90)), p99: median(per.map((s) => s.p99)) };
}

/** "1.23 ms" with sensible precision; "–" for a missing value. */
export function ms(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "–";
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ms`;
}

/** "+1.23 ms" (a difference). */
export function plusMs(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "–";
  return `${value >= 0 ? "+" : "−"}${ms(Math.abs(value))}`;
}

export function num(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return "–";
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ratio(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "–";
  return `${value.toFixed(2)}×`;
}

export function mb(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return "–";
  return `${(bytes / 1024 / 1024).toFixed(0)} MB`;
}
