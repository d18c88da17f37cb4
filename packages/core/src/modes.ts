import { BadArgumentsError } from "./errors.js";
import { ZOO_EPHEMERAL, ZOO_SEQUENCE } from "./session.js";
import type { CreateMode } from "./types.js";

const MODE_FLAGS: Record<CreateMode, number> = {
  persistent: 0,
  ephemeral: ZOO_EPHEMERAL,
  "persistent-sequential": ZOO_SEQUENCE,
  "ephemeral-sequential": ZOO_EPHEMERAL | ZOO_SEQUENCE,
};

/** The addon's create flags for a mode. */
export function modeFlags(mode: CreateMode): number {
  const flags = MODE_FLAGS[mode];
  if (flags === undefined) throw new BadArgumentsError({ message: `unknown create mode "${String(mode)}"` });
  return flags;
}
