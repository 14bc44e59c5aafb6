/** Where a command reads and writes; the CLI entry binds it to the process, tests to buffers. */
export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** True when standard input and output are a terminal (prompts). */
  readonly interactive: boolean;
  /** Asks a question on the terminal; only called when `interactive`. */
  readonly ask: (question: string) => Promise<string>;
  /**
   * Standard input (`-f -`, `moat apply -`), at most `maxBytes` + 1 bytes of it: a caller that
   * gets more than `maxBytes` knows the input was too large without reading all of it.
   */
  readonly readStdin: (maxBytes: number) => Promise<Buffer>;
}
