/** Small pieces of English that messages share. */

/** `1 step`, `2 steps`; `plural(1, 'entry', 'entries')` for irregular words. */
export function plural(count: number, word: string, many = `${word}s`): string {
  return `${count} ${count === 1 ? word : many}`;
}
