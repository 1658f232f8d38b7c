import type { Rota } from "../client.js";
import { formTime } from "./layout.js";

/** What an action did, in words for the page it returns to. */
export type ActionResult = string;

/** One action: its audit name, what it acts on, and the call into rota's API. */
interface ActionDefinition {
  /** Audit name, `area.verb`. */
  name: string;
  perform(rota: Rota, target: string, form: Record<string, string>): Promise<ActionResult>;
}

/**
 * The actions the dashboard offers, by route (`<area>/<target>/<verb>`, or
 * `<area>/<verb>` for those on a filter). Each goes through rota's library
 * API: the checks and errors are the API's own.
 */
export const ACTIONS: Record<string, ActionDefinition> = {
  "queues/pause": {
    name: "queue.pause",
    perform: async (rota, queue) => {
      await rota.queues.pause(queue);
      return `Queue ${queue} paused.`;
    },
  },
  "queues/resume": {
    name: "queue.resume",
    perform: async (rota, queue) => {
      await rota.queues.resume(queue);
      return `Queue ${queue} resumed.`;
    },
  },
  "jobs/retry": {
    name: "job.retry",
    perform: async (rota, id) => {
      const retried = await rota.retryJob(id);
      return `Job ${retried.id} is back in its queue (it was ${retried.previousState}).`;
    },
  },
  "jobs/cancel": {
    name: "job.cancel",
    perform: async (rota, id) => {
      const cancelled = await rota.cancel(id);
      return cancelled.state === "running"
        ? `Job ${id} is running: its handler's signal was aborted.`
        : `Job ${id} cancelled.`;
    },
  },
  "jobs/retry-failed": {
    name: "jobs.retry-failed",
    perform: async (rota, _target, form) => {
      const ids = await rota.replayFailed({
        ...(form.queue ? { queue: form.queue } : {}),
        ...(form.task ? { task: form.task } : {}),
        ...(form.from ? { from: formTime(form.from, "from") } : {}),
        ...(form.to ? { to: formTime(form.to, "to") } : {}),
      });
      return `${ids.length} failed job(s) back in their queues.`;
    },
  },
  "schedules/trigger": {
    name: "schedule.trigger",
    perform: async (rota, name) => {
      const run = await rota.schedules.trigger(name);
      return `${name} triggered: execution ${run.executionId} runs at ${run.runAt.toISOString()}.`;
    },
  },
  "schedules/pause": {
    name: "schedule.pause",
    perform: async (rota, name) => {
      await rota.schedules.pause(name);
      return `Schedule ${name} paused.`;
    },
  },
  "schedules/resume": {
    name: "schedule.resume",
    perform: async (rota, name) => {
      await rota.schedules.resume(name);
      return `Schedule ${name} resumed.`;
    },
  },
  "schedules/skip": {
    name: "schedule.skip",
    perform: async (rota, name, form) => {
      const skipped = await rota.schedules.skip(name, { executionId: form.executionId ?? "" });
      return `The run of ${name} at ${skipped.runAt.toISOString()} is skipped.`;
    },
  },
};
