/**
 * One system in one configuration, through its workloads, in a process of its
 * own: run.ts starts one per system and configuration, under the Node that
 * system needs (runtime.ts), so a peer that needs Node 22 runs entirely on
 * it, its worker children included. Each workload starts from fresh state
 * (setup before, teardown after). Results and notes go to the parent over
 * IPC, progress to stderr.
 *
 *   node --import tsx bench/system-child.ts '{"system":…,"config":…,"workloads":[…],"options":…,"env":…}'
 */
import type { SystemChildArguments, SystemChildMessage } from "./child-protocol.js";
import type { Measurement, QueueWorkload } from "./results.js";
import { systemFactory } from "./systems/index.js";
import type { BenchSystem, SystemFactory } from "./systems/types.js";
import { nowMs, withDeadline } from "./time.js";
import { SETUP_DEADLINE_MS, STOP_DEADLINE_MS, type WorkloadContext } from "./workloads/context.js";
import { enqueueBulk, enqueueSingle } from "./workloads/enqueue.js";
import { latency } from "./workloads/latency.js";
import { processLimited, processOneProcess, processTwoProcesses } from "./workloads/process.js";

const WORKLOADS: Record<
  QueueWorkload,
  (system: BenchSystem, context: WorkloadContext) => Promise<Measurement>
> = {
  enqueue_single_1: (system, context) => enqueueSingle(system, 1, context),
  enqueue_single_10: (system, context) =>
    enqueueSingle(system, context.options.concurrency, context),
  enqueue_bulk: enqueueBulk,
  process_1proc: processOneProcess,
  process_2proc: processTwoProcesses,
  process_limited: processLimited,
  latency,
};

function send(message: SystemChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });
}

function log(line: string): void {
  process.stderr.write(`rota bench: ${line}\n`);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Runs the workloads. A system whose adapter or setup fails is skipped with a
 * note; one that hangs in stop or teardown is left behind with a note.
 */
async function main(): Promise<void> {
  if (!process.send) throw new Error("system-child.ts runs only as a child of bench/run.ts");
  const args = JSON.parse(process.argv[2] ?? "{}") as SystemChildArguments;
  const name = `${args.system}/${args.config}`;
  const pending: Promise<void>[] = [];
  const warn = (text: string) => {
    log(text);
    pending.push(send({ type: "note", text }));
  };
  const context: WorkloadContext = { env: args.env, options: args.options, log, warn };
  let factory: SystemFactory;
  try {
    factory = await systemFactory(args.system, args.config);
  } catch (error) {
    warn(`${name} skipped: its adapter did not load: ${message(error)}`);
    return;
  }
  const teardown = async (system: BenchSystem, after: string) => {
    try {
      await withDeadline(system.teardown(), STOP_DEADLINE_MS, `${name} teardown after ${after}`);
    } catch (error) {
      warn(message(error));
    }
  };
  for (const workload of args.workloads) {
    log(`${name} ${workload} ...`);
    const began = nowMs();
    const system = factory(args.env);
    try {
      await withDeadline(system.setup(), SETUP_DEADLINE_MS, `${name} setup`);
    } catch (error) {
      warn(`${name} skipped: setup failed: ${message(error)}`);
      await teardown(system, "a failed setup");
      break;
    }
    try {
      const measurement = await WORKLOADS[workload](system, context);
      pending.push(send({ type: "result", workload, measurement }));
    } catch (error) {
      warn(`${name} ${workload} failed: ${message(error)}`);
    } finally {
      await teardown(system, workload);
      log(
        `${name} ${workload} took ${((nowMs() - began) / 1000).toFixed(1)} s with setup and teardown`,
      );
    }
  }
  await Promise.all(pending);
}

// Exits explicitly: some libraries keep timers or sockets after stopping.
main().then(
  () => process.exit(0),
  (error) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
