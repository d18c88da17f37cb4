import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, isLogLevel } from "../src/index.js";

function capture(): { stream: PassThrough; lines: () => string[] } {
  const stream = new PassThrough();
  let text = "";
  stream.on("data", (b: Buffer) => {
    text += b.toString();
  });
  return { stream, lines: () => text.split("\n").filter((l) => l !== "") };
}

describe("createLogger", () => {
  it("writes one JSON object a line when piped, with the task id as a field", () => {
    const out = capture();
    const log = createLogger({ name: "worker", stream: out.stream, base: { worker: "w1" } });
    log("info", "task finished", { task: "t-1", state: "succeeded" });
    const [line] = out.lines();
    expect(JSON.parse(line ?? "{}")).toMatchObject({
      name: "worker",
      worker: "w1",
      task: "t-1",
      state: "succeeded",
      msg: "task finished",
      level: 30,
    });
  });

  it("drops lines below the chosen level", () => {
    const out = capture();
    const log = createLogger({ name: "master", stream: out.stream, level: "warn" });
    log("info", "quiet");
    log("error", "loud");
    expect(out.lines().map((l) => JSON.parse(l).msg)).toEqual(["loud"]);
  });

  it("writes readable lines in pretty format", () => {
    const out = capture();
    const log = createLogger({ name: "master", stream: out.stream, format: "pretty" });
    log("warn", "worker gone", { worker: "w2" });
    const text = out.lines().join("\n");
    expect(text).toContain("worker gone");
    expect(text).toContain("w2");
    expect(() => JSON.parse(out.lines()[0] ?? "")).toThrow();
  });

  it("knows its levels", () => {
    expect(isLogLevel("debug")).toBe(true);
    expect(isLogLevel("verbose")).toBe(false);
  });
});
