import type { ConfigName, QueueSystemName, SystemFactory } from "./types.js";

/** The configurations each queue system runs in: rota has one, each peer two. */
export const CONFIGS: Record<QueueSystemName, readonly ConfigName[]> = {
  rota: ["default"],
  "graphile-worker": ["default", "tuned"],
  "pg-boss": ["default", "tuned"],
  bullmq: ["default", "tuned"],
};

/**
 * The adapter for a system in a configuration (used by the runner and by the
 * worker children). Each adapter is loaded only when asked for, so a child
 * process starts faster and a system whose package does not load is skipped
 * on its own.
 */
export async function systemFactory(
  system: QueueSystemName,
  config: ConfigName,
): Promise<SystemFactory> {
  if (!CONFIGS[system].includes(config)) {
    throw new Error(`${system} has no "${config}" configuration`);
  }
  switch (system) {
    case "rota":
      return (await import("./rota.js")).rota(config);
    case "graphile-worker":
      return (await import("./graphile-worker.js")).graphileWorker(config);
    case "pg-boss":
      return (await import("./pg-boss.js")).pgBoss(config);
    case "bullmq":
      return (await import("./bullmq.js")).bullmq(config);
  }
}

export function isQueueSystem(name: string): name is QueueSystemName {
  return Object.hasOwn(CONFIGS, name);
}
