import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { PassThrough, Writable } from 'node:stream';
import { stripVTControlCharacters } from 'node:util';
import { cliEnv, repoRoot, type CliOptions } from './run-cli.js';

/** What a terminal shows, and keystrokes typed once a question is on it. */
abstract class Screen {
  private text = '';
  private raw = '';
  private seen = 0;
  private waiters: Array<() => void> = [];

  protected abstract send(keys: string): void;

  protected append(chunk: string): void {
    this.raw += chunk;
    this.text += stripVTControlCharacters(chunk);
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Everything shown so far, without colours and cursor movements. */
  get screen(): string {
    return this.text;
  }

  /** Everything shown so far, escape sequences included. */
  get rawScreen(): string {
    return this.raw;
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
    await new Promise((resolve) => setTimeout(resolve, 50));
    this.send(`${keys}\r`);
  }
}

/**
 * A terminal for driving @inquirer prompts in-process: keystrokes go to `input`, everything the
 * prompts draw lands in `output`.
 */
export class TestTerminal extends Screen {
  readonly input = new PassThrough();
  readonly output: Writable;

  constructor() {
    super();
    this.output = new Writable({
      write: (chunk: Buffer | string, _encoding, done) => {
        this.append(chunk.toString());
        done();
      },
    });
    // Prompts size their output from the terminal: give them one.
    Object.assign(this.output, { columns: 200, rows: 50, isTTY: true });
    // Each prompt pipes into this stream and ends its pipe when done; a terminal outlives prompts.
    this.output.end = () => this.output;
  }

  protected send(keys: string): void {
    this.input.write(keys);
  }
}

/** Whether util-linux `script` is here to give a child a pseudo-terminal. */
export const hasPty = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

/** `authctl …args` on a pseudo-terminal (util-linux `script`), as an admin at a terminal runs it. */
export class PtyCli extends Screen {
  private readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;

  constructor(args: string[], options: Pick<CliOptions, 'databaseUrl' | 'env'> = {}) {
    super();
    const command = ['node', 'bin/run.js', ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    this.child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: repoRoot,
      env: { ...cliEnv(options), TERM: 'xterm-256color', PATH: `${process.execPath.replace(/\/node$/, '')}:${process.env.PATH ?? ''}` },
      stdio: 'pipe',
    });
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => this.append(chunk));
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => this.append(chunk));
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
  }

  protected send(keys: string): void {
    this.child.stdin.write(keys);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}
