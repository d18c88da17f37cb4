import {
  type EncodedSubmitBatch,
  encodeSubmitBatches,
  type PackSubmitOptions,
  type TaskSpec,
} from "@zkgrid/protocol";
import { GridClosedError, SubmitWriteError } from "./errors.js";

/** Where a pipeline writes: the grid's queue, and the results directory it takes a baseline of. */
export interface QueueWriter {
  /** The sequence after which every result node is newer than a write made after this call. */
  resultBaseline(): Promise<number>;
  /** Writes one batch as one queue node (`data`: its encoding, made as it was packed). */
  writeBatch(batch: EncodedSubmitBatch): Promise<void>;
}

interface WaitingSubmit {
  tasks: readonly TaskSpec[];
  resolve: (baseline: number) => void;
  reject: (err: unknown) => void;
}

/**
 * Turns many small submits into few queue writes: whatever is waiting when the previous write returns
 * becomes the next round, packed into as few batches as the size limits allow. A lone task is written
 * at once (only submits made in the same tick join it).
 */
export class SubmitPipeline {
  readonly #writer: QueueWriter;
  readonly #packOptions: () => PackSubmitOptions;
  #waiting: WaitingSubmit[] = [];
  #flushing: Promise<void> | undefined;
  #closed = false;

  constructor(writer: QueueWriter, packOptions: () => PackSubmitOptions = () => ({})) {
    this.#writer = writer;
    this.#packOptions = packOptions;
  }

  /**
   * Queues already validated tasks for the next round; resolves with the result baseline taken
   * before they were written, once every one of them is in the queue.
   */
  push(tasks: readonly TaskSpec[]): Promise<number> {
    if (this.#closed) return Promise.reject(new GridClosedError());
    return new Promise((resolve, reject) => {
      this.#waiting.push({ tasks, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  /** Refuses what has not started writing yet and waits for the round in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const waiting of this.#waiting.splice(0)) waiting.reject(new GridClosedError());
    await this.#flushing;
  }

  async #flush(): Promise<void> {
    // One microtask, not a timer: submits made in the same tick share the first write.
    await Promise.resolve();
    while (this.#waiting.length > 0) {
      await this.#writeRound(this.#waiting.splice(0));
    }
    this.#flushing = undefined;
  }

  async #writeRound(round: WaitingSubmit[]): Promise<void> {
    const failAll = (err: unknown) => {
      for (const waiting of round) waiting.reject(err);
    };
    let batches: EncodedSubmitBatch[];
    let baselineRead: Promise<number>;
    try {
      batches = encodeSubmitBatches(
        round.flatMap((waiting) => waiting.tasks),
        this.#packOptions(),
      );
      // Not awaited before the first write: a session's requests are applied in the order sent, so
      // the baseline still reads R/results before the queue node exists.
      baselineRead = this.#writer.resultBaseline();
      baselineRead.catch(() => {});
    } catch (err) {
      failAll(err);
      return;
    }
    // One batch after another, so that queue order is submit order; after a failure the rest of
    // the round is not tried, and the round's first `writtenCount` tasks are the ones in the queue.
    let writtenCount = 0;
    let failure: { error: unknown } | undefined;
    for (const batch of batches) {
      try {
        await this.#writer.writeBatch(batch);
      } catch (error) {
        failure = { error };
        break;
      }
      writtenCount += batch.batch.tasks.length;
    }
    let baseline: number;
    try {
      baseline = await baselineRead;
    } catch (err) {
      failAll(err);
      return;
    }
    let position = 0;
    for (const waiting of round) {
      const start = position;
      position += waiting.tasks.length;
      if (failure === undefined || position <= writtenCount) {
        waiting.resolve(baseline);
        continue;
      }
      const ids = waiting.tasks.map((task) => task.id);
      const cut = Math.max(0, writtenCount - start);
      waiting.reject(new SubmitWriteError(ids.slice(0, cut), ids.slice(cut), failure.error));
    }
  }
}
