/** Telling parsed JSON apart: what the Docker API's and snapshots' answers are read with. Pure. */

/** A JSON object (not null, not a list): what the API's maps and records are. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
