/**
 * Items ordered by the time they are due: a binary min-heap, so holding n delayed tasks costs
 * O(log n) per task and finding the next one O(1). An item is removed by being skipped: the owner's
 * `isCurrent` says whether a popped item still waits (it may have been cancelled or re-timed).
 */
export class DueHeap<T> {
  private readonly items: Array<{ dueAt: number; tie: number; item: T }> = [];

  constructor(private readonly isCurrent: (item: T, dueAt: number) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  /** `tie` orders items due at the same time (lower first). */
  push(item: T, dueAt: number, tie: number): void {
    const { items } = this;
    items.push({ dueAt, tie, item });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  /** When the first current item is due, or undefined when none waits. */
  nextDueAt(): number | undefined {
    this.dropStale();
    return this.items[0]?.dueAt;
  }

  /** Removes and returns every current item due at or before `now`, earliest first. */
  takeDue(now: number): T[] {
    const out: T[] = [];
    for (;;) {
      this.dropStale();
      const top = this.items[0];
      if (top === undefined || top.dueAt > now) return out;
      this.pop();
      out.push(top.item);
    }
  }

  private dropStale(): void {
    while (this.items.length > 0 && !this.isCurrent(this.items[0]!.item, this.items[0]!.dueAt)) this.pop();
  }

  private pop(): void {
    const { items } = this;
    const last = items.pop();
    if (last === undefined || items.length === 0) return;
    items[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < items.length && before(items[l]!, items[m]!)) m = l;
      if (r < items.length && before(items[r]!, items[m]!)) m = r;
      if (m === i) return;
      [items[i], items[m]] = [items[m]!, items[i]!];
      i = m;
    }
  }
}

function before(a: { dueAt: number; tie: number }, b: { dueAt: number; tie: number }): boolean {
  return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.tie < b.tie);
}
