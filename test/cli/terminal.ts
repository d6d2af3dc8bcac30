import { PassThrough, Writable } from 'node:stream';
import { stripVTControlCharacters } from 'node:util';

/**
 * A terminal for driving @inquirer prompts in-process: keystrokes go to `input`, everything the
 * prompts draw lands in `output`. `answer` waits until a question is on screen, then types.
 */
export class TestTerminal {
  readonly input = new PassThrough();
  readonly output: Writable;
  private text = '';
  private seen = 0;
  private waiters: Array<() => void> = [];

  constructor() {
    this.output = new Writable({
      write: (chunk: Buffer | string, _encoding, done) => {
        this.text += stripVTControlCharacters(chunk.toString());
        for (const wake of this.waiters.splice(0)) wake();
        done();
      },
    });
    // Prompts size their output from the terminal: give them one.
    Object.assign(this.output, { columns: 200, rows: 50, isTTY: true });
    // Each prompt pipes into this stream and ends its pipe when done; a terminal outlives prompts.
    this.output.end = () => this.output;
  }

  /** Everything shown so far, without colours and cursor movements. */
  get screen(): string {
    return this.text;
  }

  /** Resolves once `pattern` appears in output not yet consumed; consumes up to the match's end. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rest = this.text.slice(this.seen);
      const match = pattern.exec(rest);
      if (match) {
        this.seen += match.index + match[0].length;
        return match[0];
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${String(pattern)}; screen since last answer:\n${rest}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for the question, then types `keys` and Enter. */
  async answer(question: RegExp, keys: string): Promise<void> {
    await this.waitFor(question);
    // Let the prompt finish drawing and start listening before typing.
    await new Promise((resolve) => setImmediate(resolve));
    this.input.write(`${keys}\r`);
  }
}
