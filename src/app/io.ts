/** Where a command writes; the CLI entry binds it to the process, tests to buffers. */
export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** True when standard output is a terminal (colour, prompts). */
  readonly interactive: boolean;
  /** Asks a question on the terminal; only called when `interactive`. */
  readonly ask: (question: string) => Promise<string>;
}
