/**
 * Durations as written in configuration: Go-style "300ms", "30s", "5m", "1h", "1m30s". A bare number is refused
 * (is it seconds or milliseconds?) so that a typo cannot silently become a different timeout.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(trimmed)) return undefined;
  let total = 0;
  for (const [, num, , unit] of trimmed.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) total += Number(num) * UNIT_MS[unit];
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
