// What the root vitest globalSetup hands to every test file through `inject()`.
import type {} from "vitest";
declare module "vitest" {
  export interface ProvidedContext {
    /** "127.0.0.1:port" of the one standalone ZooKeeper shared by the whole test run. */
    zkConnectString: string;
  }
}
