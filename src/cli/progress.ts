/**
 * A one-line progress report redrawn in place on a terminal (`\r`), at most every 100 ms, e.g.
 * `Exporting users: 120,000 of ~1,000,000 (48,210/s)`. Nothing at all when the stream is not a
 * terminal: a pipe or a log file gets no control characters and no noise, only the command's
 * final summary.
 */
export class ProgressLine {
  private readonly started = performance.now();
  private lastDrawn = 0;
  private width = 0;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  get enabled(): boolean {
    return Boolean(this.stream.isTTY);
  }

  update(done: number): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (now - this.lastDrawn < 100) return;
    this.lastDrawn = now;
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? Math.round(done / seconds) : 0;
    const of = this.total === undefined ? '' : ` of ~${this.total.toLocaleString('en-US')}`;
    const line = `${this.label}: ${done.toLocaleString('en-US')}${of} (${rate.toLocaleString('en-US')}/s)`;
    this.stream.write(`\r${line.padEnd(this.width)}`);
    this.width = line.length;
  }

  /** Clears the line, so what follows starts on a clean one. */
  end(): void {
    if (!this.enabled || this.width === 0) return;
    this.stream.write(`\r${' '.repeat(this.width)}\r`);
    this.width = 0;
  }
}
