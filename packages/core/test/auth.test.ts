import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEnsemble, startServer } from "@zkgrid/testing";
import { describe, expect, it } from "vitest";
import {
  Code,
  CredentialsError,
  digestAcl,
  digestId,
  errors,
  formatAcl,
  nodeAcl,
  parseAcl,
  Perms,
  readCredentials,
} from "../src/index.js";
import { connectClient, startedForBlock, testRoot } from "./helpers.js";

describe("on a server that requires authentication", () => {
  const server = startedForBlock(() => startServer({ requireAuth: true, superUser: "admin:admin-secret" }));

  it("a client without credentials gets AuthRequiredError and is closed instead of retrying", async () => {
    const anonymous = await connectClient({ connectString: server().connectString });
    const error = await anonymous.getChildren("/").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(errors.AuthRequiredError);
    expect(error).toBeInstanceOf(errors.AuthFailedError);
    expect((error as errors.ZkError).code).toBe(Code.SESSION_CLOSED_REQUIRE_AUTH);
    expect((error as Error).message).toMatch(/authentication required/);
    await anonymous.closed();
    expect(anonymous.state).toBe("closed");
    const after = await anonymous.exists("/").catch((e: unknown) => e);
    expect(after).toBeInstanceOf(errors.ClosedError);
    expect((after as Error).cause).toBeInstanceOf(errors.AuthRequiredError);
  });

  it("connect() with a root rejects with AuthRequiredError when no credentials are given", async () => {
    const error = await connectClient({ connectString: server().connectString, root: testRoot() }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(errors.AuthRequiredError);
  });

  it("a client with credentials works, and every node it creates gets ALL for it plus the extra entries", async () => {
    const root = testRoot();
    const reader = digestAcl("viewer:view-secret", Perms.READ);
    const owner = await connectClient({
      connectString: server().connectString,
      root,
      auth: "grid:grid-secret",
      acl: [reader],
    });
    const expected = [digestAcl("grid:grid-secret"), reader];
    await owner.ensurePath("/a/b");
    const plain = await owner.create("/a/b/plain", "x");
    const sequential = await owner.create("/a/b/seq-", "x", "persistent-sequential");
    const protectedNode = await owner.createProtected("/a/b/p", "x");
    const ephemeral = await owner.create("/a/eph", "x", "ephemeral");
    for (const path of ["/", "/a", "/a/b", plain, sequential, protectedNode, ephemeral]) {
      expect((await owner.getAcl(path)).acl, path).toEqual(expected);
    }

    const viewer = await connectClient({
      connectString: server().connectString,
      root,
      auth: "viewer:view-secret",
    });
    expect((await viewer.get(plain)).data.toString()).toBe("x");
    expect(await viewer.getChildren("/a/b")).toHaveLength(3);
    const write = await viewer.set(plain, "y").catch((e: unknown) => e);
    expect(write).toBeInstanceOf(errors.NoAuthError);
    expect((write as Error).message).toMatch(/ACL does not grant/);

    // Another identity passes the server's check but not the ACLs.
    const stranger = await connectClient({
      connectString: server().connectString,
      root,
      auth: "eve:eve-secret",
    });
    for (const attempt of [
      () => stranger.get(plain),
      () => stranger.getChildren("/a/b"),
      () => stranger.create("/a/b/mine", "z"),
      () => stranger.delete(plain),
    ]) {
      expect(await attempt().catch((e: unknown) => e)).toBeInstanceOf(errors.NoAuthError);
    }

    const admin = await connectClient({
      connectString: server().connectString,
      root,
      auth: "admin:admin-secret",
    });
    expect((await admin.get(plain)).data.toString()).toBe("x");
  });
});

it("an ensemble started with requireAuth refuses clients without credentials on every member", async () => {
  const ensemble = await startEnsemble(3, { requireAuth: true });
  try {
    for (const member of ensemble.members) {
      const anonymous = await connectClient({ connectString: member.connectString });
      expect(await anonymous.exists("/").catch((e: unknown) => e)).toBeInstanceOf(errors.AuthRequiredError);
    }
    const client = await connectClient({
      connectString: ensemble.connectString,
      auth: "u:p",
      root: testRoot(),
    });
    expect(await client.getChildren("/")).toEqual([]);
    await client.close();
  } finally {
    await ensemble.stop();
  }
});

describe("ACL text", () => {
  it("parses zkCli's scheme:id:perms entries and formats them back", () => {
    const id = digestId("worker:pw");
    const text = `digest:${id}:cdrwa, world:anyone:r`;
    const acl = parseAcl(text);
    expect(acl).toEqual([
      { scheme: "digest", id, perms: Perms.ALL },
      { scheme: "world", id: "anyone", perms: Perms.READ },
    ]);
    expect(acl.map(formatAcl).join(",")).toBe(text.replace(" ", ""));
    expect(parseAcl("")).toEqual([]);
  });

  it("refuses a digest entry holding a password instead of its hash, without echoing the password", () => {
    const error = (() => {
      try {
        parseAcl("digest:worker:hunter2:cdrwa");
      } catch (e) {
        return e as Error;
      }
    })();
    expect(error).toBeInstanceOf(errors.BadArgumentsError);
    expect(error?.message).toMatch(/base64\(sha1/);
    expect(error?.message).not.toContain("hunter2");
    expect(() => parseAcl("world:anyone:rx")).toThrow(/cdrwa/);
    expect(() => parseAcl("world:anyone")).toThrow(/scheme:id:perms/);
  });

  it("merges the own credentials with the extra entries; none of either means no ACL", () => {
    expect(nodeAcl([])).toBeUndefined();
    expect(nodeAcl(["a:1"], [digestAcl("a:1", Perms.READ), digestAcl("b:2", Perms.READ)])).toEqual([
      digestAcl("a:1"),
      digestAcl("b:2", Perms.READ),
    ]);
  });
});

describe("readCredentials", () => {
  const dir = mkdtempSync(join(tmpdir(), "zkgrid-cred-"));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };
  const refusal = (run: () => unknown): string => {
    try {
      run();
    } catch (e) {
      expect(e).toBeInstanceOf(CredentialsError);
      return (e as Error).message;
    }
    throw new Error("not refused");
  };

  it("reads --auth's file first, then ZKGRID_AUTH_FILE, then ZKGRID_AUTH; --acl before ZKGRID_ACL", () => {
    const two = file("two", "# grid\n\n  a:one \r\nb:two:with:colons\n");
    const other = file("other", "c:three\n");
    const acl = `digest:${digestId("x:y")}:r`;
    const env = { ZKGRID_AUTH_FILE: other, ZKGRID_AUTH: "d:four", ZKGRID_ACL: "world:anyone:r" };
    expect(readCredentials({ authFile: two, acl, env })).toEqual({
      auth: ["a:one", "b:two:with:colons"],
      acl: [digestAcl("x:y", Perms.READ)],
    });
    expect(readCredentials({ env })).toEqual({
      auth: ["c:three"],
      acl: [{ scheme: "world", id: "anyone", perms: Perms.READ }],
    });
    expect(readCredentials({ env: { ZKGRID_AUTH: "d:four" } })).toEqual({ auth: ["d:four"], acl: undefined });
    expect(readCredentials({ env: {} })).toEqual({ auth: undefined, acl: undefined });
  });

  it("refuses credentials given where a file belongs, bad files and bad entries, never echoing a secret", () => {
    const literal = refusal(() => readCredentials({ authFile: "bob:hunter2", env: {} }));
    expect(literal).toMatch(/--auth takes the path of a file/);
    expect(literal).toMatch(/ZKGRID_AUTH_FILE/);
    expect(literal).not.toContain("hunter2");
    expect(refusal(() => readCredentials({ authFile: join(dir, "missing"), env: {} }))).toMatch(/ENOENT/);
    const noColon = refusal(() => readCredentials({ authFile: file("bad", "# x\nhunter2\n"), env: {} }));
    expect(noColon).toMatch(/line 2/);
    expect(noColon).not.toContain("hunter2");
    expect(refusal(() => readCredentials({ authFile: file("empty", "# nothing\n"), env: {} }))).toMatch(
      /no user:password/,
    );
    expect(refusal(() => readCredentials({ env: { ZKGRID_AUTH: "hunter2" } }))).toBe(
      "ZKGRID_AUTH: expected user:password",
    );
    expect(refusal(() => readCredentials({ env: { ZKGRID_ACL: "digest:bob:hunter2:r" } }))).toMatch(
      /^ZKGRID_ACL: .*base64/,
    );
  });
});
