/** How long a buffered job runs before its start is written. */
const START_RECORD_DELAY_MS = 50;

/**
 * Records that buffered jobs started (MarkStarted): until then a rescue (the
 * worker died) gives such a job the attempt it was charged at claim back,
 * once. Handlers do not wait for it; starts are gathered for
 * START_RECORD_DELAY_MS and written in one statement, and a job that
 * finished within that time is never written here (its outcome shows it
 * ran), so short jobs cost no extra statement.
 */
export class StartRecorder {
  private ids: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;

  constructor(
    /** Writes the starts of these jobs. */
    private readonly write: (ids: string[]) => Promise<unknown>,
    /** Whether the job still runs unsettled (else its start need not be written). */
    private readonly stillRunning: (id: string) => boolean,
    private readonly onError: (error: unknown) => void,
  ) {}

  record(id: string): void {
    this.ids.push(id);
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const ids = this.ids.filter(this.stillRunning);
      this.ids = [];
      if (ids.length === 0) return;
      const previous = this.writing ?? Promise.resolve();
      this.writing = previous
        .then(() => this.write(ids))
        .then(
          () => {},
          // Not fatal: at worst a rescue gives these jobs an attempt back once.
          this.onError,
        );
    }, START_RECORD_DELAY_MS);
    this.timer.unref();
  }

  /** Drops the starts not yet written and returns the write in flight, if any. */
  stop(): Promise<void> | null {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    return this.writing;
  }
}
