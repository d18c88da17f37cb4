import { defineConfig } from "tsup";
import { libraryBuild } from "../../tsup.base.js";

// shims: the CommonJS build needs import.meta.url to find the zookeeper addon when it loads it (addon.ts).
export default defineConfig({ ...libraryBuild, shims: true });
