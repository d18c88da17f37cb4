import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { expect, it } from "vitest";
import { connectClient, sharedConnectString } from "./helpers.js";

/** Inodes of the TCP sockets (anyone's) whose far end is `port`, from the kernel's tables. */
function socketsTo(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      const remote = cols[2]?.split(":")[1];
      if (cols[9] !== undefined && remote !== undefined && Number.parseInt(remote, 16) === port)
        inodes.add(cols[9]);
    }
  }
  return inodes;
}

/** The socket inodes among descriptor links such as `socket:[123]`. */
function socketInodes(links: string[]): string[] {
  return links.flatMap((link) => /^socket:\[(\d+)\]$/.exec(link)?.slice(1) ?? []);
}

it("a child spawned after connecting does not inherit the connection to ZooKeeper", async () => {
  const zk = await connectClient();
  await zk.exists("/");
  const port = Number(/:(\d+)(?:\/|,|$)/.exec(sharedConnectString())?.[1]);
  const toServer = socketsTo(port);
  const mine = socketInodes(
    readdirSync("/proc/self/fd").flatMap((fd) => {
      try {
        return [readlinkSync(`/proc/self/fd/${fd}`)];
      } catch {
        return []; // closed between the listing and the read
      }
    }),
  ).filter((inode) => toServer.has(inode));
  // This process holds the client's connection: the check below looks for the right thing.
  expect(mine.length).toBeGreaterThan(0);
  const child = execFileSync("sh", ["-c", 'for f in /proc/$$/fd/*; do readlink "$f"; done; true'], {
    encoding: "utf8",
  });
  const inherited = socketInodes(child.split("\n")).filter((inode) => mine.includes(inode));
  expect(inherited).toEqual([]);
});
