import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import * as protocol from "../src/index.js";

const doc = readFileSync(new URL("../../../docs/protocol.md", import.meta.url), "utf8");

describe("docs/protocol.md", () => {
  test("every limit in its table has the value the code uses", () => {
    const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d+)/gm)];
    expect(rows.length).toBeGreaterThanOrEqual(9);
    for (const [, name, value] of rows) {
      expect((protocol as Record<string, unknown>)[name!], name).toBe(Number(value));
    }
  });

  test("the quoted error messages are the ones the code produces", () => {
    const batch = protocol.decodeSubmitBatch(
      JSON.stringify({
        v: 1,
        batchId: "b",
        submittedAt: 1,
        tasks: [
          { id: "../x", cmd: "x" },
          { id: "a", cmd: "x", command: "y" },
          { id: "b" },
          { id: "c", cmd: "x", timeoutMs: -5 },
        ],
      }),
    );
    if (!batch.ok) return expect.fail(batch.error.message);
    for (const t of batch.tasks) {
      expect(t.ok).toBe(false);
      if (!t.ok) expect(doc).toContain(t.error.message);
    }
    const batch1 = protocol.encodeSubmitBatch({
      v: 1,
      batchId: "b",
      submittedAt: 1,
      tasks: [{ id: "t", cmd: "x" }],
    });
    for (const [name, data, version] of [
      ["t~not*base64", Buffer.alloc(0), 0],
      [`t~${"A".repeat(516)}`, Buffer.alloc(0), 0],
      [protocol.inboxNodeName("t", batch1), batch1, 1],
    ] as const) {
      const node = protocol.decodeInboxNode(name, data, version);
      if (node.kind !== "invalid") return expect.fail(`${name.slice(0, 20)} decoded`);
      expect(doc).toContain(node.error.message);
    }
    const env = protocol.decodeTask({ id: "t", cmd: "x", env: { "1X": "" } });
    if (env.ok) return expect.fail("decoded");
    expect(doc).toContain(env.error.message);
  });
});
