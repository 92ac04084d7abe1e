/**
 * Time-ordered queue of simulation events (a binary min-heap).
 *
 * Guarantees: `runDue(now)` runs every event with time <= now in (time,
 * insertion) order, including events scheduled by events it runs, and passes
 * each its own scheduled time (logical time), never `now`. No clock reads.
 */

export type EventAction = (at: number) => void;

interface Entry {
  readonly at: number;
  readonly seq: number;
  readonly action: EventAction;
}

export class EventQueue {
  private readonly heap: Entry[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  schedule(at: number, action: EventAction): void {
    this.heap.push({ at, seq: this.seq, action });
    this.seq += 1;
    this.siftUp(this.heap.length - 1);
  }

  /** Time of the earliest pending event. */
  nextAt(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Run due events; returns how many ran. */
  runDue(now: number): number {
    let count = 0;
    for (let head = this.heap[0]; head !== undefined && head.at <= now; head = this.heap[0]) {
      this.pop();
      head.action(head.at);
      count += 1;
    }
    return count;
  }

  private pop(): void {
    const last = this.heap.pop();
    if (last === undefined || this.heap.length === 0) return;
    this.heap[0] = last;
    this.siftDown(0);
  }

  private before(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private siftUp(index: number): void {
    let child = index;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      const c = this.heap[child];
      const p = this.heap[parent];
      if (c === undefined || p === undefined || !this.before(c, p)) return;
      this.heap[child] = p;
      this.heap[parent] = c;
      child = parent;
    }
  }

  private siftDown(index: number): void {
    let parent = index;
    for (;;) {
      const left = parent * 2 + 1;
      const right = left + 1;
      let smallest = parent;
      const s0 = this.heap[smallest];
      const l = this.heap[left];
      if (l !== undefined && s0 !== undefined && this.before(l, s0)) smallest = left;
      const s1 = this.heap[smallest];
      const r = this.heap[right];
      if (r !== undefined && s1 !== undefined && this.before(r, s1)) smallest = right;
      if (smallest === parent) return;
      const a = this.heap[parent];
      const b = this.heap[smallest];
      if (a === undefined || b === undefined) return;
      this.heap[parent] = b;
      this.heap[smallest] = a;
      parent = smallest;
    }
  }
}
