import type { GridLayout } from "@zkgrid/protocol";

/**
 * A result node the leader knows of: where it is, the reply dir it is in (none: `R/results`), and the
 * ids the leader forgets as finished when it goes (see TaskBook.forgetFinished).
 */
export interface KnownResultNode {
  readonly path: string;
  readonly address: string | undefined;
  readonly ids: readonly string[];
}

/**
 * Where result nodes live, and which go when: `R/results` for tasks without a reply address, and
 * `R/replies/<address>/` for those with one. The newest `keep` nodes of both places together are kept,
 * in the order they were written (czxid order after a takeover); a reply dir left with none of them is
 * deleted too, unless its submitter still holds its live node there (ZooKeeper then refuses the delete).
 */
export class ResultPlaces {
  /** Oldest first. */
  #nodes: KnownResultNode[] = [];
  /** Result nodes known in each reply dir. */
  readonly #perDir = new Map<string, number>();

  constructor(
    private readonly layout: Pick<GridLayout, "results" | "resultNodePrefix" | "replyDir">,
    private readonly keep: number,
  ) {}

  /** Where a result node for `address` is created (a protected sequential create). */
  nodePrefix(address: string | undefined): string {
    const dir = address === undefined ? this.layout.results : this.layout.replyDir(address);
    return `${dir}/${this.layout.resultNodePrefix}`;
  }

  /** Takeover: the nodes already there, oldest first. */
  know(nodes: readonly KnownResultNode[]): void {
    this.#nodes = [];
    this.#perDir.clear();
    for (const node of nodes) this.add(node.path, node.address, node.ids);
  }

  /**
   * Whether a result node for `address` can be created without making its dir first: `R/results`
   * (made at takeover, never deleted), or a reply dir holding a kept node (the leader deletes a reply
   * dir only once it holds none).
   */
  hasDir(address: string | undefined): boolean {
    return address === undefined || (this.#perDir.get(address) ?? 0) > 0;
  }

  add(path: string, address: string | undefined, ids: readonly string[]): void {
    this.#nodes.push({ path, address, ids });
    if (address !== undefined) this.#perDir.set(address, (this.#perDir.get(address) ?? 0) + 1);
  }

  /**
   * The nodes beyond `keep`, oldest first, the reply dirs they leave without a kept node, and the ids
   * they carried.
   */
  takeExpired(): { nodes: string[]; emptiedDirs: string[]; ids: string[] } {
    if (this.#nodes.length <= this.keep) return { nodes: [], emptiedDirs: [], ids: [] };
    const old = this.#nodes.splice(0, this.#nodes.length - this.keep);
    const emptiedDirs: string[] = [];
    for (const node of old) {
      if (node.address === undefined) continue;
      const left = (this.#perDir.get(node.address) ?? 1) - 1;
      if (left > 0) this.#perDir.set(node.address, left);
      else {
        this.#perDir.delete(node.address);
        emptiedDirs.push(this.layout.replyDir(node.address));
      }
    }
    return { nodes: old.map((node) => node.path), emptiedDirs, ids: old.flatMap((node) => node.ids) };
  }
}
