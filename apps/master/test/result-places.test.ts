import { gridLayout } from "@zkgrid/protocol";
import { describe, expect, it } from "vitest";
import { ResultPlaces } from "../src/leader/result-places.js";

describe("ResultPlaces", () => {
  it("prunes the oldest nodes beyond keep, with the ids they carried and the reply dirs they empty", () => {
    const layout = gridLayout("/g");
    const places = new ResultPlaces(layout, 2);
    places.add(`${layout.results}/r-1`, undefined, ["a", "b"]);
    places.add(`${layout.replyDir("c1")}/r-2`, "c1", ["c"]);
    places.add(`${layout.results}/r-3`, undefined, []);
    places.add(`${layout.results}/r-4`, undefined, ["d"]);
    expect(places.takeExpired()).toEqual({
      nodes: [`${layout.results}/r-1`, `${layout.replyDir("c1")}/r-2`],
      emptiedDirs: [layout.replyDir("c1")],
      ids: ["a", "b", "c"],
    });
    expect(places.takeExpired()).toEqual({ nodes: [], emptiedDirs: [], ids: [] });
  });
});
