import { randomUUID } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { expireSession, SessionExpiryError, waitFor } from "../src/index.js";
import { RawClient, ZOO_EPHEMERAL, ZOO_EXPIRED_SESSION_STATE } from "./raw-client.js";

describe("expireSession", () => {
  it("ends a live session: its ephemeral node vanishes and its handle sees the expiry", async () => {
    const connectString = inject("zkConnectString");
    const root = `/test-${randomUUID()}`;
    const victim = await RawClient.connect(connectString, 4000);
    const observer = await RawClient.connect(connectString, 4000);
    try {
      await observer.create(root, "");
      await victim.create(`${root}/owned`, "", ZOO_EPHEMERAL);
      expect(await observer.exists(`${root}/owned`)).toBe(true);

      await expireSession(connectString, victim.session);

      expect(await observer.exists(`${root}/owned`)).toBe(false);
      await waitFor(() => victim.closeCode !== undefined, { timeoutMs: 30_000, message: "victim closed" });
      expect(victim.closeCode).toBe(ZOO_EXPIRED_SESSION_STATE);
    } finally {
      victim.close();
      observer.close();
    }
  });

  it("fails with SessionExpiryError when no server answers", async () => {
    const error = await expireSession(
      "127.0.0.1:1",
      { id: "1234", password: "0".repeat(32) },
      { timeoutMs: 1000 },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionExpiryError);
  });
});
