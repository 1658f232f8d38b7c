import type { ConfigName, QueueSystemName, SystemFactory } from "./types.js";

interface SystemEntry {
  /** The configurations it runs in: rota has one, each peer two. */
  configs: readonly ConfigName[];
  /** The npm package measured (its version goes in the report; its `engines` pick the Node). */
  package: string | null;
  /** Loaded only when asked for, so a system whose package does not load is skipped on its own. */
  load(config: ConfigName): Promise<SystemFactory>;
}

export const SYSTEMS: Record<QueueSystemName, SystemEntry> = {
  rota: {
    configs: ["default"],
    package: null,
    load: async (config) => (await import("./rota.js")).rota(config),
  },
  "graphile-worker": {
    configs: ["default", "tuned"],
    package: "graphile-worker",
    load: async (config) => (await import("./graphile-worker.js")).graphileWorker(config),
  },
  "pg-boss": {
    configs: ["default", "tuned"],
    package: "pg-boss",
    load: async (config) => (await import("./pg-boss.js")).pgBoss(config),
  },
  bullmq: {
    configs: ["default", "tuned"],
    package: "bullmq",
    load: async (config) => (await import("./bullmq.js")).bullmq("redis", config),
  },
  "bullmq-postgres": {
    configs: ["default", "tuned"],
    package: "bullmq",
    load: async (config) => (await import("./bullmq.js")).bullmq("postgres", config),
  },
};

/** The adapter for a system in a configuration (used by the system and worker children). */
export async function systemFactory(
  system: QueueSystemName,
  config: ConfigName,
): Promise<SystemFactory> {
  if (!SYSTEMS[system].configs.includes(config)) {
    throw new Error(`${system} has no "${config}" configuration`);
  }
  return SYSTEMS[system].load(config);
}

export function isQueueSystem(name: string): name is QueueSystemName {
  return Object.hasOwn(SYSTEMS, name);
}
